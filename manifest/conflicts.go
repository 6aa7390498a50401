package manifest

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// AddCandidate records a side of a conflict on path and returns the
// conflict as it now stands. There is at most one server candidate and one
// candidate per client: a new candidate from the same side replaces the
// old one in place, any other is appended. A zero Created is stamped with
// the DB's clock.
func (db *DB) AddCandidate(ctx context.Context, root RootID, path string, c Candidate) (Conflict, error) {
	if err := validPath(path); err != nil {
		return Conflict{}, fmt.Errorf("manifest: add candidate in root %d: %w", root, err)
	}
	if c.Created.IsZero() {
		c.Created = db.now()
	}
	c.MTime, c.Created = fromNanos(nanos(c.MTime)), fromNanos(nanos(c.Created))
	if err := c.validate(); err != nil {
		return Conflict{}, fmt.Errorf("manifest: add candidate for %q in root %d: %w", path, root, err)
	}
	var out Conflict
	err := db.update(ctx, "add candidate", func(txn *badger.Txn) error {
		if _, err := getRoot(txn, root); err != nil {
			return err
		}
		cands, _, err := getConflict(txn, root, path)
		if err != nil {
			return err
		}
		replaced := false
		for i, old := range cands {
			if old.Kind == c.Kind && old.Client == c.Client {
				cands[i], replaced = c, true
				break
			}
		}
		if !replaced {
			if len(cands) >= MaxCandidates {
				return fmt.Errorf("manifest: add candidate for %q in root %d: %w: already %d candidates", path, root, ErrInvalid, len(cands))
			}
			cands = append(cands, c)
		}
		val, err := encodeConflict(cands)
		if err != nil {
			return err
		}
		if err := txn.Set(conflictKey(root, path), val); err != nil {
			return fmt.Errorf("manifest: write conflict %q in root %d: %w", path, root, err)
		}
		out = Conflict{Path: path, Candidates: cands}
		return nil
	})
	return out, err
}

// getConflict reads the candidates of path; none is not an error.
func getConflict(txn *badger.Txn, root RootID, path string) ([]Candidate, bool, error) {
	val, found, err := lookup(txn, conflictKey(root, path))
	if err != nil || !found {
		return nil, false, err
	}
	cands, err := decodeConflict(val)
	if err != nil {
		return nil, false, fmt.Errorf("conflict %q in root %d: %w", path, root, err)
	}
	return cands, true, nil
}

// Conflict returns the conflict on path, or ErrNotFound if there is none.
func (db *DB) Conflict(ctx context.Context, root RootID, path string) (Conflict, error) {
	if err := validPath(path); err != nil {
		return Conflict{}, fmt.Errorf("manifest: conflict in root %d: %w", root, err)
	}
	var out Conflict
	err := db.view(ctx, "get conflict", func(txn *badger.Txn) error {
		cands, found, err := getConflict(txn, root, path)
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: conflict on %q in root %d", ErrNotFound, path, root)
		}
		out = Conflict{Path: path, Candidates: cands}
		return nil
	})
	return out, err
}

// ListConflicts returns the conflicts of root in path byte order.
func (db *DB) ListConflicts(ctx context.Context, root RootID) ([]Conflict, error) {
	var out []Conflict
	err := db.view(ctx, "list conflicts", func(txn *badger.Txn) error {
		if _, err := getRoot(txn, root); err != nil {
			return err
		}
		return scan(ctx, txn, rootScope(prefixConflict, root), false, func(key, val []byte) error {
			_, path, err := parseRootPathKey(prefixConflict, key)
			if err != nil {
				return err
			}
			cands, err := decodeConflict(val)
			if err != nil {
				return fmt.Errorf("conflict %q in root %d: %w", path, root, err)
			}
			out = append(out, Conflict{Path: path, Candidates: cands})
			return nil
		})
	})
	return out, err
}

// ClearConflict deletes the conflict on path; ErrNotFound if there is none.
// To resolve a conflict atomically with the winning version, commit with
// Proposal.ClearConflict instead.
func (db *DB) ClearConflict(ctx context.Context, root RootID, path string) error {
	if err := validPath(path); err != nil {
		return fmt.Errorf("manifest: clear conflict in root %d: %w", root, err)
	}
	return db.update(ctx, "clear conflict", func(txn *badger.Txn) error {
		found, err := exists(txn, conflictKey(root, path))
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: conflict on %q in root %d", ErrNotFound, path, root)
		}
		return txn.Delete(conflictKey(root, path))
	})
}

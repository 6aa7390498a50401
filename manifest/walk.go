package manifest

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// AllRoots asks ForEachVersion for every root. No root has ID 0.
const AllRoots RootID = 0

// ForEachVersion calls fn with every version of every file of root (or of
// all roots, for AllRoots), by root, then path bytes, then seq. GC marks
// from it: every version's content hash leads, through ChunkList, to the
// chunks that must stay. It reads one consistent snapshot; an error from fn
// stops the walk and is returned.
func (db *DB) ForEachVersion(ctx context.Context, root RootID, fn func(root RootID, path string, v Version) error) error {
	prefix := []byte{prefixVersion}
	if root != AllRoots {
		prefix = rootScope(prefixVersion, root)
	}
	return db.view(ctx, "walk versions", func(txn *badger.Txn) error {
		return scan(ctx, txn, prefix, false, func(key, val []byte) error {
			r, path, seq, err := parseVersionKey(key)
			if err != nil {
				return err
			}
			v, err := decodeVersion(val)
			if err != nil {
				return fmt.Errorf("version %d of %q in root %d: %w", seq, path, r, err)
			}
			return fn(r, path, v)
		})
	})
}

// ForEachCandidate calls fn with every conflict candidate of every root.
// Unresolved conflicts are GC roots: their contents must stay.
func (db *DB) ForEachCandidate(ctx context.Context, fn func(root RootID, path string, c Candidate) error) error {
	return db.view(ctx, "walk candidates", func(txn *badger.Txn) error {
		return scan(ctx, txn, []byte{prefixConflict}, false, func(key, val []byte) error {
			r, path, err := parseRootPathKey(prefixConflict, key)
			if err != nil {
				return err
			}
			cands, err := decodeConflict(val)
			if err != nil {
				return fmt.Errorf("conflict %q in root %d: %w", path, r, err)
			}
			for _, c := range cands {
				if err := fn(r, path, c); err != nil {
					return err
				}
			}
			return nil
		})
	})
}

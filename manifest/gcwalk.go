package manifest

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/cas"
)

// This file is what garbage collection reads: every pointer from metadata
// to content, the chunk lists, and, inside gc's own deletion transactions,
// whatever was committed since its walk.

// Ref is one pointer from metadata to content: a version of a file, or a
// candidate of an unresolved conflict.
type Ref struct {
	Root RootID
	Path string
	// Seq is the version's seq; 0 for a conflict candidate.
	Seq       uint64
	Candidate bool
	// Hash is the content; zero for a deletion.
	Hash    cas.ID
	Size    uint64
	Deleted bool
}

// HasChunks reports whether the content has a stored chunk list: anything
// but a deletion or the empty file.
func (r Ref) HasChunks() bool { return needsList(r.Size, r.Deleted) }

// Watermark says, per root, up to which root seq a walk saw every version.
// A root missing from it is one the walk did not see (created later).
type Watermark map[RootID]uint64

// ForEachRef calls fn with every version of every root, then every
// conflict candidate, from one consistent snapshot, and returns that
// snapshot's watermark: each root's seq. Keys left behind by an
// interrupted RemoveRoot belong to no root and are skipped, so their
// content is garbage. An error from fn stops the walk and is returned.
func (db *DB) ForEachRef(ctx context.Context, fn func(Ref) error) (Watermark, error) {
	wm := Watermark{}
	err := db.view(ctx, "walk references", func(txn *badger.Txn) error {
		err := scan(ctx, txn, []byte{prefixRoot}, false, func(key, val []byte) error {
			r, err := decodeRootRecord(key, val)
			if err != nil {
				return err
			}
			wm[r.ID] = r.Seq
			return nil
		})
		if err != nil {
			return err
		}
		err = scan(ctx, txn, []byte{prefixVersion}, false, func(key, val []byte) error {
			root, path, seq, err := parseVersionKey(key)
			if err != nil {
				return err
			}
			if _, live := wm[root]; !live {
				return nil
			}
			v, err := decodeVersion(val)
			if err != nil {
				return fmt.Errorf("version %d of %q in root %d: %w", seq, path, root, err)
			}
			return fn(Ref{Root: root, Path: path, Seq: seq, Hash: v.Hash, Size: v.Size, Deleted: v.Deleted})
		})
		if err != nil {
			return err
		}
		return scan(ctx, txn, []byte{prefixConflict}, false, func(key, val []byte) error {
			root, path, err := parseRootPathKey(prefixConflict, key)
			if err != nil {
				return err
			}
			if _, live := wm[root]; !live {
				return nil
			}
			cands, err := decodeConflict(val)
			if err != nil {
				return fmt.Errorf("conflict %q in root %d: %w", path, root, err)
			}
			for _, c := range cands {
				ref := Ref{Root: root, Path: path, Candidate: true, Hash: c.Hash, Size: c.Size, Deleted: c.Deleted}
				if err := fn(ref); err != nil {
					return err
				}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return wm, nil
}

// ForEachChunkList calls fn with every stored chunk list whose content
// hash want accepts (nil accepts all), in hash order; lists want refuses
// are not even read. Chunk lists are only ever added, never changed or
// deleted, so a walk that starts after ForEachRef finds the list of every
// content that one reported.
func (db *DB) ForEachChunkList(ctx context.Context, want func(hash cas.ID) bool, fn func(hash cas.ID, chunks []Chunk) error) error {
	return db.view(ctx, "walk chunk lists", func(txn *badger.Txn) error {
		prefix := []byte{prefixChunkList}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: want == nil, PrefetchSize: 64})
		defer it.Close()
		n := 0
		for it.Rewind(); it.Valid(); it.Next() {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			item := it.Item()
			key := item.Key()
			if len(key) != 1+cas.IDSize {
				return corruptKey("chunk list", key)
			}
			hash := cas.ID(key[1:])
			if want != nil && !want(hash) {
				continue
			}
			var chunks []Chunk
			err := item.Value(func(val []byte) error {
				var err error
				chunks, err = decodeChunkList(val)
				return err
			})
			if err != nil {
				return fmt.Errorf("chunk list %s: %w", hash, err)
			}
			if err := fn(hash, chunks); err != nil {
				return err
			}
		}
		return nil
	})
}

// RefsSince runs inside a caller's read-write transaction (gc's deletion
// transactions): it calls fn with every version committed after wm, with
// its chunk list (nil for a deletion or the empty file), and returns the
// watermark of txn's snapshot.
//
// It reads the next-root-ID counter and every root record through txn.
// Every commit rewrites its root's record and every new root the counter,
// so a commit that lands after txn's snapshot makes txn fail with
// badger.ErrConflict when it commits: a transaction that ran RefsSince and
// committed has seen every version there is. Conflict candidates have no
// seq and are not covered; the server keeps their chunks pinned until they
// are stored.
func (db *DB) RefsSince(txn *badger.Txn, wm Watermark, fn func(ref Ref, chunks []Chunk) error) (Watermark, error) {
	if _, err := txn.Get(nextRootIDKey); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("manifest: read next root id: %w", err)
	}
	now := Watermark{}
	var moved []RootID
	err := scan(context.Background(), txn, []byte{prefixRoot}, false, func(key, val []byte) error {
		r, err := decodeRootRecord(key, val)
		if err != nil {
			return err
		}
		now[r.ID] = r.Seq
		if r.Seq > wm[r.ID] {
			moved = append(moved, r.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, root := range moved {
		if err := refsSince(txn, root, wm[root], fn); err != nil {
			return nil, err
		}
	}
	return now, nil
}

// refsSince reports the versions of root committed after seq after. The
// feed holds each path once, at its latest change, so the paths changed
// since are those with a feed entry past after.
func refsSince(txn *badger.Txn, root RootID, after uint64, fn func(Ref, []Chunk) error) error {
	var paths []string
	scope := rootScope(prefixFeed, root)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: scope, PrefetchValues: true, PrefetchSize: 64})
	for it.Seek(feedKey(root, after+1)); it.ValidForPrefix(scope); it.Next() {
		item := it.Item()
		_, seq, err := parseFeedKey(item.Key())
		if err == nil {
			var path string
			err = item.Value(func(v []byte) error {
				var derr error
				path, derr = decodeFeedEntry(v)
				return derr
			})
			paths = append(paths, path)
			if err != nil {
				err = fmt.Errorf("feed entry %d of root %d: %w", seq, root, err)
			}
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	it.Close()
	for _, path := range paths {
		var refs []Ref
		vscope := versionScope(root, path)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: vscope, PrefetchValues: true, PrefetchSize: 16})
		for it.Seek(versionKey(root, path, after+1)); it.ValidForPrefix(vscope); it.Next() {
			item := it.Item()
			_, _, seq, err := parseVersionKey(item.Key())
			var v Version
			if err == nil {
				err = item.Value(func(val []byte) error {
					var derr error
					v, derr = decodeVersion(val)
					return derr
				})
				if err != nil {
					err = fmt.Errorf("version %d of %q in root %d: %w", seq, path, root, err)
				}
			}
			if err != nil {
				it.Close()
				return err
			}
			refs = append(refs, Ref{Root: root, Path: path, Seq: seq, Hash: v.Hash, Size: v.Size, Deleted: v.Deleted})
		}
		it.Close()
		for _, ref := range refs {
			var chunks []Chunk
			if ref.HasChunks() {
				what := fmt.Sprintf("chunk list %s of version %d of %q in root %d", ref.Hash, ref.Seq, path, root)
				val, err := getValue(txn, chunkListKey(ref.Hash), what)
				if err != nil {
					return err
				}
				if chunks, err = decodeChunkList(val); err != nil {
					return fmt.Errorf("%s: %w", what, err)
				}
			}
			if err := fn(ref, chunks); err != nil {
				return err
			}
		}
	}
	return nil
}

// decodeRootRecord decodes a root record found by a scan.
func decodeRootRecord(key, val []byte) (Root, error) {
	id, err := parseRootKey(key)
	if err != nil {
		return Root{}, err
	}
	r, err := decodeRoot(val)
	if err != nil {
		return Root{}, fmt.Errorf("root %d: %w", id, err)
	}
	if r.ID != id {
		return Root{}, fmt.Errorf("%w: record under root key %d has id %d", ErrCorrupt, id, r.ID)
	}
	return r, nil
}

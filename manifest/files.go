package manifest

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/cas"
)

// Head returns the head of a file: its latest version, which may be a
// deletion. A path never committed is ErrNotFound.
func (db *DB) Head(ctx context.Context, root RootID, path string) (Head, error) {
	if err := validPath(path); err != nil {
		return Head{}, fmt.Errorf("manifest: head of root %d: %w", root, err)
	}
	var h Head
	err := db.view(ctx, "get head", func(txn *badger.Txn) error {
		var found bool
		var err error
		h, found, err = getHead(txn, root, path)
		if err == nil && !found {
			err = fmt.Errorf("%w: file %q in root %d", ErrNotFound, path, root)
		}
		return err
	})
	return h, err
}

// Heads is Head for many paths of root, read in one transaction: found[i]
// is false for a path that has no head. A batch of proposals needs every
// head it names, and a transaction per path costs more than the lookup.
func (db *DB) Heads(ctx context.Context, root RootID, paths []string) (heads []Head, found []bool, err error) {
	for _, p := range paths {
		if err := validPath(p); err != nil {
			return nil, nil, fmt.Errorf("manifest: heads of root %d: %w", root, err)
		}
	}
	heads, found = make([]Head, len(paths)), make([]bool, len(paths))
	err = db.view(ctx, "get heads", func(txn *badger.Txn) error {
		for i, p := range paths {
			var err error
			if heads[i], found[i], err = getHead(txn, root, p); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	return heads, found, nil
}

func getHead(txn *badger.Txn, root RootID, path string) (Head, bool, error) {
	val, found, err := lookup(txn, headKey(root, path))
	if err != nil || !found {
		return Head{}, false, err
	}
	h, err := decodeHead(val)
	if err != nil {
		return Head{}, false, fmt.Errorf("head of %q in root %d: %w", path, root, err)
	}
	return h, true, nil
}

// ListHeads calls fn with the head of every file of root, deleted ones
// included, in path byte order. An error from fn stops the walk and is
// returned. It reads one consistent snapshot.
func (db *DB) ListHeads(ctx context.Context, root RootID, fn func(path string, h Head) error) error {
	return db.view(ctx, "list heads", func(txn *badger.Txn) error {
		if _, err := getRoot(txn, root); err != nil {
			return err
		}
		return scan(ctx, txn, rootScope(prefixHead, root), false, func(key, val []byte) error {
			_, path, err := parseRootPathKey(prefixHead, key)
			if err != nil {
				return err
			}
			h, err := decodeHead(val)
			if err != nil {
				return fmt.Errorf("head of %q in root %d: %w", path, root, err)
			}
			return fn(path, h)
		})
	})
}

// Versions returns every version of a file in seq order. A path never
// committed is ErrNotFound.
func (db *DB) Versions(ctx context.Context, root RootID, path string) ([]Version, error) {
	if err := validPath(path); err != nil {
		return nil, fmt.Errorf("manifest: versions in root %d: %w", root, err)
	}
	var out []Version
	err := db.view(ctx, "list versions", func(txn *badger.Txn) error {
		return scanVersions(ctx, txn, root, path, func(v Version) error {
			out = append(out, v)
			return nil
		})
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("%w: file %q in root %d", ErrNotFound, path, root)
	}
	return out, err
}

func scanVersions(ctx context.Context, txn *badger.Txn, root RootID, path string, fn func(Version) error) error {
	return scan(ctx, txn, versionScope(root, path), false, func(key, val []byte) error {
		_, _, seq, err := parseVersionKey(key)
		if err != nil {
			return err
		}
		v, err := decodeVersion(val)
		if err != nil {
			return fmt.Errorf("version %d of %q in root %d: %w", seq, path, root, err)
		}
		if v.Seq != seq {
			return fmt.Errorf("%w: version key of %q in root %d has seq %d, record %d", ErrCorrupt, path, root, seq, v.Seq)
		}
		return fn(v)
	})
}

// Version returns the version of a file committed at seq.
func (db *DB) Version(ctx context.Context, root RootID, path string, seq uint64) (Version, error) {
	if err := validPath(path); err != nil {
		return Version{}, fmt.Errorf("manifest: version in root %d: %w", root, err)
	}
	var v Version
	err := db.view(ctx, "get version", func(txn *badger.Txn) error {
		what := fmt.Sprintf("version %d of %q in root %d", seq, path, root)
		val, err := getValue(txn, versionKey(root, path, seq), what)
		if err != nil {
			return err
		}
		if v, err = decodeVersion(val); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	})
	return v, err
}

// FindVersionsByPrefix returns the versions of a file whose content hash
// starts with prefix, in seq order, as git resolves an abbreviated hash.
// Several versions can share one content (a file changed back); the prefix
// is ErrAmbiguous only if it matches several different contents, and
// ErrNotFound if it matches none. Deletions have no hash and never match.
func (db *DB) FindVersionsByPrefix(ctx context.Context, root RootID, path string, prefix cas.Prefix) ([]Version, error) {
	if err := validPath(path); err != nil {
		return nil, fmt.Errorf("manifest: find version in root %d: %w", root, err)
	}
	var out []Version
	err := db.view(ctx, "find versions", func(txn *badger.Txn) error {
		return scanVersions(ctx, txn, root, path, func(v Version) error {
			if v.Deleted || !prefix.Matches(v.Hash) {
				return nil
			}
			if len(out) > 0 && out[0].Hash != v.Hash {
				return fmt.Errorf("%w: %s matches %s and %s of %q in root %d",
					ErrAmbiguous, prefix, out[0].Hash.Short(), v.Hash.Short(), path, root)
			}
			out = append(out, v)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no version of %q in root %d has a hash starting with %s", ErrNotFound, path, root, prefix)
	}
	return out, nil
}

// PutChunkList stores the chunk list of a content hash unless one is
// stored already: the list of a content never changes, so the first one
// wins. The empty content's list is implicit and never stored.
func (db *DB) PutChunkList(ctx context.Context, hash cas.ID, chunks []Chunk) error {
	if hash.IsZero() {
		return fmt.Errorf("manifest: put chunk list: %w: zero hash", ErrInvalid)
	}
	if hash == EmptyHash {
		if len(chunks) != 0 {
			return fmt.Errorf("manifest: put chunk list: %w: %d chunks for the empty content", ErrInvalid, len(chunks))
		}
		return nil
	}
	var size uint64
	for _, c := range chunks {
		size += uint64(c.Size)
	}
	if len(chunks) == 0 {
		return fmt.Errorf("manifest: put chunk list %s: %w: no chunks", hash.Short(), ErrInvalid)
	}
	if err := checkChunks(chunks, size); err != nil {
		return fmt.Errorf("manifest: put chunk list %s: %w", hash.Short(), err)
	}
	val, err := encodeChunkList(chunks)
	if err != nil {
		return err
	}
	return db.update(ctx, "put chunk list", func(txn *badger.Txn) error {
		return putChunkListIfAbsent(txn, hash, val)
	})
}

func putChunkListIfAbsent(txn *badger.Txn, hash cas.ID, val []byte) error {
	found, err := exists(txn, chunkListKey(hash))
	if err != nil || found {
		return err
	}
	if err := txn.Set(chunkListKey(hash), val); err != nil {
		return fmt.Errorf("manifest: write chunk list %s: %w", hash.Short(), err)
	}
	return nil
}

// ChunkList returns the chunks of a content hash in file order.
func (db *DB) ChunkList(ctx context.Context, hash cas.ID) ([]Chunk, error) {
	if hash == EmptyHash {
		return []Chunk{}, nil
	}
	var out []Chunk
	err := db.view(ctx, "get chunk list", func(txn *badger.Txn) error {
		val, err := getValue(txn, chunkListKey(hash), "chunk list %s", hash)
		if err != nil {
			return err
		}
		if out, err = decodeChunkList(val); err != nil {
			return fmt.Errorf("chunk list %s: %w", hash, err)
		}
		return nil
	})
	return out, err
}

// HasChunkList reports whether the chunk list of hash is stored (or
// implicit, for the empty content).
func (db *DB) HasChunkList(ctx context.Context, hash cas.ID) (bool, error) {
	if hash == EmptyHash {
		return true, nil
	}
	var found bool
	err := db.view(ctx, "has chunk list", func(txn *badger.Txn) error {
		var err error
		found, err = exists(txn, chunkListKey(hash))
		return err
	})
	return found, err
}

// VersionsAfter returns the versions of a file committed after seq
// after, in seq order; none is not an error.
func (db *DB) VersionsAfter(ctx context.Context, root RootID, path string, after uint64) ([]Version, error) {
	if err := validPath(path); err != nil {
		return nil, fmt.Errorf("manifest: versions in root %d: %w", root, err)
	}
	var out []Version
	err := db.view(ctx, "list versions", func(txn *badger.Txn) error {
		scope := versionScope(root, path)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: scope, PrefetchValues: true, PrefetchSize: 16})
		defer it.Close()
		if after == ^uint64(0) {
			return nil
		}
		for it.Seek(versionKey(root, path, after+1)); it.ValidForPrefix(scope); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			_, _, seq, err := parseVersionKey(item.Key())
			if err != nil {
				return err
			}
			val, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("manifest: read version %d of %q in root %d: %w", seq, path, root, err)
			}
			v, err := decodeVersion(val)
			if err != nil {
				return fmt.Errorf("version %d of %q in root %d: %w", seq, path, root, err)
			}
			if v.Seq != seq {
				return fmt.Errorf("%w: version key of %q in root %d has seq %d, record %d", ErrCorrupt, path, root, seq, v.Seq)
			}
			out = append(out, v)
		}
		return nil
	})
	return out, err
}

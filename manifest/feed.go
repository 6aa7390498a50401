package manifest

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Change says that Path changed at root sequence Seq, and not since.
type Change struct {
	Seq  uint64
	Path string
}

// Changes returns the changes of root after afterSeq in seq order, at
// most limit of them (limit <= 0: all). The feed keeps one entry per path,
// at its latest commit, so a client that was away since afterSeq learns
// each path changed since exactly once, however often it changed, and
// pages on by passing the last Seq it got as the next afterSeq.
func (db *DB) Changes(ctx context.Context, root RootID, afterSeq uint64, limit int) ([]Change, error) {
	var out []Change
	err := db.view(ctx, "changes", func(txn *badger.Txn) error {
		if _, err := getRoot(txn, root); err != nil {
			return err
		}
		scope := rootScope(prefixFeed, root)
		it := txn.NewIterator(badger.IteratorOptions{Prefix: scope, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Seek(feedKey(root, afterSeq+1)); it.ValidForPrefix(scope); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if limit > 0 && len(out) == limit {
				return nil
			}
			item := it.Item()
			_, seq, err := parseFeedKey(item.Key())
			if err != nil {
				return err
			}
			val, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("manifest: read feed entry %d of root %d: %w", seq, root, err)
			}
			path, err := decodeFeedEntry(val)
			if err != nil {
				return fmt.Errorf("feed entry %d of root %d: %w", seq, root, err)
			}
			out = append(out, Change{Seq: seq, Path: path})
		}
		return nil
	})
	return out, err
}

package manifest

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// staggeredIntervals is the Staggered policy, as in Syncthing's staggered
// versioning: a version whose age is below end keeps at most one version
// per step. The last interval has no end.
var staggeredIntervals = []struct{ step, end time.Duration }{
	{30 * time.Second, time.Hour},
	{time.Hour, 24 * time.Hour},
	{24 * time.Hour, 30 * 24 * time.Hour},
	{7 * 24 * time.Hour, 0},
}

// Retained reports which of a file's versions the policy r keeps at time
// now. versions are in seq order, as Versions returns them; the answer
// has one entry per version. The last version is the file's head and is
// always kept, whatever the policy says of it. Deletions are versions like
// any other.
//
//   - KeepAll keeps everything.
//   - KeepLast keeps the last Value versions.
//   - KeepWithin keeps the versions whose WallTime is at most Value
//     nanoseconds before now (and any stamped after now).
//   - Staggered walks the versions from the oldest, keeps the oldest, and
//     keeps each later one only if it is at least one step younger than
//     the last one kept, where the step depends on the version's age: 30 s
//     below one hour, 1 h below one day, 1 day below 30 days, 1 week
//     beyond. So each interval holds about one version per step, and the
//     one kept is the oldest of its step, which does not change as time
//     passes and newer versions arrive.
//
// A policy of an unknown kind keeps everything: dropping is the one
// mistake that cannot be undone.
func Retained(r Retention, versions []Version, now time.Time) []bool {
	keep := make([]bool, len(versions))
	switch r.Kind {
	case KeepLast:
		for i := range keep {
			keep[i] = int64(len(versions)-i) <= r.Value
		}
	case KeepWithin:
		oldest := now.Add(-time.Duration(r.Value))
		for i, v := range versions {
			keep[i] = !v.WallTime.Before(oldest)
		}
	case Staggered:
		staggered(versions, now, keep)
	default:
		for i := range keep {
			keep[i] = true
		}
	}
	if len(keep) > 0 {
		keep[len(keep)-1] = true
	}
	return keep
}

func staggered(versions []Version, now time.Time, keep []bool) {
	var lastKeptAge time.Duration
	for i, v := range versions {
		age := now.Sub(v.WallTime)
		if i == 0 {
			keep[i], lastKeptAge = true, age
			continue
		}
		step := staggeredIntervals[len(staggeredIntervals)-1].step
		for _, iv := range staggeredIntervals {
			if age < iv.end {
				step = iv.step
				break
			}
		}
		// A wall clock that went backwards makes a later version look
		// older than the one kept before it: the difference is negative
		// and the version is thinned out like any other within the step.
		if lastKeptAge-age < step {
			continue
		}
		keep[i], lastKeptAge = true, age
	}
}

// SetRetention stores root's retention policy. It drops nothing itself:
// the server applies the policy (Retained, DropVersions). A policy that
// does not validate is ErrInvalid.
func (db *DB) SetRetention(ctx context.Context, root RootID, r Retention) error {
	defer db.rootsChanged()
	if err := r.validate(); err != nil {
		return fmt.Errorf("manifest: set retention of root %d: %w", root, err)
	}
	return db.update(ctx, "set retention", func(txn *badger.Txn) error {
		rec, err := getRoot(txn, root)
		if err != nil {
			return err
		}
		rec.Retention = r
		return putRoot(txn, rec)
	})
}

// dropBatch bounds the versions one DropVersions transaction deletes.
const dropBatch = 1000

// DropVersions deletes the versions of path committed at seqs and returns
// how many it deleted. Only the version records go: chunk lists stay
// (they are shared by content, and garbage collection decides whether
// anything still uses them), and so do the head, the feed and any
// conflict. The head's own version is never dropped, even if seqs names
// it: a file keeps at least its latest version. Seqs with no version are
// skipped. Large lists are deleted in several transactions, each of which
// reads the head again.
func (db *DB) DropVersions(ctx context.Context, root RootID, path string, seqs []uint64) (int, error) {
	if err := validPath(path); err != nil {
		return 0, fmt.Errorf("manifest: drop versions in root %d: %w", root, err)
	}
	dropped := 0
	for batch := range slices.Chunk(seqs, dropBatch) {
		n := 0
		err := db.update(ctx, "drop versions", func(txn *badger.Txn) error {
			n = 0
			head, found, err := getHead(txn, root, path)
			if err != nil {
				return err
			}
			for _, seq := range batch {
				if found && seq == head.Seq {
					continue
				}
				key := versionKey(root, path, seq)
				has, err := exists(txn, key)
				if err != nil {
					return err
				}
				if !has {
					continue
				}
				if err := txn.Delete(key); err != nil {
					return fmt.Errorf("manifest: drop version %d of %q in root %d: %w", seq, path, root, err)
				}
				n++
			}
			return nil
		})
		if err != nil {
			return dropped, err
		}
		dropped += n
	}
	return dropped, nil
}

package manifest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
)

// Proposal is a new version of one file, offered against the head it was
// made from.
type Proposal struct {
	Root RootID
	Path string
	// BaseSeq and BaseHash name the head the proposal started from; both
	// zero for a file the proposer believes new.
	BaseSeq  uint64
	BaseHash cas.ID

	// The new content. A deletion has Deleted set, a zero Hash and Size 0.
	Hash    cas.ID
	Size    uint64
	Mode    uint32
	MTime   time.Time
	Deleted bool
	// Client proposes the version; zero for the server or the admin. It is
	// recorded, not checked: who may write is the server's decision.
	Client uuid.UUID

	// Chunks is the chunk list of Hash, stored if none is stored yet. It
	// may be left nil when the list is stored already, and always for a
	// deletion or an empty file.
	Chunks []Chunk
	// WallTime stamps the version; zero means the DB's clock.
	WallTime time.Time

	// Check, if set, runs inside the commit transaction after the head
	// compare succeeded and before anything is written; an error aborts the
	// commit and is returned as is. The server uses it to re-check that
	// every chunk is still in the cas index in the same transaction, so GC
	// cannot delete a chunk between that check and the commit. It may run
	// more than once, when the transaction is retried, and on another
	// goroutine (the one committing the group); it must only read txn.
	Check func(txn *badger.Txn) error
	// ClearConflict deletes the path's conflict in the same transaction:
	// the version resolves it.
	ClearConflict bool
	// Conflict, if not empty, is the path's conflict as the caller read it
	// when it decided on this version: the commit fails with
	// ErrConflictChanged, writing nothing, unless the stored conflict is
	// still exactly these candidates (none was added, replaced or
	// cleared meanwhile), and clears it. It implies ClearConflict. A
	// resolution uses it so that a side added while it decided is never
	// dropped unseen.
	Conflict []Candidate
	// History are versions written before this one in the same
	// transaction, in order, each at its own seq: a resolution keeps the
	// losing sides of a conflict this way. They do not move the head and
	// have no feed entry (the proposal's version, right after them,
	// does). Their Seq is ignored and a zero WallTime means the DB's
	// clock; their chunk lists must be stored already.
	History []Version
}

// HeadChangedError is the error of a Commit whose base is not the current
// head. It matches ErrHeadChanged with errors.Is.
type HeadChangedError struct {
	Root     RootID
	Path     string
	BaseSeq  uint64
	BaseHash cas.ID
	// Exists is false if the file has no head at all; Head is then zero.
	Exists bool
	// Head is the file's current head, for the caller to rebase on or to
	// record as the server side of a conflict.
	Head Head
}

func (e *HeadChangedError) Error() string {
	if !e.Exists {
		return fmt.Sprintf("%v: %q in root %d: base is %d/%s but the file does not exist",
			ErrHeadChanged, e.Path, e.Root, e.BaseSeq, e.BaseHash.Short())
	}
	return fmt.Sprintf("%v: %q in root %d: base is %d/%s, head is %d/%s",
		ErrHeadChanged, e.Path, e.Root, e.BaseSeq, e.BaseHash.Short(), e.Head.Seq, e.Head.Hash.Short())
}

// Is makes errors.Is(err, ErrHeadChanged) true.
func (e *HeadChangedError) Is(target error) bool { return target == ErrHeadChanged }

// Commit makes p the new head of its file, if p's base is the current head
// (compare-and-swap, as go-git's CheckAndSetReference):
//
//   - a file without a head accepts only the base (0, zero hash);
//   - a file with a head accepts only a base equal to the head's seq and
//     hash. A deleted head has the zero hash, so recreating a deleted file
//     names the deletion's seq with the zero hash.
//
// Anything else fails with a *HeadChangedError (ErrHeadChanged) carrying
// the current head, and nothing is written.
//
// On success the root's seq advances, the version is written at that seq,
// the head moves, the chunk list is stored if new, and the path's
// change-feed entry moves to the new seq, all in one transaction. A content
// hash with no stored chunk list and none in p is ErrMissingChunkList,
// except for deletions and empty files.
//
// A resolution of a conflict commits with Proposal.Conflict and
// Proposal.History: the conflict must still be the one the caller decided
// on (else ErrConflictChanged), the history versions (the losing sides)
// take the seqs before the new version, and the conflict is cleared, all
// in the same transaction.
//
// Concurrent commits to one root are grouped: one caller runs the queued
// proposals in a single transaction and they share one fsync, each judged
// against the heads the earlier ones left. Badger transaction collisions
// (with writers outside the group) are retried here; only a lost
// compare-and-swap reaches the caller. Once queued, a proposal is decided
// even if ctx is canceled meanwhile, so a returned success is durable.
func (db *DB) Commit(ctx context.Context, p Proposal) (Version, error) {
	pc, err := db.prepare(p)
	if err != nil {
		return Version{}, err
	}
	if err := ctx.Err(); err != nil {
		return Version{}, fmt.Errorf("manifest: commit %q to root %d: %w", p.Path, p.Root, err)
	}
	pc.ctx = ctx
	q := db.commitQueue(p.Root)
	q.mu.Lock()
	q.pending = append(q.pending, pc)
	lead := !q.leading
	q.leading = true
	q.mu.Unlock()
	if !lead {
		<-pc.wake
		if !pc.promoted {
			return pc.out, pc.err
		}
	}
	db.lead(q, pc)
	return pc.out, pc.err
}

// pendingCommit is a validated, encoded proposal waiting in a queue.
type pendingCommit struct {
	ctx      context.Context
	p        Proposal
	v        Version   // the new version, without its seq
	history  []Version // p.History, normalized, without seqs
	needList bool
	listVal  []byte // encoded p.Chunks, nil if none were given
	feedVal  []byte

	// Set by the leader before wake is closed.
	out      Version
	err      error
	promoted bool // woken to lead, not with a result
	wake     chan struct{}
}

// commitQueue holds the proposals waiting for one root. At most one caller
// leads at a time; the others wait on their wake channels.
type commitQueue struct {
	mu      sync.Mutex
	pending []*pendingCommit
	leading bool
}

// maxGroup bounds the proposals of one transaction.
const maxGroup = 128

func (db *DB) commitQueue(root RootID) *commitQueue {
	db.queuesMu.Lock()
	defer db.queuesMu.Unlock()
	q := db.queues[root]
	if q == nil {
		q = &commitQueue{}
		db.queues[root] = q
	}
	return q
}

// lead commits groups from q until self is decided, then hands the lead to
// the oldest waiting proposal, or ends it if none waits.
func (db *DB) lead(q *commitQueue, self *pendingCommit) {
	for {
		q.mu.Lock()
		group := db.takeGroup(q)
		q.mu.Unlock()

		db.commitGroup(group)
		selfDone := false
		for _, pc := range group {
			if pc == self {
				selfDone = true
			} else {
				close(pc.wake)
			}
		}
		if !selfDone {
			continue
		}
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.leading = false
		} else {
			next := q.pending[0]
			next.promoted = true
			close(next.wake)
		}
		q.mu.Unlock()
		return
	}
}

// takeGroup removes the next group from q.pending: as many proposals as fit
// in half of badger's transaction limits (the chunk lists dominate), and
// always at least one. Callers hold q.mu.
func (db *DB) takeGroup(q *commitQueue) []*pendingCommit {
	budget, count := db.kv.MaxBatchSize()/2, db.kv.MaxBatchCount()/2
	n := 0
	for n < len(q.pending) && n < maxGroup {
		// Per proposal: root, version, head, two feed keys, conflict and
		// chunk list keys, with their values.
		// History versions add one key each.
		pc := q.pending[n]
		keys := 8 + len(pc.history)
		cost := int64(len(pc.listVal) + len(pc.p.Path)*keys + 1024 + 256*len(pc.history))
		if n > 0 && (cost > budget || count < int64(keys)) {
			break
		}
		budget -= cost
		count -= int64(keys)
		n++
	}
	group := make([]*pendingCommit, n)
	copy(group, q.pending)
	q.pending = append(q.pending[:0:0], q.pending[n:]...)
	return group
}

// commitGroup decides every proposal of group and commits the successful
// ones in one transaction. If badger refuses the transaction as too big,
// the proposals are committed one by one instead.
func (db *DB) commitGroup(group []*pendingCommit) {
	live := group[:0:0]
	for _, pc := range group {
		if err := pc.ctx.Err(); err != nil {
			pc.err = fmt.Errorf("manifest: commit %q to root %d: %w", pc.p.Path, pc.p.Root, err)
			continue
		}
		live = append(live, pc)
	}
	if len(live) == 0 {
		return
	}
	err := db.update(context.Background(), "commit", func(txn *badger.Txn) error {
		return applyGroup(txn, live)
	})
	if errors.Is(err, badger.ErrTxnTooBig) && len(live) > 1 {
		for _, pc := range live {
			db.commitGroup([]*pendingCommit{pc})
		}
		return
	}
	if err != nil {
		for _, pc := range live {
			pc.out, pc.err = Version{}, err
		}
	}
}

// applyGroup runs the proposals in order inside txn. A proposal that fails
// its checks gets its own error and writes nothing; an error returned
// concerns the whole transaction.
func applyGroup(txn *badger.Txn, group []*pendingCommit) error {
	rootID := group[0].p.Root
	root, err := getRoot(txn, rootID)
	if err != nil {
		return err
	}
	startSeq := root.Seq
	for _, pc := range group {
		pc.out, pc.err = Version{}, nil
		head, found, err := checkProposal(txn, pc)
		if err != nil {
			pc.err = err
			continue
		}
		for _, h := range pc.history {
			root.Seq++
			h.Seq = root.Seq
			if err := putVersionRecord(txn, pc.p.Root, pc.p.Path, h); err != nil {
				return err
			}
		}
		root.Seq++
		v := pc.v
		v.Seq = root.Seq
		if err := writeProposal(txn, pc, v, head, found); err != nil {
			return err
		}
		pc.out = v
	}
	if root.Seq == startSeq {
		return nil
	}
	return putRoot(txn, root)
}

// checkProposal does every read and check of a proposal, before anything
// of it is written, and returns the current head.
func checkProposal(txn *badger.Txn, pc *pendingCommit) (Head, bool, error) {
	p := &pc.p
	head, found, err := getHead(txn, p.Root, p.Path)
	if err != nil {
		return Head{}, false, err
	}
	if (!found && (p.BaseSeq != 0 || !p.BaseHash.IsZero())) ||
		(found && (p.BaseSeq != head.Seq || p.BaseHash != head.Hash)) {
		return Head{}, false, &HeadChangedError{Root: p.Root, Path: p.Path, BaseSeq: p.BaseSeq, BaseHash: p.BaseHash, Exists: found, Head: head}
	}
	if len(p.Conflict) > 0 {
		stored, _, err := getConflict(txn, p.Root, p.Path)
		if err != nil {
			return Head{}, false, err
		}
		if !sameCandidates(stored, p.Conflict) {
			return Head{}, false, fmt.Errorf("%w: %q in root %d: %d candidates stored, %d expected",
				ErrConflictChanged, p.Path, p.Root, len(stored), len(p.Conflict))
		}
	}
	if p.Check != nil {
		if err := runCheck(txn, p); err != nil {
			return Head{}, false, err
		}
	}
	if pc.needList && pc.listVal == nil {
		if err := checkChunkList(txn, p.Hash, p); err != nil {
			return Head{}, false, err
		}
	}
	for _, h := range pc.history {
		if needsList(h.Size, h.Deleted) && h.Hash != p.Hash {
			if err := checkChunkList(txn, h.Hash, p); err != nil {
				return Head{}, false, err
			}
		}
	}
	return head, found, nil
}

// needsList reports whether content has a stored chunk list: anything but
// a deletion or the empty file.
func needsList(size uint64, deleted bool) bool { return !deleted && size > 0 }

func checkChunkList(txn *badger.Txn, hash cas.ID, p *Proposal) error {
	has, err := exists(txn, chunkListKey(hash))
	if err != nil {
		return err
	}
	if !has {
		return fmt.Errorf("%w: %s for %q in root %d", ErrMissingChunkList, hash, p.Path, p.Root)
	}
	return nil
}

// sameCandidates reports whether two conflicts hold the same candidates
// in the same order.
func sameCandidates(a, b []Candidate) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Kind != y.Kind || x.Client != y.Client || x.Hash != y.Hash || x.Size != y.Size || x.Mode != y.Mode ||
			!x.MTime.Equal(y.MTime) || x.Deleted != y.Deleted || x.BaseSeq != y.BaseSeq ||
			x.LastUpdateTimestamp != y.LastUpdateTimestamp || !x.Created.Equal(y.Created) {
			return false
		}
	}
	return true
}

// runCheck runs a proposal's hook. A panic becomes this proposal's error:
// the hook runs on the goroutine that leads the group, and unwinding it
// would strand the other proposals waiting on it.
func runCheck(txn *badger.Txn, p *Proposal) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("manifest: commit %q to root %d: check panicked: %v", p.Path, p.Root, r)
		}
	}()
	return p.Check(txn)
}

// writeProposal writes a checked proposal as version v. Errors here are
// the transaction's (too big, discarded), never the proposal's.
func writeProposal(txn *badger.Txn, pc *pendingCommit, v Version, prev Head, hadHead bool) error {
	p := &pc.p
	if pc.needList && pc.listVal != nil {
		if err := putChunkListIfAbsent(txn, p.Hash, pc.listVal); err != nil {
			return err
		}
	}
	if err := putVersion(txn, p.Root, p.Path, v); err != nil {
		return err
	}
	if hadHead {
		if err := txn.Delete(feedKey(p.Root, prev.Seq)); err != nil {
			return fmt.Errorf("manifest: commit %q: drop feed entry %d: %w", p.Path, prev.Seq, err)
		}
	}
	if err := txn.Set(feedKey(p.Root, v.Seq), pc.feedVal); err != nil {
		return fmt.Errorf("manifest: commit %q: feed entry %d: %w", p.Path, v.Seq, err)
	}
	if p.ClearConflict {
		if err := txn.Delete(conflictKey(p.Root, p.Path)); err != nil {
			return fmt.Errorf("manifest: commit %q: clear conflict: %w", p.Path, err)
		}
	}
	return nil
}

// prepare validates and encodes a proposal outside any transaction.
func (db *DB) prepare(p Proposal) (*pendingCommit, error) {
	if err := validPath(p.Path); err != nil {
		return nil, fmt.Errorf("manifest: commit to root %d: %w", p.Root, err)
	}
	if err := checkContent(1, p.Hash, p.Size, p.Deleted); err != nil {
		return nil, fmt.Errorf("manifest: commit %q to root %d: %w", p.Path, p.Root, err)
	}
	if len(p.Conflict) > MaxCandidates {
		return nil, fmt.Errorf("manifest: commit %q to root %d: %w: %d candidates, at most %d", p.Path, p.Root, ErrInvalid, len(p.Conflict), MaxCandidates)
	}
	if len(p.History) > MaxCandidates {
		return nil, fmt.Errorf("manifest: commit %q to root %d: %w: %d history versions, at most %d", p.Path, p.Root, ErrInvalid, len(p.History), MaxCandidates)
	}
	p.ClearConflict = p.ClearConflict || len(p.Conflict) > 0
	pc := &pendingCommit{p: p, needList: needsList(p.Size, p.Deleted), wake: make(chan struct{})}
	for i, h := range p.History {
		if err := checkContent(1, h.Hash, h.Size, h.Deleted); err != nil {
			return nil, fmt.Errorf("manifest: commit %q to root %d: history version %d: %w", p.Path, p.Root, i, err)
		}
		wall := h.WallTime
		if wall.IsZero() {
			wall = db.now()
		}
		pc.history = append(pc.history, Version{
			Hash: h.Hash, Size: h.Size, Mode: h.Mode, MTime: fromNanos(nanos(h.MTime)),
			Client: h.Client, WallTime: fromNanos(nanos(wall)), Deleted: h.Deleted,
		})
	}
	switch {
	case !pc.needList && len(p.Chunks) > 0:
		return nil, fmt.Errorf("manifest: commit %q to root %d: %w: %d chunks for no content", p.Path, p.Root, ErrInvalid, len(p.Chunks))
	case pc.needList && len(p.Chunks) > 0:
		if err := checkChunks(p.Chunks, p.Size); err != nil {
			return nil, fmt.Errorf("manifest: commit %q to root %d: %w", p.Path, p.Root, err)
		}
		var err error
		if pc.listVal, err = encodeChunkList(p.Chunks); err != nil {
			return nil, err
		}
	}
	wall := p.WallTime
	if wall.IsZero() {
		wall = db.now()
	}
	// Times are normalized as a later read returns them.
	pc.v = Version{
		Hash: p.Hash, Size: p.Size, Mode: p.Mode, MTime: fromNanos(nanos(p.MTime)),
		Client: p.Client, WallTime: fromNanos(nanos(wall)), Deleted: p.Deleted,
	}
	var err error
	if pc.feedVal, err = encodeFeedEntry(p.Path); err != nil {
		return nil, err
	}
	return pc, nil
}

// putVersionRecord writes a version record and nothing else.
func putVersionRecord(txn *badger.Txn, root RootID, path string, v Version) error {
	val, err := encodeVersion(v)
	if err != nil {
		return err
	}
	if err := txn.Set(versionKey(root, path, v.Seq), val); err != nil {
		return fmt.Errorf("manifest: write version %d of %q in root %d: %w", v.Seq, path, root, err)
	}
	return nil
}

// putVersion writes a version record and the head it implies.
func putVersion(txn *badger.Txn, root RootID, path string, v Version) error {
	head, err := encodeHead(v.Head())
	if err != nil {
		return err
	}
	if err := putVersionRecord(txn, root, path, v); err != nil {
		return err
	}
	if err := txn.Set(headKey(root, path), head); err != nil {
		return fmt.Errorf("manifest: write head of %q in root %d: %w", path, root, err)
	}
	return nil
}

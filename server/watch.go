package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// MaxQueuedNotices bounds the notices waiting for one watch stream. A
// watcher that falls further behind loses them and gets one FULL_SCAN
// notice per root instead: comparing all heads catches up on everything.
const MaxQueuedNotices = 256

// broker fans notices out to the watch streams of each root.
type broker struct {
	mu    sync.Mutex
	roots map[manifest.RootID]map[*subscriber]struct{}
	// gone are removed roots: a watch that checked its membership just
	// before the removal must not subscribe to them afterwards. Root IDs
	// are never reused, and removals are rare, so the set stays small.
	gone   map[manifest.RootID]struct{}
	closed bool
}

func newBroker() *broker {
	return &broker{
		roots: make(map[manifest.RootID]map[*subscriber]struct{}),
		gone:  make(map[manifest.RootID]struct{}),
	}
}

// subscriber is one watch stream's queue.
type subscriber struct {
	client uuid.UUID
	wake   chan struct{} // capacity 1: "the queue changed"

	mu      sync.Mutex
	roots   map[manifest.RootID]bool
	queue   []*syncpb.Notice
	dropped map[string]uint64 // root name → highest seq dropped on overflow
	closed  bool
	// reason, if set, is why the subscription was ended under the
	// watcher: the watch returns it instead of its pending notices.
	reason error
}

func newSubscriber(client uuid.UUID) *subscriber {
	return &subscriber{client: client, wake: make(chan struct{}, 1), roots: make(map[manifest.RootID]bool)}
}

func (b *broker) subscribe(sub *subscriber, roots []manifest.RootID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if b.closed {
		sub.closeLocked(nil)
		return
	}
	for _, r := range roots {
		if _, gone := b.gone[r]; gone {
			continue
		}
		set := b.roots[r]
		if set == nil {
			set = make(map[*subscriber]struct{})
			b.roots[r] = set
		}
		set[sub] = struct{}{}
		sub.roots[r] = true
	}
}

// unsubscribe ends sub; reason (nil for an ordinary end) is what its
// watch returns, unless it had ended already.
func (b *broker) unsubscribe(sub *subscriber, reason error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	sub.mu.Lock()
	defer sub.mu.Unlock()
	for r := range sub.roots {
		b.removeLocked(r, sub)
	}
	clear(sub.roots)
	sub.closeLocked(reason)
}

func (b *broker) removeLocked(r manifest.RootID, sub *subscriber) {
	if set := b.roots[r]; set != nil {
		delete(set, sub)
		if len(set) == 0 {
			delete(b.roots, r)
		}
	}
}

// dropClient stops the root's notices to every watch of client: it left.
func (b *broker) dropClient(r manifest.RootID, client uuid.UUID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.roots[r] {
		if sub.client != client {
			continue
		}
		sub.mu.Lock()
		delete(sub.roots, r)
		sub.mu.Unlock()
		b.removeLocked(r, sub)
	}
}

// dropRoot ends every subscription to root r, which was removed, and
// forgets the notices about it that wait in the queues. A watch left
// without roots ends, with an error naming the root; other watches go on.
func (b *broker) dropRoot(r manifest.RootID, name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gone[r] = struct{}{}
	for sub := range b.roots[r] {
		sub.mu.Lock()
		delete(sub.roots, r)
		sub.forgetLocked(name)
		if len(sub.roots) == 0 {
			sub.closeLocked(fmt.Errorf("%w: root %q was removed from the server", syncproto.ErrForbidden, name))
		}
		sub.mu.Unlock()
	}
	delete(b.roots, r)
}

// publish queues n for every watcher of root r. It never blocks.
func (b *broker) publish(r manifest.RootID, n *syncpb.Notice) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for sub := range b.roots[r] {
		// Each stream marshals its own copy.
		sub.offer(proto.CloneOf(n))
	}
}

// closeAll ends every watch: the server is closing.
func (b *broker) closeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for _, set := range b.roots {
		for sub := range set {
			sub.mu.Lock()
			sub.closeLocked(nil)
			sub.mu.Unlock()
		}
	}
	clear(b.roots)
}

func (sub *subscriber) closeLocked(reason error) {
	if !sub.closed {
		sub.closed = true
		sub.reason = reason
		sub.signal()
	}
}

// forgetLocked drops the queued notices about the root called name.
func (sub *subscriber) forgetLocked(name string) {
	delete(sub.dropped, name)
	sub.queue = slices.DeleteFunc(sub.queue, func(n *syncpb.Notice) bool { return n.GetRoot() == name })
}

// closeReason is why the subscription was ended under the watcher, or nil.
func (sub *subscriber) closeReason() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.reason
}

func (sub *subscriber) signal() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

func (sub *subscriber) offer(n *syncpb.Notice) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.closed {
		return
	}
	if len(sub.queue) >= MaxQueuedNotices {
		if sub.dropped == nil {
			sub.dropped = make(map[string]uint64)
		}
		for _, q := range append(sub.queue, n) {
			sub.dropped[q.GetRoot()] = max(sub.dropped[q.GetRoot()], q.GetRootSeq())
		}
		clear(sub.queue)
		sub.queue = sub.queue[:0]
	} else {
		sub.queue = append(sub.queue, n)
	}
	sub.signal()
}

// take returns what is waiting: a FULL_SCAN for each root whose notices
// were dropped, then the queued notices in order. closed reports that the
// subscription ended; one ended for a reason (see closeReason) delivers
// nothing more.
func (sub *subscriber) take() (out []*syncpb.Notice, closed bool) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.reason != nil {
		return nil, true
	}
	for root, seq := range sub.dropped {
		out = append(out, &syncpb.Notice{Kind: syncpb.Notice_KIND_FULL_SCAN, Root: root, RootSeq: seq})
	}
	sub.dropped = nil
	out = append(out, sub.queue...)
	sub.queue = nil
	return out, sub.closed
}

// Watch pushes notices about the roots named by the request's cursors (or
// all the client's roots if there are none) until ctx ends. It subscribes
// first and then compares each cursor with its root's sequence: a root
// that moved on gets a MUST_SYNC notice without a head (the client asks
// for Heads after its cursor), a cursor ahead of the root (the server lost
// history) a FULL_SCAN. Nothing committed in between is missed.
func (s *Server) Watch(ctx context.Context, sess *syncproto.Session, req *syncpb.WatchRequest, push func(*syncpb.Notice) error) error {
	st, err := sessionOf(sess)
	if err != nil {
		return err
	}
	if n := len(req.GetCursors()); n > syncproto.MaxWatchCursors {
		return fmt.Errorf("%w: %d cursors, at most %d", syncproto.ErrBadRequest, n, syncproto.MaxWatchCursors)
	}
	cursors := make(map[manifest.RootID]uint64)
	var ids []manifest.RootID
	for _, c := range req.GetCursors() {
		r, err := s.memberRoot(ctx, st, c.GetRoot())
		if err != nil {
			return err
		}
		if prev, dup := cursors[r.ID]; !dup || c.GetAfterSeq() < prev {
			if !dup {
				ids = append(ids, r.ID)
			}
			cursors[r.ID] = c.GetAfterSeq()
		}
	}
	if len(req.GetCursors()) == 0 {
		roots, err := s.db.RootsOfClient(ctx, st.client)
		if err != nil {
			return fmt.Errorf("server: roots of client %s: %w", st.client, err)
		}
		for _, r := range roots {
			ids = append(ids, r.ID)
		}
	}

	sub := newSubscriber(st.client)
	st.mu.Lock()
	ended := st.ended
	if !ended {
		st.subs[sub] = struct{}{}
	}
	st.mu.Unlock()
	if ended {
		if st.revoked.Load() {
			return errClientRemoved
		}
		return fmt.Errorf("%w: session ended", syncproto.ErrUnavailable)
	}
	s.broker.subscribe(sub, ids)
	defer func() {
		s.broker.unsubscribe(sub, nil)
		st.mu.Lock()
		delete(st.subs, sub)
		st.mu.Unlock()
	}()

	for _, id := range ids {
		after, ok := cursors[id]
		if !ok {
			continue
		}
		r, err := s.db.RootByID(ctx, id)
		if errors.Is(err, manifest.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("server: root %d: %w", id, err)
		}
		var n *syncpb.Notice
		switch {
		case after < r.Seq:
			n = &syncpb.Notice{Kind: syncpb.Notice_KIND_MUST_SYNC, Root: r.Name, RootSeq: r.Seq}
		case after > r.Seq:
			n = &syncpb.Notice{Kind: syncpb.Notice_KIND_FULL_SCAN, Root: r.Name, RootSeq: r.Seq}
		default:
			continue
		}
		if err := push(n); err != nil {
			return err
		}
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-sub.wake:
		}
		notices, closed := sub.take()
		for _, n := range notices {
			if err := push(n); err != nil {
				return err
			}
		}
		if closed {
			return sub.closeReason()
		}
	}
}

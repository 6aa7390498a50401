package server

import (
	"context"
	"errors"
	"testing"

	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func cursor(root string, after uint64) *syncpb.WatchRequest {
	return &syncpb.WatchRequest{Cursors: []*syncpb.WatchRequest_Cursor{{Root: root, AfterSeq: after}}}
}

func TestWatchCatchUp(t *testing.T) {
	e := newEnv(t)
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	e.mustPush(t, a, "docs", "one", nil, newFile(t, []byte("1")))
	e.mustPush(t, a, "docs", "two", nil, newFile(t, []byte("2")))

	tests := []struct {
		name  string
		after uint64
		want  syncpb.Notice_Kind
	}{
		{"behind", 1, syncpb.Notice_KIND_MUST_SYNC},
		{"from scratch", 0, syncpb.Notice_KIND_MUST_SYNC},
		{"ahead", 9, syncpb.Notice_KIND_FULL_SCAN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := e.watch(t, b, cursor("docs", tt.after))
			ns := w.waitFor(t, tt.want.String(), func(ns []*syncpb.Notice) bool { return len(ns) > 0 })
			n := ns[0]
			if n.GetKind() != tt.want || n.GetRoot() != "docs" || n.GetRootSeq() != 2 || n.GetHead() != nil {
				t.Errorf("catch-up notice %v", n)
			}
		})
	}
	t.Run("current", func(t *testing.T) {
		w := e.watch(t, b, cursor("docs", 2))
		e.subscribed(t, "docs", 1)
		h := e.mustPush(t, a, "docs", "three", nil, newFile(t, []byte("3")))
		ns := w.waitFor(t, "MUST_SYNC", hasNotice(syncpb.Notice_KIND_MUST_SYNC, "three"))
		if len(ns) != 1 || ns[0].GetRootSeq() != h.GetSeq() || ns[0].GetHead().GetSeq() != h.GetSeq() {
			t.Errorf("a watcher at the root seq got %v", ns)
		}
	})
}

func TestWatchEndsAndRefuses(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.root(t, b, "mine")

	err := e.srv.Watch(ctx, b, &syncpb.WatchRequest{Cursors: []*syncpb.WatchRequest_Cursor{{Root: "mine"}, {Root: "docs"}}},
		func(*syncpb.Notice) error { return nil })
	if !errors.Is(err, syncproto.ErrForbidden) {
		t.Errorf("watch of a root one is not in: err = %v", err)
	}

	// The end of the session ends its watch.
	w := e.watch(t, b, cursor("mine", 0))
	e.subscribed(t, "mine", 1)
	e.srv.SessionEnded(b)
	if err := <-w.done; err != nil {
		t.Errorf("watch after session end: %v", err)
	}
	w.done <- nil // for the cleanup

	// A push error ends the watch with it.
	c := e.client(t, "c")
	e.join(t, c, "docs")
	boom := errors.New("stream gone")
	done := make(chan error, 1)
	go func() {
		done <- e.srv.Watch(ctx, c, cursor("docs", 0), func(*syncpb.Notice) error { return boom })
	}()
	e.subscribed(t, "docs", 1)
	e.mustPush(t, a, "docs", "x", nil, newFile(t, []byte("x")))
	if err := <-done; !errors.Is(err, boom) {
		t.Errorf("watch with a failing push: err = %v", err)
	}
}

func TestWatchLeaveStopsNotices(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.root(t, a, "other")
	e.join(t, b, "docs")
	e.join(t, b, "other")
	w := e.watch(t, b, &syncpb.WatchRequest{}) // no cursors: all of b's roots
	e.subscribed(t, "docs", 1)
	e.subscribed(t, "other", 1)
	if err := e.srv.LeaveRoot(ctx, b, &syncpb.LeaveRootRequest{Name: "docs"}); err != nil {
		t.Fatal(err)
	}
	e.mustPush(t, a, "docs", "secret", nil, newFile(t, []byte("s")))
	e.mustPush(t, a, "other", "public", nil, newFile(t, []byte("p")))
	ns := w.waitFor(t, "notice of the other root", hasNotice(syncpb.Notice_KIND_MUST_SYNC, "public"))
	for _, n := range ns {
		if n.GetRoot() == "docs" {
			t.Errorf("notice of a root b left: %v", n)
		}
	}
}

func TestWatchOverflowBecomesFullScan(t *testing.T) {
	sub := newSubscriber([16]byte{1})
	for i := range MaxQueuedNotices + 5 {
		root := "a"
		if i == 3 {
			root = "b"
		}
		sub.offer(&syncpb.Notice{Kind: syncpb.Notice_KIND_MUST_SYNC, Root: root, RootSeq: uint64(i + 1)})
	}
	ns, closed := sub.take()
	if closed {
		t.Fatal("closed")
	}
	full := map[string]uint64{}
	must := 0
	for _, n := range ns {
		switch n.GetKind() {
		case syncpb.Notice_KIND_FULL_SCAN:
			full[n.GetRoot()] = n.GetRootSeq()
		case syncpb.Notice_KIND_MUST_SYNC:
			must++
		}
	}
	if len(full) != 2 || full["a"] != MaxQueuedNotices+1 || full["b"] != 4 {
		t.Errorf("full scans %v: want one per root with the highest dropped seq", full)
	}
	if must != 4 {
		t.Errorf("%d notices queued after the overflow, want the 4 that arrived since", must)
	}
	if ns, _ := sub.take(); len(ns) != 0 {
		t.Errorf("second take %v", ns)
	}
}

// TestWatchSlowClient commits far more than a queue holds while the
// watcher's push is blocked: the committer never waits, and the watcher
// ends up with a FULL_SCAN.
func TestWatchSlowClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	var got []*syncpb.Notice
	done := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		done <- e.srv.Watch(wctx, b, cursor("docs", 0), func(n *syncpb.Notice) error {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release
			got = append(got, n)
			if n.GetKind() == syncpb.Notice_KIND_FULL_SCAN {
				cancel()
			}
			return nil
		})
	}()
	e.subscribed(t, "docs", 1)
	// The first notice blocks the pusher; the rest pile up and overflow.
	e.srv.broker.publish(1, &syncpb.Notice{Kind: syncpb.Notice_KIND_MUST_SYNC, Root: "docs", RootSeq: 1})
	<-entered
	for i := range MaxQueuedNotices + 10 {
		e.srv.broker.publish(1, &syncpb.Notice{Kind: syncpb.Notice_KIND_MUST_SYNC, Root: "docs", RootSeq: uint64(i + 2)})
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Seq 1 was being pushed; 2..258 overflowed the queue (one FULL_SCAN
	// at the highest dropped seq); 259..267 were queued after.
	if len(got) != 11 || got[1].GetKind() != syncpb.Notice_KIND_FULL_SCAN || got[1].GetRootSeq() != MaxQueuedNotices+2 ||
		got[10].GetRootSeq() != MaxQueuedNotices+11 {
		t.Errorf("slow watcher got %d notices: %v", len(got), got)
	}
}

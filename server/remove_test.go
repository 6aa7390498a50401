package server

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// quicWatch runs a watch over QUIC in the background; done gets its end.
func quicWatch(ctx context.Context, c *syncproto.Client, cursors []*syncpb.WatchRequest_Cursor) <-chan error {
	done := make(chan error, 1)
	go func() { done <- c.Watch(ctx, cursors, func(*syncpb.Notice) error { return nil }) }()
	return done
}

func waitEnd(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not end after 10s", what)
		return nil
	}
}

func TestRemoveClientRevokesSessions(t *testing.T) {
	e := newEnv(t)
	addr := e.serveQUIC(t)
	ctx := testCtx(t)

	gone, stays := e.registerDevice(t, addr, "laptop"), e.registerDevice(t, addr, "phone")
	g1, g2 := e.mustDial(t, addr, gone), e.mustDial(t, addr, gone)
	s1 := e.mustDial(t, addr, stays)
	if _, err := g1.RegisterRoot(ctx, "docs", rootPassword("docs")); err != nil {
		t.Fatal(err)
	}
	if _, err := s1.JoinRoot(ctx, "docs", rootPassword("docs")); err != nil {
		t.Fatal(err)
	}
	if got := e.srv.ConnectedClients(); got[gone.id] != 2 || got[stays.id] != 1 || len(got) != 2 {
		t.Fatalf("ConnectedClients = %v, want 2 sessions of %s and 1 of %s", got, gone.id, stays.id)
	}

	// An upload in flight pins its chunks for the session.
	f := newFile(t, randomData(7, 100<<10))
	if _, _, err := quicPush(ctx, g2, "docs", "a.bin", nil, f); err != nil {
		t.Fatal(err)
	}
	half := newFile(t, randomData(8, 40<<10))
	present, err := g2.HaveChunks(ctx, "docs", f.ids())
	if err != nil || !present[0] {
		t.Fatalf("HaveChunks = %v, %v", present, err)
	}
	if !e.srv.Pins().Pinned(f.refs[0].ID) {
		t.Fatal("a chunk reported present is not pinned")
	}

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watched := quicWatch(watchCtx, g1, nil)
	e.subscribed(t, "docs", 1)

	if err := e.srv.RemoveClient(ctx, gone.id); err != nil {
		t.Fatal(err)
	}

	if err := waitEnd(t, "the removed client's watch", watched); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Errorf("watch of the removed client ended with %v, want ErrUnauthenticated", err)
	}
	if _, _, err := g1.Heads(ctx, "docs", 0); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Errorf("Heads of a removed client: %v, want ErrUnauthenticated", err)
	}
	if _, err := g2.ListRoots(ctx, false); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Errorf("ListRoots on the removed client's other session: %v, want ErrUnauthenticated", err)
	}
	if _, _, err := quicPush(ctx, g2, "docs", "b.bin", nil, half); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Errorf("upload of a removed client: %v, want ErrUnauthenticated", err)
	}
	if e.srv.Pins().Pinned(f.refs[0].ID) {
		t.Error("the removed client's pins are still held")
	}
	if _, err := e.dialDevice(t, addr, gone); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Errorf("new session with the removed client's token: %v, want ErrUnauthenticated", err)
	}
	if got := e.srv.ConnectedClients(); got[gone.id] != 0 || got[stays.id] != 1 {
		t.Errorf("ConnectedClients after removal = %v, want only 1 session of %s", got, stays.id)
	}

	// The other client is untouched, and the removed one is no member.
	info, err := s1.ListRoots(ctx, false)
	if err != nil || len(info) != 1 {
		t.Fatalf("ListRoots of the remaining client: %v, %v", info, err)
	}
	for _, m := range info[0].GetMembers() {
		if m == gone.id.String() {
			t.Errorf("the removed client is still a member: %v", info[0].GetMembers())
		}
	}

	if err := e.srv.RemoveClient(ctx, gone.id); !errors.Is(err, manifest.ErrNotFound) {
		t.Errorf("removing it again: %v, want manifest.ErrNotFound", err)
	}
	if err := e.srv.RemoveClient(ctx, uuid.New()); !errors.Is(err, manifest.ErrNotFound) {
		t.Errorf("removing an unknown client: %v, want manifest.ErrNotFound", err)
	}

	// A session that ends leaves the list.
	_ = s1.Close()
	waitUntil(t, "the closed session leaves ConnectedClients", func() bool { return len(e.srv.ConnectedClients()) == 0 })
}

// A session opened before its client's removal is refused everywhere
// after it, even without a connection around it, and its token is dead.
func TestAuthenticateAfterRemoval(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := uuid.New()
	resp, err := e.srv.RegisterClient(ctx, testAddr, &syncpb.RegisterClientRequest{ClientId: id.String(), Name: "d", ServerPassword: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := e.srv.Authenticate(ctx, testAddr, &syncpb.AuthRequest{ClientId: id.String(), Token: resp.GetToken()})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.RemoveClient(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.ListRoots(ctx, sess, &syncpb.ListRootsRequest{}); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Errorf("ListRoots after removal: %v", err)
	}
	err = e.srv.Watch(ctx, sess, &syncpb.WatchRequest{}, func(*syncpb.Notice) error { return nil })
	if !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Errorf("Watch after removal: %v", err)
	}
	if _, err := e.srv.Authenticate(ctx, testAddr, &syncpb.AuthRequest{ClientId: id.String(), Token: resp.GetToken()}); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Errorf("Authenticate after removal: %v", err)
	}
	e.srv.SessionEnded(sess) // after revocation: must not fail or count twice
	if got := e.srv.ConnectedClients(); len(got) != 0 {
		t.Errorf("ConnectedClients = %v, want none", got)
	}
}

func TestRemoveRoot(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.root(t, a, "music")
	e.join(t, b, "docs")
	e.join(t, b, "music")

	doc := newFile(t, randomData(1, 50<<10))
	e.mustPush(t, a, "docs", "dir/a.bin", nil, doc)
	e.mustPush(t, a, "music", "m.bin", nil, newFile(t, randomData(2, 10<<10)))
	e.srv.views.wait()
	docsView := filepath.Join(e.dir, SyncDir, "docs")
	if _, err := os.Stat(filepath.Join(docsView, latestDir, "dir", "a.bin")); err != nil {
		t.Fatalf("view before removal: %v", err)
	}

	// a watches both roots, b only docs.
	both := e.watch(t, a, &syncpb.WatchRequest{})
	onlyDocsCtx, stop := context.WithCancel(ctx)
	defer stop()
	onlyDocs := make(chan error, 1)
	go func() {
		onlyDocs <- e.srv.Watch(onlyDocsCtx, b, &syncpb.WatchRequest{Cursors: []*syncpb.WatchRequest_Cursor{{Root: "docs", AfterSeq: 1}}},
			func(*syncpb.Notice) error { return nil })
	}()
	e.subscribed(t, "docs", 2)
	e.subscribed(t, "music", 1)

	// Queue view updates for docs right before the removal; none may
	// bring its folder back.
	r, err := e.srv.db.RootByName(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		e.srv.views.updateLatest(r.ID, "docs", "dir/a.bin")
		e.srv.views.updateConflict(r.ID, "docs", "dir/a.bin")
	}

	if err := e.srv.RemoveRoot(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	both.mu.Lock()
	noticesAtRemoval := len(both.notices)
	both.mu.Unlock()

	if err := waitEnd(t, "the watch of the removed root only", onlyDocs); !errors.Is(err, syncproto.ErrForbidden) {
		t.Errorf("watch of only the removed root ended with %v, want ErrForbidden", err)
	}
	e.srv.views.updateLatest(r.ID, "docs", "dir/a.bin") // refused: the root is gone
	e.srv.views.wait()
	if _, err := os.Stat(docsView); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("view folder of the removed root: %v, want it gone", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, SyncDir, "music", latestDir, "m.bin")); err != nil {
		t.Errorf("view of the other root: %v", err)
	}

	for _, sess := range []*syncproto.Session{a, b} {
		if _, err := e.srv.Heads(ctx, sess, &syncpb.HeadsRequest{Root: "docs"}, func([]*syncpb.FileHead) error { return nil }); !errors.Is(err, syncproto.ErrForbidden) {
			t.Errorf("Heads of the removed root: %v, want ErrForbidden", err)
		}
		if _, err := e.push(sess, "docs", "new.bin", nil, newFile(t, []byte("new"))); !errors.Is(err, syncproto.ErrForbidden) {
			t.Errorf("push to the removed root: %v, want ErrForbidden", err)
		}
	}
	if _, _, err := e.srv.ChunkList(ctx, a, &syncpb.ChunkListRequest{Root: "docs", Path: "dir/a.bin", Hash: doc.hash[:]}); !errors.Is(err, syncproto.ErrForbidden) {
		t.Errorf("ChunkList in the removed root: %v, want ErrForbidden", err)
	}

	// The watch of both roots goes on for music, and hears nothing more
	// of docs.
	e.mustPush(t, b, "music", "n.bin", nil, newFile(t, randomData(3, 1000)))
	ns := both.waitFor(t, "the music notice", hasNotice(syncpb.Notice_KIND_MUST_SYNC, "n.bin"))
	for _, n := range ns[noticesAtRemoval:] {
		if n.GetRoot() == "docs" {
			t.Errorf("notice about the removed root after its removal: %v", n)
		}
	}

	if err := e.srv.RemoveRoot(ctx, r.ID); !errors.Is(err, manifest.ErrNotFound) {
		t.Errorf("removing it again: %v, want manifest.ErrNotFound", err)
	}
}

func TestRemoveRootWithoutViews(t *testing.T) {
	opts := testOptions(filepath.Join(t.TempDir(), "data"))
	opts.Views = false
	e := newEnvWith(t, opts)
	a := e.client(t, "a")
	e.root(t, a, "docs")
	e.root(t, a, "keep")
	// Views written by an earlier run with views on.
	for _, root := range []string{"docs", "keep"} {
		p := filepath.Join(e.dir, SyncDir, root, latestDir, "x")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := e.srv.db.RootByName(context.Background(), "docs")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.RemoveRoot(context.Background(), r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, SyncDir, "docs")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("view folder of the removed root: %v, want it gone", err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, SyncDir, "keep", latestDir, "x")); err != nil {
		t.Errorf("the other root's view: %v", err)
	}
}

func TestDropRootForgetsQueuedNotices(t *testing.T) {
	b := newBroker()
	sub := newSubscriber(uuid.New())
	b.subscribe(sub, []manifest.RootID{1, 2})
	for i := range 3 {
		b.publish(1, &syncpb.Notice{Kind: syncpb.Notice_KIND_MUST_SYNC, Root: "gone", RootSeq: uint64(i + 1)})
		b.publish(2, &syncpb.Notice{Kind: syncpb.Notice_KIND_MUST_SYNC, Root: "kept", RootSeq: uint64(i + 1)})
	}
	b.dropRoot(1, "gone")
	ns, closed := sub.take()
	if closed || len(ns) != 3 {
		t.Fatalf("take = %d notices, closed %v; want the 3 of the kept root, open", len(ns), closed)
	}
	for _, n := range ns {
		if n.GetRoot() != "kept" {
			t.Errorf("notice of a removed root still queued: %v", n)
		}
	}
	// A late subscription to the removed root is ignored.
	late := newSubscriber(uuid.New())
	b.subscribe(late, []manifest.RootID{1})
	b.mu.Lock()
	n := len(b.roots[1])
	b.mu.Unlock()
	if n != 0 {
		t.Errorf("%d subscribers on a removed root", n)
	}
	// The last root going ends the subscription, with a reason.
	b.dropRoot(2, "kept")
	if _, closed := sub.take(); !closed || !errors.Is(sub.closeReason(), syncproto.ErrForbidden) {
		t.Errorf("subscription without roots: closed %v, reason %v", closed, sub.closeReason())
	}
}

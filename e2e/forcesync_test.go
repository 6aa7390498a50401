package e2e

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/server"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// conflictOnServer has a and b sync path, edit it offline, and sync a
// (committed) then b (refused as a conflict, b's record pending). The
// others pull the base version only. It returns a's and b's contents.
func conflictOnServer(t *testing.T, a, b *device, path string, others ...*device) (aContent, bContent []byte) {
	t.Helper()
	a.write(path, []byte("base version\n"), 0o644)
	a.sync()
	for _, d := range append([]*device{b}, others...) {
		if res := d.sync(); res.FilesDownloaded != 1 {
			t.Fatalf("first pull: %+v", res.Stats)
		}
	}
	aContent, bContent = []byte("a's edit, the one kept\n"), []byte("b's edit, which loses the conflict\n")
	a.write(path, aContent, 0o644)
	b.write(path, bContent, 0o644)
	if res := a.sync(); res.FilesUploaded != 1 {
		t.Fatalf("a's push: %+v", res.Stats)
	}
	if res := b.sync(); res.Conflicts != 1 {
		t.Fatalf("b's push: %+v, want a conflict", res.Stats)
	}
	if rec := b.record(path); !rec.Pending {
		t.Fatalf("b's record after the conflict is not pending: %+v", rec)
	}
	return aContent, bContent
}

func (d *device) record(path string) client.FileRecord {
	d.t.Helper()
	rec, err := d.home.State().File(context.Background(), d.root, path)
	if err != nil {
		d.t.Fatalf("record of %q: %v", path, err)
	}
	return rec
}

// hasCandidate reports whether the server's conflict on path keeps
// content among its candidates.
func hasCandidate(t *testing.T, srv *server.Server, root, path string, content []byte) bool {
	t.Helper()
	ctx := context.Background()
	r, err := srv.Manifest().RootByName(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.Manifest().Conflict(ctx, r.ID, path)
	if err != nil {
		t.Fatalf("conflict on %q: %v", path, err)
	}
	for _, cand := range c.Candidates {
		if !cand.Deleted && cand.Hash == cas.Sum(content) {
			return true
		}
	}
	return false
}

// headOf returns the server's head of path as d's session sees it.
func headOf(t *testing.T, d *device, path string) *syncpb.FileHead {
	t.Helper()
	heads, _, err := d.sess.Heads(context.Background(), d.root, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range heads {
		if h.GetPath() == path {
			return h
		}
	}
	t.Fatalf("no head for %q", path)
	return nil
}

// waitContent waits up to 10 s for the file name to hold want.
func waitContent(t *testing.T, name string, want []byte, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := os.ReadFile(name)
		if err == nil && bytes.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s holds %q (%v) after 10 s, want %q", what, name, got, err, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestInProcessForceSyncReplacesPendingLoser(t *testing.T) {
	ts, srv, _ := startServerWithStore(t, nil)
	a := newDevice(t, ts, "a")
	b := newDevice(t, ts, "b")
	a.addRoot("shared")
	b.joinRoot("shared")
	aContent, bContent := conflictOnServer(t, a, b, "f.txt")

	firstPass := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- client.Run(ctx, b.home.State(), client.RunOptions{
			Dial:   func(context.Context) (client.Session, error) { return b.sess, nil },
			Engine: client.EngineOptions{Warn: func(client.Warning) {}},
			Logger: slog.New(slog.DiscardHandler),
			OnPass: func(string, client.PassResult, error) { once.Do(func() { close(firstPass) }) },
		})
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not stop")
		}
	}()
	select {
	case <-firstPass:
	case <-time.After(10 * time.Second):
		t.Fatal("b's first pass did not finish")
	}
	// A notice published before b's watch is subscribed is lost. A commit
	// made after b's first pass reaches b only through the watch (its
	// catch-up or a must-sync notice, both after it subscribed), so once
	// it arrived the force-sync notice will too.
	sentinel := []byte("sentinel\n")
	a.write("sentinel.txt", sentinel, 0o644)
	a.sync()
	waitContent(t, filepath.Join(b.dir, "sentinel.txt"), sentinel, "sentinel")
	// b's running client still refuses to pull over its pending loser.
	if got, _ := os.ReadFile(filepath.Join(b.dir, "f.txt")); !bytes.Equal(got, bContent) {
		t.Fatalf("b's f.txt before the force-sync: %q, want b's own edit", got)
	}

	if err := srv.ForceSync(context.Background(), "shared", "f.txt"); err != nil {
		t.Fatal(err)
	}
	waitContent(t, filepath.Join(b.dir, "f.txt"), aContent, "force-sync")
	head := headOf(t, a, "f.txt")
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec := b.record("f.txt")
		if !rec.Pending && rec.BaseSeq == head.GetSeq() && rec.Hash == cas.Sum(aContent) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's record after the force-sync: %+v, want base seq %d, not pending", rec, head.GetSeq())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !hasCandidate(t, srv, "shared", "f.txt", bContent) {
		t.Error("the server no longer keeps b's content as a conflict candidate")
	}
}

// candidates returns the number of candidates of the server's conflict
// on path.
func candidates(t *testing.T, srv *server.Server, root, path string) int {
	t.Helper()
	ctx := context.Background()
	r, err := srv.Manifest().RootByName(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.Manifest().Conflict(ctx, r.ID, path)
	if err != nil {
		t.Fatalf("conflict on %q: %v", path, err)
	}
	return len(c.Candidates)
}

// An edit made after the last scan is proposed (and kept as a candidate)
// before the file is replaced; a device that is only behind is brought to
// the head without proposing anything.
func TestInProcessForceSyncKeepsUnscannedEdit(t *testing.T) {
	ts, srv, _ := startServerWithStore(t, nil)
	a := newDevice(t, ts, "a")
	b := newDevice(t, ts, "b")
	c := newDevice(t, ts, "c")
	a.addRoot("shared")
	b.joinRoot("shared")
	c.joinRoot("shared")
	aContent, bContent := conflictOnServer(t, a, b, "f.txt", c)
	unscanned := []byte("b's second edit, never scanned, longer than the first\n")
	b.write("f.txt", unscanned, 0o644)
	head := headOf(t, a, "f.txt")
	ctx := context.Background()

	// c is behind, not pending: it takes the head and proposes nothing.
	before := candidates(t, srv, "shared", "f.txt")
	if err := c.eng.ForceSync(ctx, "shared", head); err != nil {
		t.Fatalf("c's force-sync: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(c.dir, "f.txt")); !bytes.Equal(got, aContent) {
		t.Fatalf("c's f.txt after the force-sync: %q, want a's", got)
	}
	if rec := c.record("f.txt"); rec.Pending || rec.BaseSeq != head.GetSeq() {
		t.Fatalf("c's record: %+v", rec)
	}
	if after := candidates(t, srv, "shared", "f.txt"); after != before {
		t.Fatalf("c's force-sync changed the conflict: %d candidates, had %d", after, before)
	}

	// b's file changed after its last scan: that edit becomes b's
	// candidate before a's content replaces it.
	if err := b.eng.ForceSync(ctx, "shared", head); err != nil {
		t.Fatalf("b's force-sync: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(b.dir, "f.txt")); !bytes.Equal(got, aContent) {
		t.Fatalf("b's f.txt after the force-sync: %q, want a's", got)
	}
	if rec := b.record("f.txt"); rec.Pending || rec.BaseSeq != head.GetSeq() {
		t.Fatalf("b's record: %+v", rec)
	}
	if !hasCandidate(t, srv, "shared", "f.txt", unscanned) {
		t.Fatal("b's unscanned edit was not kept as a candidate")
	}
	// One candidate per client: b's newer edit replaced its first one.
	if hasCandidate(t, srv, "shared", "f.txt", bContent) {
		t.Error("b's first edit is still a candidate next to its second")
	}
	// Nothing is left to push, and a second notice changes nothing.
	if res := b.sync(); res.Conflicts != 0 || res.FilesUploaded != 0 || res.FilesDownloaded != 0 {
		t.Fatalf("b's pass after the force-sync: %+v", res.Stats)
	}
	if err := b.eng.ForceSync(ctx, "shared", head); err != nil {
		t.Fatalf("b's second force-sync: %v", err)
	}
}

// After a resolution clears the conflict, the force-sync that follows must
// not propose the losing content again: the server kept it as a candidate
// already, and proposing it would reopen the conflict just resolved.
func TestInProcessForceSyncDoesNotReopenResolvedConflict(t *testing.T) {
	ts, srv, _ := startServerWithStore(t, nil)
	a := newDevice(t, ts, "a")
	b := newDevice(t, ts, "b")
	a.addRoot("shared")
	b.joinRoot("shared")
	aContent, _ := conflictOnServer(t, a, b, "f.txt")
	if rec := b.record("f.txt"); !rec.HasCandidate || !rec.Pending {
		t.Fatalf("b's record after its conflict: %+v, want pending with the candidate noted", rec)
	}

	// The resolution keeps the server side (a's content, already the head)
	// and clears the conflict, as `--keep server` will.
	ctx := context.Background()
	r, err := srv.Manifest().RootByName(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Manifest().ClearConflict(ctx, r.ID, "f.txt"); err != nil {
		t.Fatal(err)
	}
	if err := b.eng.ForceSync(ctx, "shared", headOf(t, a, "f.txt")); err != nil {
		t.Fatalf("force-sync: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(b.dir, "f.txt")); !bytes.Equal(got, aContent) {
		t.Fatalf("b's f.txt after the force-sync: %q, want %q", got, aContent)
	}
	if _, err := srv.Manifest().Conflict(ctx, r.ID, "f.txt"); !errors.Is(err, manifest.ErrNotFound) {
		t.Fatalf("conflict after the force-sync: %v, want none (the resolution stands)", err)
	}
	if res := b.sync(); res.Conflicts != 0 {
		t.Fatalf("b's next pass reports %d conflicts, want 0", res.Conflicts)
	}
}

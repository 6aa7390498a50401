package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/gc"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func TestPinTracker(t *testing.T) {
	p := NewPins()
	a, b, c, d := cas.Sum([]byte("a")), cas.Sum([]byte("b")), cas.Sum([]byte("c")), cas.Sum([]byte("d"))
	s1, s2 := p.NewSet(), p.NewSet()
	s1.Add(a)
	tr := p.Track()
	s1.Release(a)
	s2.Add(b)
	s2.Release(b)
	if !tr.Pinned(a) || !tr.Pinned(b) || tr.Pinned(c) {
		t.Fatalf("tracker: a=%v b=%v c=%v; want pinned at the start and since, released or not", tr.Pinned(a), tr.Pinned(b), tr.Pinned(c))
	}
	tr.Stop()
	s1.Add(d)
	if tr.Pinned(d) {
		t.Fatal("a stopped tracker still records pins")
	}
	if len(p.trackers) != 0 {
		t.Fatalf("%d trackers left registered", len(p.trackers))
	}
	if !p.Pinned(d) || p.Pinned(a) {
		t.Fatal("tracking changed the pins themselves")
	}
}

// rootID is the manifest id of the root a test registered.
func (e *env) rootID(t testing.TB, name string) uint64 {
	t.Helper()
	r, err := e.srv.db.RootByName(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return uint64(r.ID)
}

func (e *env) mustDownload(t testing.TB, sess *syncproto.Session, root, path string, f file) {
	t.Helper()
	got, err := e.download(t, sess, root, path, f.hash[:])
	if err != nil || !bytes.Equal(got, f.data) {
		t.Fatalf("download %q: %v", path, err)
	}
}

// A collection drops the chunks of a dropped version, keeps the one a
// session pinned (until the session ends), counts itself in the metrics,
// and leaves a store that downloads and checks clean.
func TestServerGC(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	sess := e.client(t, "laptop")
	e.root(t, sess, "docs")
	v1 := newFile(t, randomData(1, 300<<10))
	h1 := e.mustPush(t, sess, "docs", "a", nil, v1)
	v2 := newFile(t, randomData(2, 300<<10))
	e.mustPush(t, sess, "docs", "a", h1, v2)
	b := newFile(t, randomData(3, 100<<10))
	e.mustPush(t, sess, "docs", "b", nil, b)
	r, err := e.srv.db.RootByName(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if n, err := e.srv.db.DropVersions(ctx, r.ID, "a", []uint64{h1.GetSeq()}); err != nil || n != 1 {
		t.Fatalf("DropVersions: %d, %v", n, err)
	}
	// Another device is about to upload content sharing a chunk of the
	// dropped version: the server told it the chunk is there.
	other := e.client(t, "phone")
	e.join(t, other, "docs")
	pinned := v1.refs[0].ID
	if have, err := e.srv.HaveChunks(ctx, other, "docs", []cas.ID{pinned}); err != nil || !have[0] {
		t.Fatalf("HaveChunks = %v, %v", have, err)
	}

	dry, err := e.srv.GC(ctx, gc.Options{DryRun: true, RepackThreshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if dry.ChunksDeleted != uint64(len(v1.chunks)-1) || e.srv.metrics.gcRuns.Load() != 0 {
		t.Fatalf("dry run: %d chunks would go (want %d), %d runs counted", dry.ChunksDeleted, len(v1.chunks)-1, e.srv.metrics.gcRuns.Load())
	}
	rep, err := e.srv.GC(ctx, gc.Options{RepackThreshold: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	// Everything sits in the active pack, which is never rewritten: the
	// entries go, the bytes wait for the pack to fill.
	if rep.ChunksDeleted != uint64(len(v1.chunks)-1) || rep.ChunksPinned != 1 || rep.BytesDeleted <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	for id := range v1.chunks {
		have, err := e.srv.store.Has(ctx, []cas.ID{id})
		if err != nil {
			t.Fatal(err)
		}
		if have[0] != (id == pinned) {
			t.Fatalf("chunk %s of the dropped version present = %v", id.Short(), have[0])
		}
	}
	if runs, freed := e.srv.metrics.gcRuns.Load(), e.srv.metrics.gcFreedBytes.Load(); runs != 1 || freed != uint64(rep.BytesFreed) {
		t.Fatalf("metrics: %d runs, %d bytes freed; want 1, %d", runs, freed, rep.BytesFreed)
	}
	e.mustDownload(t, sess, "docs", "a", v2)
	e.mustDownload(t, sess, "docs", "b", b)
	cr, err := e.srv.Check(ctx, true, false)
	if err != nil || !cr.OK || cr.OrphanChunks != 1 {
		t.Fatalf("check: ok=%v orphans=%d problems=%v err=%v", cr.OK, cr.OrphanChunks, cr.Problems, err)
	}

	// The session ends: its pin goes, and so does the chunk.
	e.srv.SessionEnded(other)
	rep, err = e.srv.GC(ctx, gc.Options{})
	if err != nil || rep.ChunksDeleted != 1 {
		t.Fatalf("after the session ended: %+v, %v", rep, err)
	}
	cr, err = e.srv.Check(ctx, false, true)
	if err != nil || !cr.OK || cr.Repair == nil || len(cr.Repair.Lost) != 0 {
		t.Fatalf("check with repair: %+v, %v", cr, err)
	}
}

// One collection or check at a time.
func TestServerGCExclusive(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	e.srv.pins.maintenance.Lock()
	_, gerr := e.srv.GC(ctx, gc.DefaultOptions())
	_, cerr := e.srv.Check(ctx, false, false)
	e.srv.pins.maintenance.Unlock()
	for _, err := range []error{gerr, cerr} {
		if !errors.Is(err, ErrMaintenanceRunning) || !errors.Is(err, syncproto.ErrUnavailable) {
			t.Fatalf("while another runs: %v", err)
		}
	}
	if _, err := e.srv.GC(ctx, gc.DefaultOptions()); err != nil {
		t.Fatalf("GC after the other finished: %v", err)
	}
	if _, err := e.srv.GC(ctx, gc.Options{Margin: -time.Second}); err == nil {
		t.Fatal("a negative margin was accepted")
	}
}

// Devices push new versions of fresh and shared content, the server drops
// old versions, and a device downloads heads, while collections with
// margin 0 loop. Nothing committed is ever lost, and the store checks
// clean afterwards.
func TestServerGCWhileSyncing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newEnv(t)
	owner := e.client(t, "owner")
	e.root(t, owner, "docs")
	const devices, commits = 2, 12
	sessions := make([]*syncproto.Session, devices)
	for i := range sessions {
		sessions[i] = e.client(t, fmt.Sprintf("dev%d", i))
		e.join(t, sessions[i], "docs")
	}
	rootID := e.rootID(t, "docs")
	// Contents come from a small pool of seeds, so devices keep offering
	// chunks that a dropped version made garbage a moment ago.
	content := func(seed uint64) []byte { return randomData(seed%7, 40<<10+int(seed%5)*20<<10) }

	var wg sync.WaitGroup
	var pushed atomic.Int64
	done := make(chan struct{})
	for d, sess := range sessions {
		wg.Go(func() {
			path := fmt.Sprintf("f%d", d)
			var head *syncpb.FileHead
			for i := range commits {
				f := newFile(t, content(uint64(d*commits+i)))
				var resp *syncpb.CommitResponse
				var err error
				for attempt := 0; attempt < 3; attempt++ {
					if resp, err = e.push(sess, "docs", path, head, f); !errors.Is(err, syncproto.ErrMissingChunks) {
						break
					}
				}
				if err != nil {
					t.Errorf("device %d push %d: %v", d, i, err)
					return
				}
				if resp.GetOutcome() == syncpb.CommitResponse_OUTCOME_COMMITTED || resp.GetOutcome() == syncpb.CommitResponse_OUTCOME_CONVERGED {
					head = resp.GetHead()
				}
				pushed.Add(1)
				vs, err := e.srv.db.Versions(ctx, manifest.RootID(rootID), path)
				if err != nil {
					t.Errorf("versions: %v", err)
					return
				}
				var old []uint64
				for _, v := range vs[:max(len(vs)-1, 0)] {
					old = append(old, v.Seq)
				}
				if _, err := e.srv.db.DropVersions(ctx, manifest.RootID(rootID), path, old); err != nil {
					t.Errorf("drop: %v", err)
					return
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(done)
	}()
	var deleted uint64
	rounds := 0
	for writing := true; writing || rounds < 3; rounds++ {
		select {
		case <-done:
			writing = false
		case <-ctx.Done():
			t.Fatal("timeout")
		default:
		}
		rep, err := e.srv.GC(ctx, gc.Options{RepackThreshold: 0.5})
		if err != nil {
			t.Fatalf("collection %d: %v", rounds, err)
		}
		deleted += rep.ChunksDeleted
	}
	if t.Failed() {
		return
	}
	t.Logf("%d collections deleted %d chunks during %d pushes", rounds, deleted, pushed.Load())
	if deleted == 0 {
		t.Fatal("nothing was ever collected")
	}
	heads, _, _ := e.heads(t, owner, "docs", 0)
	for d := range devices {
		h := heads[fmt.Sprintf("f%d", d)]
		if h == nil {
			t.Fatalf("no head for device %d", d)
		}
		got, err := e.download(t, owner, "docs", h.GetPath(), h.GetHash())
		if err != nil || cas.Sum(got) != cas.ID(h.GetHash()) {
			t.Fatalf("download head of %s: %v", h.GetPath(), err)
		}
	}
	cr, err := e.srv.Check(ctx, true, false)
	if err != nil || !cr.OK {
		t.Fatalf("check: %v, %v", cr.Problems, err)
	}
}

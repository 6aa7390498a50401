package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// manualClock reads the same time until advanced.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// needNotices returns the NEED_CONTENT notices for hash.
func needNotices(ns []*syncpb.Notice, hash cas.ID) []*syncpb.Notice {
	var out []*syncpb.Notice
	for _, n := range ns {
		if n.GetKind() == syncpb.Notice_KIND_NEED_CONTENT && bytes.Equal(n.GetHead().GetHash(), hash[:]) {
			out = append(out, n)
		}
	}
	return out
}

func TestRequestContentRateLimit(t *testing.T) {
	clock := &manualClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	opts := testOptions(filepath.Join(t.TempDir(), "data"))
	opts.Clock = clock.Now
	e := newEnvWith(t, opts)
	ctx := context.Background()
	owner, watcherSess := e.client(t, "owner"), e.client(t, "watcher")
	e.root(t, owner, "docs")
	e.join(t, watcherSess, "docs")
	v1 := newFile(t, randomData(1, 100<<10))
	v2 := newFile(t, randomData(2, 50<<10))
	h1 := e.mustPush(t, owner, "docs", "f.bin", nil, v1)
	h2 := e.mustPush(t, owner, "docs", "f.bin", h1, v2)
	w := e.watch(t, watcherSess, &syncpb.WatchRequest{})
	e.subscribed(t, "docs", 1)

	steps := []struct {
		name    string
		advance time.Duration
		hash    cas.ID
		want    bool
	}{
		{"first ask", 0, v1.hash, true},
		{"again at once", 0, v1.hash, false},
		{"another version is its own key", 30 * time.Second, v2.hash, true},
		{"just inside the interval", NeedContentInterval - 31*time.Second, v1.hash, false},
		{"after the interval", time.Second, v1.hash, true},
		{"other version still limited", 0, v2.hash, false},
	}
	wantNotices := map[cas.ID]int{}
	for _, s := range steps {
		clock.advance(s.advance)
		asked, err := e.srv.RequestContent(ctx, "docs", "f.bin", s.hash)
		if err != nil || asked != s.want {
			t.Fatalf("%s: RequestContent = %v, %v; want %v", s.name, asked, err, s.want)
		}
		if asked {
			wantNotices[s.hash]++
		}
	}
	ns := w.waitFor(t, "need-content notices", func(ns []*syncpb.Notice) bool {
		return len(needNotices(ns, v1.hash)) >= wantNotices[v1.hash] && len(needNotices(ns, v2.hash)) >= wantNotices[v2.hash]
	})
	for hash, want := range wantNotices {
		got := needNotices(ns, hash)
		if len(got) != want {
			t.Errorf("%d notices for %s, want %d", len(got), hash.Short(), want)
		}
		for _, n := range got {
			if n.GetRoot() != "docs" || n.GetHead().GetPath() != "f.bin" {
				t.Errorf("notice %v: wrong root or path", n)
			}
		}
	}
	// The head of each notice names its version: seq and size included.
	if n := needNotices(ns, v1.hash)[0]; n.GetHead().GetSeq() != h1.GetSeq() || n.GetHead().GetSize() != int64(len(v1.data)) {
		t.Errorf("notice head %v, want seq %d size %d", n.GetHead(), h1.GetSeq(), len(v1.data))
	}
	if n := needNotices(ns, v2.hash)[0]; n.GetHead().GetSeq() != h2.GetSeq() {
		t.Errorf("notice head %v, want seq %d", n.GetHead(), h2.GetSeq())
	}
}

func TestRequestContentRefusesBadRequests(t *testing.T) {
	e := newEnv(t)
	owner := e.client(t, "owner")
	e.root(t, owner, "docs")
	f := newFile(t, randomData(3, 10<<10))
	e.mustPush(t, owner, "docs", "f.bin", nil, f)
	tests := []struct {
		name, root, path string
		hash             cas.ID
		want             error
	}{
		{"unknown root", "nope", "f.bin", f.hash, syncproto.ErrNotFound},
		{"unknown path", "docs", "g.bin", f.hash, syncproto.ErrNotFound},
		{"unknown version", "docs", "f.bin", cas.Sum([]byte("other")), syncproto.ErrNotFound},
		{"hostile path", "docs", "../f.bin", f.hash, syncproto.ErrInvalidPath},
		{"zero hash", "docs", "f.bin", cas.ID{}, syncproto.ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked, err := e.srv.RequestContent(context.Background(), tt.root, tt.path, tt.hash)
			if asked || !errors.Is(err, tt.want) {
				t.Fatalf("RequestContent = %v, %v; want %v", asked, err, tt.want)
			}
		})
	}
}

func TestAskLimiterIsBounded(t *testing.T) {
	l := newAskLimiter()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range maxContentAsks {
		if !l.allow(askKey{root: 1, hash: cas.Sum(fmt.Appendf(nil, "%d", i))}, t0) {
			t.Fatalf("ask %d refused below the bound", i)
		}
	}
	extra := askKey{root: 1, hash: cas.Sum([]byte("extra"))}
	if l.allow(extra, t0.Add(time.Second)) {
		t.Fatal("an ask beyond the bound was allowed within the interval")
	}
	if !l.allow(extra, t0.Add(NeedContentInterval)) {
		t.Fatal("an ask after the interval was refused")
	}
	if len(l.last) != 1 {
		t.Errorf("limiter keeps %d entries after expiry, want 1", len(l.last))
	}
	// A clock that steps back does not silence a key for good.
	if !l.allow(extra, t0) {
		t.Error("an ask after the clock stepped back was refused")
	}
}

// packFile is the path of a pack in the server's chunk store (the layout
// package cas documents).
func packFile(dir string, num uint64) string {
	return filepath.Join(dir, CASDir, "packs", fmt.Sprintf("%02x", byte(num)), fmt.Sprintf("%016x.pack", num))
}

// damageChunk flips a payload byte of the chunk's record, or truncates
// its pack just before the record.
func damageChunk(t *testing.T, e *env, id cas.ID, truncate bool) {
	t.Helper()
	info, err := e.srv.Store().Stat(context.Background(), id)
	if err != nil || !info.Durable {
		t.Fatalf("stat chunk %s: %+v, %v", id.Short(), info, err)
	}
	name := packFile(e.dir, info.Pack)
	if truncate {
		if err := os.Truncate(name, info.Offset); err != nil {
			t.Fatal(err)
		}
		return
	}
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	off := info.Offset + cas.RecordHeaderSize + int64(info.StoredLen)/2
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// resend uploads every chunk of f, as a client answering need-content does.
func (e *env) resend(t *testing.T, sess *syncproto.Session, root string, f file) {
	t.Helper()
	var send []syncproto.Chunk
	seen := cas.NewIDSet()
	for _, r := range f.refs {
		if seen.Has(r.ID) {
			continue
		}
		seen.Insert(r.ID)
		c, err := f.wire(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		send = append(send, c)
	}
	if err := e.srv.PutChunks(context.Background(), sess, root, chunkSource(send)); err != nil {
		t.Fatalf("re-send: %v", err)
	}
}

func TestDamagedChunkIsAskedForAndReplaced(t *testing.T) {
	tests := []struct {
		name     string
		truncate bool
		cause    error
	}{
		{"corrupt payload", false, cas.ErrCorrupt},
		{"pack cut short", true, cas.ErrMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			owner, reader := e.client(t, "owner"), e.client(t, "reader")
			e.root(t, owner, "docs")
			e.join(t, reader, "docs")
			f := newFile(t, randomData(4, 300<<10))
			if len(f.refs) < 3 {
				t.Fatalf("want several chunks, got %d", len(f.refs))
			}
			head := e.mustPush(t, owner, "docs", "dir/f.bin", nil, f)
			w := e.watch(t, owner, &syncpb.WatchRequest{})
			e.subscribed(t, "docs", 1)

			victim := f.refs[len(f.refs)-1].ID
			intact := f.refs[0].ID
			intactBefore, err := e.srv.Store().Stat(ctx, intact)
			if err != nil {
				t.Fatal(err)
			}
			damageChunk(t, e, victim, tt.truncate)
			if _, err := e.srv.Store().Get(ctx, victim); !errors.Is(err, tt.cause) {
				t.Fatalf("damaged chunk reads as %v, want %v", err, tt.cause)
			}

			_, err = e.download(t, reader, "docs", "dir/f.bin", head.GetHash())
			if !errors.Is(err, syncproto.ErrUnavailable) || !strings.Contains(err.Error(), "asked clients to re-send it") ||
				!strings.Contains(err.Error(), victim.String()) || !strings.Contains(err.Error(), `"dir/f.bin"`) {
				t.Fatalf("download of damaged content: %v", err)
			}
			ns := w.waitFor(t, "need-content", hasNotice(syncpb.Notice_KIND_NEED_CONTENT, "dir/f.bin"))
			if n := needNotices(ns, f.hash); len(n) != 1 || n[0].GetHead().GetSeq() != head.GetSeq() || n[0].GetRoot() != "docs" {
				t.Fatalf("need-content notices %v", ns)
			}

			// A second failing download within the interval asks no more.
			if _, err := e.download(t, reader, "docs", "dir/f.bin", head.GetHash()); !errors.Is(err, syncproto.ErrUnavailable) {
				t.Fatalf("second download: %v", err)
			}

			e.resend(t, owner, "docs", f)
			got, err := e.download(t, reader, "docs", "dir/f.bin", head.GetHash())
			if err != nil || !bytes.Equal(got, f.data) {
				t.Fatalf("download after re-send: %d bytes, %v", len(got), err)
			}
			intactAfter, err := e.srv.Store().Stat(ctx, intact)
			if err != nil || intactAfter.Location != intactBefore.Location {
				t.Errorf("an intact chunk was rewritten: %+v -> %+v (%v)", intactBefore, intactAfter, err)
			}
			w.mu.Lock()
			n := len(needNotices(w.notices, f.hash))
			w.mu.Unlock()
			if n != 1 {
				t.Errorf("%d need-content notices, want 1 (rate limit)", n)
			}
		})
	}
}

func TestViewOfDamagedContentAsksForIt(t *testing.T) {
	e := newEnv(t)
	owner := e.client(t, "owner")
	info := e.root(t, owner, "docs")
	f := newFile(t, randomData(5, 200<<10))
	e.mustPush(t, owner, "docs", "v.bin", nil, f)
	e.srv.views.wait()
	w := e.watch(t, owner, &syncpb.WatchRequest{})
	e.subscribed(t, "docs", 1)
	damageChunk(t, e, f.refs[0].ID, false)

	r, err := e.srv.db.RootByName(context.Background(), info.GetName())
	if err != nil {
		t.Fatal(err)
	}
	e.srv.views.updateLatest(r.ID, r.Name, "v.bin")
	e.srv.views.wait()
	w.waitFor(t, "need-content from the view writer", hasNotice(syncpb.Notice_KIND_NEED_CONTENT, "v.bin"))
	// The view still holds the last good copy.
	if got := readFile(t, filepath.Join(e.dir, SyncDir, "docs", latestDir, "v.bin")); !bytes.Equal(got, f.data) {
		t.Error("the view of damaged content was overwritten")
	}
}

// BenchmarkPutChunksResend measures a need-content answer for intact
// content: every chunk is a duplicate, read back and verified before it is
// accepted.
func BenchmarkPutChunksResend(b *testing.B) {
	e, a := benchEnv(b)
	ctx := context.Background()
	f := newFile(b, randomData(9, 4<<20))
	var send []syncproto.Chunk
	seen := cas.NewIDSet()
	for _, r := range f.refs {
		if seen.Has(r.ID) {
			continue
		}
		seen.Insert(r.ID)
		c, err := f.wire(r.ID)
		if err != nil {
			b.Fatal(err)
		}
		send = append(send, c)
	}
	if err := e.srv.PutChunks(ctx, a, "docs", chunkSource(send)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(f.data)))
	for b.Loop() {
		if err := e.srv.PutChunks(ctx, a, "docs", chunkSource(send)); err != nil {
			b.Fatal(err)
		}
	}
}

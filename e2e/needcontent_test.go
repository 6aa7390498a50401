package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/server"
	"github.com/quic-s/quics/syncproto"
)

// shiftClock is the wall clock plus an offset the test moves forward, to
// step over the server's need-content rate limit.
type shiftClock struct {
	mu    sync.Mutex
	shift time.Duration
}

func (c *shiftClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.shift)
}

func (c *shiftClock) advance(d time.Duration) {
	c.mu.Lock()
	c.shift += d
	c.mu.Unlock()
}

// startServerWithStore is startServer that also hands out the server (for
// its chunk store and data directory) and runs it on clock.
func startServerWithStore(t *testing.T, clock func() time.Time) (*testServer, *server.Server, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dataDir := filepath.Join(t.TempDir(), "data")
	srv, err := server.Open(ctx, server.Options{
		DataDir: dataDir, Password: serverPassword, Views: true, Clock: clock,
		PasswordParams: cheapParams, TokenParams: cheapParams, SmallFootprint: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := syncproto.Listen(ctx, "127.0.0.1:0", srv.TLSConfig(), syncproto.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = syncproto.NewServer(srv, syncproto.ServerOptions{}).Serve(ctx, l)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return &testServer{addr: l.Addr().String(), fingerprint: srv.Fingerprint()}, srv, dataDir
}

// corruptChunk flips one payload byte of the chunk's record in its pack
// file (layout documented by package cas).
func corruptChunk(t *testing.T, srv *server.Server, dataDir string, id cas.ID) {
	t.Helper()
	info, err := srv.Store().Stat(context.Background(), id)
	if err != nil || !info.Durable {
		t.Fatalf("stat chunk %s: %+v, %v", id.Short(), info, err)
	}
	name := filepath.Join(dataDir, server.CASDir, "packs", fmt.Sprintf("%02x", byte(info.Pack)), fmt.Sprintf("%016x.pack", info.Pack))
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	off := info.Offset + cas.RecordHeaderSize + int64(info.StoredLen)/2
	b := []byte{0}
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestInProcessNeedContentRepairsDamagedChunk(t *testing.T) {
	clock := &shiftClock{}
	ts, srv, dataDir := startServerWithStore(t, clock.Now)
	a := newDevice(t, ts, "a")
	b := newDevice(t, ts, "b")
	a.addRoot("vault")
	b.joinRoot("vault")

	content := randomBytes(42, 2<<20)
	want := cas.Sum(content)
	a.write("photos/big.raw", content, 0o644)
	if res := a.sync(); res.FilesUploaded != 1 {
		t.Fatalf("upload: %+v", res.Stats)
	}
	rec, err := a.home.State().File(context.Background(), "vault", "photos/big.raw")
	if err != nil || len(rec.Chunks) < 3 {
		t.Fatalf("a's record: %d chunks, %v", len(rec.Chunks), err)
	}
	victim := rec.Chunks[len(rec.Chunks)/2].ID
	// The server writes its view of the file in the background, reading
	// every chunk: damaged first, it would ask a for the content itself,
	// before b's pull that this test is about.
	view := filepath.Join(dataDir, server.SyncDir, "vault", "latest", "photos", "big.raw")
	waitFor(t, "the server's view of photos/big.raw", func() bool {
		got, err := os.ReadFile(view)
		return err == nil && cas.Sum(got) == want
	})
	corruptChunk(t, srv, dataDir, victim)

	// a answers need-content notices while it runs.
	answered := make(chan error, 16)
	firstPass := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- client.Run(ctx, a.home.State(), client.RunOptions{
			Dial:   func(context.Context) (client.Session, error) { return a.sess, nil },
			Engine: client.EngineOptions{Warn: func(client.Warning) {}},
			Logger: slog.New(slog.DiscardHandler),
			OnPass: func(string, client.PassResult, error) { once.Do(func() { close(firstPass) }) },
			OnNeedContent: func(root, path string, sent int, err error) {
				if err == nil && (root != "vault" || path != "photos/big.raw" || sent != len(rec.Chunks)) {
					err = fmt.Errorf("answered %q %q with %d chunks, want %d", root, path, sent, len(rec.Chunks))
				}
				answered <- err
			},
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
		t.Fatal("a's first pass did not finish")
	}

	// b's download of that file fails with ErrUnavailable and writes
	// nothing (the pass itself goes on: only this file waits); a re-sends.
	// A notice sent before a's watch was subscribed is lost, so a later
	// attempt steps the server's clock over the rate limit.
	target := filepath.Join(b.dir, "photos", "big.raw")
	for attempt := 0; ; attempt++ {
		res, err := b.eng.SyncRoot(context.Background(), "vault")
		if err != nil || res.FilesDownloaded != 0 {
			t.Fatalf("b's pass over damaged content: %+v, %v", res.Stats, err)
		}
		if w := b.lastWarning(); w.Path != "photos/big.raw" || !errors.Is(w.Err, syncproto.ErrUnavailable) ||
			!strings.Contains(w.Err.Error(), "asked clients to re-send it") {
			t.Fatalf("b's pull of damaged content warned %v, want ErrUnavailable for photos/big.raw", w)
		}
		if _, serr := os.Stat(target); !errors.Is(serr, os.ErrNotExist) {
			t.Fatalf("b wrote %s from damaged content (%v)", target, serr)
		}
		select {
		case err := <-answered:
			if err != nil {
				t.Fatalf("a's answer: %v", err)
			}
		case <-time.After(2 * time.Second):
			if attempt >= 5 {
				t.Fatal("a never answered the need-content notice")
			}
			clock.advance(2 * server.NeedContentInterval)
			continue
		}
		break
	}

	if _, err := srv.Store().Get(context.Background(), victim); err != nil {
		t.Fatalf("the damaged chunk was not replaced: %v", err)
	}
	res, err := b.eng.SyncRoot(context.Background(), "vault")
	if err != nil || res.FilesDownloaded != 1 {
		t.Fatalf("b's pull after the re-send: %+v, %v", res.Stats, err)
	}
	got, err := os.ReadFile(target)
	if err != nil || cas.Sum(got) != want {
		t.Fatalf("b's copy: %v, hash matches = %v", err, err == nil && cas.Sum(got) == want)
	}
}

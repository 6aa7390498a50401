package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/gc"
	"github.com/quic-s/quics/manifest"
)

// TestInProcessGCWhileSyncing runs collections with no safety margin in a
// loop while three devices upload fresh and shared content over QUIC and
// retention keeps making old versions garbage. Nothing a device committed
// may be lost: at the end every device has every file, the server's check
// re-reads every chunk cleanly.
func TestInProcessGCWhileSyncing(t *testing.T) {
	ts, srv, _ := startServerWithStore(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	devices := []*device{newDevice(t, ts, "d0"), newDevice(t, ts, "d1"), newDevice(t, ts, "d2")}
	devices[0].addRoot("docs")
	for _, d := range devices[1:] {
		d.joinRoot("docs")
	}
	if err := srv.SetRootRetention(ctx, "docs", manifest.Retention{Kind: manifest.KeepLast, Value: 2}); err != nil {
		t.Fatal(err)
	}

	const rounds = 8
	var collections atomic.Int64
	stop := make(chan struct{})
	gcDone := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				gcDone <- nil
				return
			default:
			}
			if _, err := srv.GC(ctx, gc.Options{Margin: 0, RepackThreshold: 0.5}); err != nil {
				gcDone <- fmt.Errorf("collection %d: %w", collections.Load()+1, err)
				return
			}
			collections.Add(1)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, len(devices)*rounds)
	for i, d := range devices {
		wg.Go(func() {
			for r := range rounds {
				// Fresh content, and content the three devices share.
				dir := filepath.Join(d.dir, fmt.Sprintf("d%d", i))
				err := errors.Join(os.MkdirAll(dir, 0o755),
					os.WriteFile(filepath.Join(dir, "fresh.bin"), randomBytes(uint64(1000*i+r), 96<<10), 0o644),
					os.WriteFile(filepath.Join(dir, "shared.bin"), randomBytes(uint64(r%3), 128<<10), 0o644))
				if err != nil {
					errs <- err
					return
				}
				if _, err := d.eng.SyncRoot(ctx, "docs"); err != nil {
					errs <- fmt.Errorf("device %d round %d: %w", i, r, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-gcDone; err != nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if collections.Load() < 2 {
		t.Fatalf("only %d collections ran during the uploads", collections.Load())
	}
	t.Logf("%d collections ran during %d rounds of uploads", collections.Load(), rounds)

	if _, err := srv.GC(ctx, gc.Options{Margin: 0, RepackThreshold: 0.5}); err != nil {
		t.Fatal(err)
	}
	rep, err := srv.Check(ctx, true, false)
	if err != nil || !rep.OK {
		t.Fatalf("check --read-data after the race: %+v, %v", rep.Problems, err)
	}
	// Every retained version still reads back with its hash.
	versions := 0
	err = srv.Manifest().ForEachVersion(ctx, manifest.AllRoots, func(_ manifest.RootID, p string, v manifest.Version) error {
		if v.Deleted {
			return nil
		}
		versions++
		h := newHashWriter()
		if err := srv.WriteContent(ctx, v.Hash, h); err != nil {
			return fmt.Errorf("%s version %d: %w", p, v.Seq, err)
		}
		if got := h.sum(); got != v.Hash {
			return fmt.Errorf("%s version %d reads back as %s, want %s", p, v.Seq, got, v.Hash)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devices {
		if _, err := d.eng.SyncRoot(ctx, "docs"); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range devices[1:] {
		sameTree(t, devices[0].dir, d.dir)
	}
	if n := len(treeOf(t, devices[0].dir)); n != 2*len(devices) {
		t.Errorf("%d files synced, want %d", n, 2*len(devices))
	}
	t.Logf("%d retained versions read back", versions)
}

// hashWriter hashes what is written to it.
type hashWriter struct{ h *blake3.Hasher }

func newHashWriter() *hashWriter { return &hashWriter{h: blake3.New()} }

func (w *hashWriter) Write(p []byte) (int, error) { return w.h.Write(p) }

func (w *hashWriter) sum() cas.ID {
	var id cas.ID
	copy(id[:], w.h.Sum(nil))
	return id
}

package gc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
)

// Writers commit new versions of fresh and shared content, drop old
// versions and read heads back, while collections with margin 0 loop:
// afterwards every version reads back with its hash, the check is clean,
// and nobody ever read a live chunk as missing or damaged.
func TestGCWhileCommitting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e := newRealEnv(t, 16<<10)
	pins := newFakePins()
	root := e.root(t, "r")

	// A pool of chunks the writers share: each one often becomes garbage
	// (its versions dropped) and is then offered again.
	rng := rand.New(rand.NewPCG(7, 7))
	pool := make([][]byte, 24)
	for i := range pool {
		pool[i] = randomBytes(rng, 1500)
	}

	const (
		writers = 3
		commits = 80
	)
	var (
		// reuploads counts commits that found a chunk gone; a writer
		// that pins never should.
		reuploads, pinnedReuploads atomic.Int64
		written                    atomic.Int64
		wg                         sync.WaitGroup
		done                       = make(chan struct{})
	)
	for w := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 11))
			var base *manifest.Version
			path := fmt.Sprintf("w%d", w)
			for i := range commits {
				var cs [][]byte
				for range 1 + r.IntN(3) {
					cs = append(cs, randomBytes(r, 500+r.IntN(2000)))
				}
				for range r.IntN(3) {
					cs = append(cs, pool[r.IntN(len(pool))])
				}
				// Writer 0 pins nothing, like a session past its pin
				// limit: only the commit fence protects its chunks.
				p := pins
				if w == 0 {
					p = nil
				}
				v, attempts, err := e.upload(ctx, p, root.ID, path, base, newFile(cs...))
				if err != nil {
					t.Errorf("writer %d commit %d: %v", w, i, err)
					return
				}
				reuploads.Add(int64(attempts - 1))
				if p != nil {
					pinnedReuploads.Add(int64(attempts - 1))
				}
				written.Add(1)
				base = &v
				if v.Seq > 2 && i%3 == 2 {
					// Keep the last two versions of the file.
					vs, err := e.db.Versions(ctx, root.ID, path)
					if err != nil {
						t.Errorf("versions: %v", err)
						return
					}
					var old []uint64
					for _, x := range vs[:max(len(vs)-2, 0)] {
						old = append(old, x.Seq)
					}
					if _, err := e.db.DropVersions(ctx, root.ID, path, old); err != nil {
						t.Errorf("drop versions: %v", err)
						return
					}
				}
			}
		})
	}
	// A reader downloads heads all along. A chunk may only be missing if
	// its version was dropped meanwhile; damaged never.
	var reads atomic.Int64
	var reader sync.WaitGroup
	reader.Go(func() {
		r := rand.New(rand.NewPCG(99, 1))
		for {
			select {
			case <-done:
				return
			default:
			}
			path := fmt.Sprintf("w%d", r.IntN(writers))
			h, err := e.db.Head(ctx, root.ID, path)
			if errors.Is(err, manifest.ErrNotFound) {
				continue
			}
			if err != nil {
				t.Errorf("head: %v", err)
				return
			}
			v := manifest.Version{Seq: h.Seq, Hash: h.Hash, Size: h.Size, Deleted: h.Deleted}
			err = e.readVersion(ctx, v)
			if errors.Is(err, cas.ErrNotFound) {
				if _, verr := e.db.Version(ctx, root.ID, path, h.Seq); verr == nil {
					t.Errorf("head %d of %s still exists but a chunk is gone: %v", h.Seq, path, err)
					return
				}
				continue
			}
			if err != nil {
				t.Errorf("read head %d of %s: %v", h.Seq, path, err)
				return
			}
			reads.Add(1)
		}
	})
	go func() {
		wg.Wait()
		close(done)
	}()

	var rounds int
	var deleted, remarked, rewritten uint64
	for writing := true; writing || rounds < 5; rounds++ {
		select {
		case <-done:
			writing = false
		default:
		}
		if ctx.Err() != nil {
			t.Fatalf("writers did not finish in time (%d collections)", rounds)
		}
		rep, err := Run(ctx, e.store, e.db, pins, Options{Margin: 0, RepackThreshold: 0.5})
		if err != nil {
			t.Fatalf("collection %d: %v", rounds, err)
		}
		deleted += rep.ChunksDeleted
		remarked += rep.ChunksRemarked
		rewritten += uint64(rep.PacksRewritten)
	}
	reader.Wait()
	if t.Failed() {
		return
	}
	t.Logf("%d collections: %d chunks deleted, %d re-marked by the fence, %d packs rewritten; %d commits, %d re-uploads, %d head reads",
		rounds, deleted, remarked, rewritten, written.Load(), reuploads.Load(), reads.Load())
	if n := pinnedReuploads.Load(); n != 0 {
		t.Errorf("writers that pin had to upload again %d times: a pinned chunk was collected", n)
	}
	if deleted == 0 || rewritten == 0 {
		t.Fatal("the collections never deleted or rewrote anything: the test exercised nothing")
	}
	for _, v := range e.allVersions(t) {
		if err := e.readVersion(ctx, v); err != nil {
			t.Fatalf("version %d after the race: %v", v.Seq, err)
		}
	}
	if rep := mustCheck(t, e, true); !rep.OK {
		t.Fatalf("check after the race: %v", rep.Problems)
	}
}

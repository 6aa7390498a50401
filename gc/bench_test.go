package gc

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
)

// BenchmarkGC1MChunks collects a store of 1 M tiny chunks, of which a
// fifth belong to a removed root: the mark, the sweep of 200 k chunks and
// the removal of their packs. Setup (writing the store) is outside the
// timer. It reports the mark filters' bytes per chunk, the peak RSS of the
// process during the collection (VmHWM, reset before it; it includes the
// database's caches) and how much the Go heap grew at its peak. Run with:
//
//	go test -run '^$' -bench GC1MChunks -benchtime 1x ./gc/
func BenchmarkGC1MChunks(b *testing.B) {
	if testing.Short() {
		b.Skip("builds a store of 1 M chunks")
	}
	const (
		files         = 10_000
		chunksPerFile = 100
		goneFiles     = files / 5
	)
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e := buildBenchStore(b, files, chunksPerFile, goneFiles)
		// Setup's garbage must not count as the collection's.
		debug.FreeOSMemory()
		heapBefore := heapObjects()
		resetPeakRSS()
		stopHeap := sampleHeapPeak()
		b.StartTimer()
		rep, err := Run(context.Background(), e.store, e.db, nil, Options{Margin: 0, RepackThreshold: DefaultRepackThreshold})
		b.StopTimer()
		heap := stopHeap()
		if err != nil {
			b.Fatal(err)
		}
		// A few garbage chunks are false positives of the mark filter.
		if rep.ChunksTotal < files*chunksPerFile || rep.ChunksDeleted < goneFiles*chunksPerFile*99/100 {
			b.Fatalf("collected %d of %d chunks, deleted %d", rep.ChunksTotal, files*chunksPerFile, rep.ChunksDeleted)
		}
		b.ReportMetric(float64(rep.ChunksTotal), "chunks")
		b.ReportMetric(float64(rep.ChunksDeleted), "deleted")
		b.ReportMetric(rep.MarkBytesPerChunk, "mark-B/chunk")
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		b.ReportMetric(float64(heap-min(heap, heapBefore))/(1<<20), "peak-heap-growth-MiB")
		b.Logf("report: %+v", rep)
		b.StartTimer()
	}
}

// buildBenchStore writes files×chunksPerFile distinct 32-byte chunks in
// two roots, then removes the root holding goneFiles of them.
func buildBenchStore(b testing.TB, files, chunksPerFile, goneFiles int) *realEnv {
	ctx := context.Background()
	e := newRealEnv(b, 4<<20)
	live, gone := e.root(b, "live"), e.root(b, "gone")
	chunk := func(f, c int) []byte {
		var d [32]byte
		binary.LittleEndian.PutUint64(d[:], uint64(f))
		binary.LittleEndian.PutUint64(d[8:], uint64(c))
		copy(d[16:], "quics-gc-bench!!")
		return d[:]
	}
	start := time.Now()
	for f := range files {
		for c := range chunksPerFile {
			d := chunk(f, c)
			if _, err := e.store.Put(ctx, cas.Sum(d), d); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := e.store.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for f := range work {
				if err := commitBenchFile(ctx, e, live, gone, f, f < goneFiles, chunksPerFile, chunk); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	if err := e.db.RemoveRoot(ctx, gone.ID); err != nil {
		b.Fatal(err)
	}
	b.Logf("setup: %d chunks in %v", files*chunksPerFile, time.Since(start).Round(time.Millisecond))
	return e
}

func commitBenchFile(ctx context.Context, e *realEnv, live, gone manifest.Root, f int, toGone bool, n int, chunk func(f, c int) []byte) error {
	cs := make([][]byte, n)
	for c := range cs {
		cs[c] = chunk(f, c)
	}
	fl := newFile(cs...)
	list := make([]manifest.Chunk, n)
	for c := range cs {
		list[c] = manifest.Chunk{ID: cas.Sum(cs[c]), Size: uint32(len(cs[c]))}
	}
	root := live.ID
	if toGone {
		root = gone.ID
	}
	_, err := e.db.Commit(ctx, manifest.Proposal{Root: root, Path: fmt.Sprintf("f%06d", f), Hash: fl.hash, Size: fl.size(), Chunks: list})
	return err
}

// resetPeakRSS resets the kernel's peak resident set (VmHWM) of this
// process, where Linux allows it.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is VmHWM in bytes, 0 where unknown.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

func heapObjects() uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// sampleHeapPeak samples the Go heap every few milliseconds until the
// returned function is called, which returns the peak.
func sampleHeapPeak() func() uint64 {
	const name = "/memory/classes/heap/objects:bytes"
	sample := []metrics.Sample{{Name: name}}
	var peak uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			peak = max(peak, sample[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	})
	return func() uint64 {
		close(stop)
		wg.Wait()
		return peak
	}
}

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/quic-s/quics/client"
)

// progressLog records what an engine reports to its Progress listener,
// and checks on every report that nothing was reported moved before it
// was planned.
type progressLog struct {
	t  testing.TB
	mu sync.Mutex
	// planned and moved are the running sums per direction.
	planned, moved map[client.Direction]int64
	// plannedAtFirstMove is the planned sum when the first bytes moved:
	// the whole of it if the engine plans before it transfers.
	plannedAtFirstMove map[client.Direction]int64
}

func newProgressLog(t testing.TB) *progressLog {
	return &progressLog{
		t: t, planned: map[client.Direction]int64{}, moved: map[client.Direction]int64{},
		plannedAtFirstMove: map[client.Direction]int64{},
	}
}

func (l *progressLog) Plan(d client.Direction, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.planned[d] += n
}

func (l *progressLog) Moved(d client.Direction, n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n <= 0 {
		l.t.Errorf("Moved(%v, %d): not a positive count", d, n)
	}
	if l.moved[d] == 0 {
		l.plannedAtFirstMove[d] = l.planned[d]
	}
	l.moved[d] += n
	if l.moved[d] > l.planned[d] {
		l.t.Errorf("%v: %d bytes moved, only %d planned", d, l.moved[d], l.planned[d])
	}
}

// reset clears the sums before the next pass.
func (l *progressLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.planned)
	clear(l.moved)
	clear(l.plannedAtFirstMove)
}

// check fails the test unless a pass planned and moved exactly want bytes
// in direction d, and planned all of them before moving any.
func (l *progressLog) check(what string, d client.Direction, want int64) {
	l.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.planned[d] != want || l.moved[d] != want {
		l.t.Errorf("%s: %v planned %d, moved %d; want %d", what, d, l.planned[d], l.moved[d], want)
	}
	if want > 0 && l.plannedAtFirstMove[d] != want {
		l.t.Errorf("%s: %v planned %d of %d bytes before the first moved", what, d, l.plannedAtFirstMove[d], want)
	}
}

// withProgress gives d an engine that reports to a fresh progressLog.
func withProgress(d *device) *progressLog {
	l := newProgressLog(d.t)
	d.eng = client.NewEngine(d.home.State(), d.sess, client.EngineOptions{
		Progress: l,
		// Small batches, so an upload reports in several steps.
		UploadBatchBytes: 1 << 20,
	})
	return l
}

func TestInProcessProgressMatchesBytesMoved(t *testing.T) {
	ts := startServer(t)
	a, b := newDevice(t, ts, "a"), newDevice(t, ts, "b")
	a.addRoot("docs")
	b.joinRoot("docs")
	la, lb := withProgress(a), withProgress(b)

	// Random content: no chunk repeats, so every byte is a new chunk's.
	sizes := map[string]int{"big.bin": 5<<20 + 12345, "mid/one.bin": 1 << 20, "small.txt": 300}
	var total int64
	content := map[string][]byte{}
	seed := uint64(1)
	for name, n := range sizes {
		content[name] = randomBytes(seed, n)
		a.write(name, content[name], 0o644)
		seed++
		total += int64(n)
	}

	res := a.sync()
	if res.FilesUploaded != len(sizes) {
		t.Fatalf("a uploaded %d files, want %d", res.FilesUploaded, len(sizes))
	}
	la.check("a's first pass", client.Upload, total)
	la.check("a's first pass", client.Download, 0)
	if res.BytesSent < total {
		t.Errorf("a sent %d bytes at the socket, fewer than the %d uploaded", res.BytesSent, total)
	}

	res = b.sync()
	if res.FilesDownloaded != len(sizes) || res.ChunksReused != 0 {
		t.Fatalf("b downloaded %d files (%d chunks reused), want %d, none reused", res.FilesDownloaded, res.ChunksReused, len(sizes))
	}
	lb.check("b's first pass", client.Download, total)
	lb.check("b's first pass", client.Upload, 0)
	sameTree(t, a.dir, b.dir)

	// A copy: the server has every chunk, so nothing is uploaded; b
	// writes the copy's content from its own big.bin.
	la.reset()
	lb.reset()
	a.write("copy.bin", content["big.bin"], 0o644)
	if res := a.sync(); res.FilesUploaded != 1 || res.ChunksSent != 0 {
		t.Fatalf("copy: a uploaded %d files, %d chunks; want 1 file, 0 chunks", res.FilesUploaded, res.ChunksSent)
	}
	la.check("a's copy", client.Upload, 0)
	if res := b.sync(); res.FilesDownloaded != 1 || res.ChunksFetched != 0 {
		t.Fatalf("copy: b downloaded %d files, fetched %d chunks; want 1 file, 0 chunks", res.FilesDownloaded, res.ChunksFetched)
	}
	lb.check("b's copy", client.Download, int64(sizes["big.bin"]))
	sameTree(t, a.dir, b.dir)

	// A pass with nothing to do reports nothing.
	la.reset()
	a.sync()
	la.check("idle pass", client.Upload, 0)
	la.check("idle pass", client.Download, 0)
}

// TestInProcessProgressSyncAll checks the sums over several roots, each
// its own pass.
func TestInProcessProgressSyncAll(t *testing.T) {
	ts := startServer(t)
	a := newDevice(t, ts, "a")
	la := withProgress(a)
	var total int64
	for i, root := range []string{"r1", "r2"} {
		a.dir = t.TempDir()
		a.addRoot(root)
		n := (i + 1) << 20
		a.write(fmt.Sprintf("f%d.bin", i), randomBytes(uint64(10+i), n), 0o600)
		total += int64(n)
	}
	res, err := a.eng.SyncAll(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res.FilesUploaded != 2 {
		t.Fatalf("uploaded %d files, want 2", res.FilesUploaded)
	}
	// Each root is its own pass, planned when its push starts.
	la.mu.Lock()
	defer la.mu.Unlock()
	if up, moved := la.planned[client.Upload], la.moved[client.Upload]; up != total || moved != total {
		t.Errorf("SyncAll: upload planned %d, moved %d; want %d", up, moved, total)
	}
}

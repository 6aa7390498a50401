package client

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quic-s/quics/chunker"
)

// testParams cut small files into several chunks, so tests need no big
// files to exercise chunk lists.
var testParams = chunker.Params{Min: 256, Avg: 1024, Max: 4096}

func openTestHome(t testing.TB, dir string) *Home {
	t.Helper()
	h, err := OpenHome(context.Background(), dir)
	if err != nil {
		t.Fatalf("OpenHome(%s): %v", dir, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// testRoot opens a fresh home and registers a root over a fresh directory.
func testRoot(t testing.TB, params chunker.Params) (*Home, string) {
	t.Helper()
	h := openTestHome(t, t.TempDir())
	dir := t.TempDir()
	if err := h.State().PutRoot(context.Background(), Root{Name: "docs", Dir: dir, Chunking: params}); err != nil {
		t.Fatal(err)
	}
	return h, dir
}

func writeFile(t testing.TB, dir, rel string, data []byte) {
	t.Helper()
	name := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// warnings collects scan warnings.
type warnings struct {
	mu   sync.Mutex
	list []Warning
}

func (w *warnings) add(x Warning) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, x)
}

func (w *warnings) paths() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var p []string
	for _, x := range w.list {
		p = append(p, x.Path)
	}
	return p
}

// laterClock is a scan clock an hour ahead, so every file written before
// the scan is clearly older than it: not racy. Tests that want the stat-only
// path use it.
func laterClock() time.Time { return time.Now().Add(time.Hour) }

func scanner(h *Home, w *warnings, now func() time.Time) *Scanner {
	opts := ScanOptions{Workers: 2, Now: now}
	if w != nil {
		opts.Warn = w.add
	}
	return NewScanner(h.State(), opts)
}

func mustScan(t testing.TB, s *Scanner) ScanResult {
	t.Helper()
	res, err := s.Scan(context.Background(), "docs")
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return res
}

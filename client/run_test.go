package client

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fsnotify/fsnotify"
)

func TestWorkPaths(t *testing.T) {
	w := newWork()
	w.addPaths("docs", []string{"a/1.txt", "b"})
	w.addPaths("docs", []string{"b", "c"})
	w.add("docs", false) // a notice: the path pass pulls too
	w.addPaths("photos", []string{"x"})
	w.add("photos", true) // a full pass covers the paths
	w.addPaths("photos", []string{"y"})
	full, paths := w.take()
	if full["docs"] || !full["photos"] {
		t.Errorf("full passes %v, want photos only", full)
	}
	if got := paths["docs"]; !slices.Equal(got, []string{"a/1.txt", "b", "c"}) {
		t.Errorf("docs paths %q", got)
	}
	if _, ok := paths["photos"]; ok {
		t.Errorf("photos has paths %q beside its full pass", paths["photos"])
	}
	if full, paths := w.take(); len(full) != 0 || len(paths) != 0 {
		t.Errorf("second take: %v %v, want nothing", full, paths)
	}
	// Too many paths: the whole root.
	for i := range maxEventPaths + 1 {
		w.addPaths("docs", []string{filepath.Join("d", string(rune('a'+i%26)), time.Duration(i).String())})
	}
	if full, paths := w.take(); !full["docs"] || paths["docs"] != nil {
		t.Errorf("after %d paths: full %v, paths %d", maxEventPaths+1, full, len(paths["docs"]))
	}
}

// File events become passes over the paths they name; an event on the
// root directory itself, a pass over the whole root.
func TestWatchLocalNamesPaths(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	w := newWork()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- watchLocal(ctx, []Root{{Name: "docs", Dir: dir}}, 20*time.Millisecond, w) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	want := []string{"new dir", "sub/f.txt"}
	deadline := time.Now().Add(10 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		// Written until the watcher, which starts in the background,
		// has seen both.
		writeFile(t, dir, "sub/f.txt", []byte(time.Now().String()))
		_ = os.Remove(filepath.Join(dir, "new dir"))
		if err := os.Mkdir(filepath.Join(dir, "new dir"), 0o755); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.signal:
		case <-time.After(200 * time.Millisecond):
		}
		full, paths := w.take()
		if full["docs"] {
			t.Fatalf("a full pass for events on named paths")
		}
		for _, p := range paths["docs"] {
			if !slices.Contains(got, p) {
				got = append(got, p)
			}
		}
		slices.Sort(got)
		if slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("paths from events: %q, want %q", got, want)
}

func TestFullPassGap(t *testing.T) {
	tests := []struct {
		scanMS  int64
		partial bool
		want    time.Duration
	}{
		{0, false, 5 * time.Minute},
		{2_000, false, 5 * time.Minute},  // 200 s: the interval is longer
		{6_000, false, 10 * time.Minute}, // a 6 s scan: 1 % of the time
		{60_000, false, 100 * time.Minute},
		{60_000, true, 10 * time.Minute}, // events do not cover everything: 10 %
		{10_000, true, 5 * time.Minute},
	}
	for _, tc := range tests {
		if got := fullPassGap(5*time.Minute, tc.scanMS, tc.partial); got != tc.want {
			t.Errorf("fullPassGap(5m, %d ms, partial %v) = %v, want %v", tc.scanMS, tc.partial, got, tc.want)
		}
	}
}

// Directories that cannot be watched are counted, and make the periodic
// full passes come as often as the interval says (see fullPassGap).
func TestAddTreeCountsUnwatched(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		t.Fatal(err)
	}
	w := newWork()
	if failed, why := addTree(fw, dir, w); failed != 0 || why != nil || w.eventsPartial.Load() {
		t.Fatalf("open watcher: %d failed (%v), partial %v", failed, why, w.eventsPartial.Load())
	}
	fw.Close() // every watch now fails, as past the system's limit
	if failed, why := addTree(fw, dir, w); failed != 4 || why == nil || !w.eventsPartial.Load() {
		t.Errorf("closed watcher: %d failed (%v), partial %v; want the 4 directories", failed, why, w.eventsPartial.Load())
	}
}

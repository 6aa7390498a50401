package server

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func TestViewsModeMtimeAndObstacles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	latest := filepath.Join(e.dir, SyncDir, "docs", latestDir)

	// Mode and mtime of the version; the owner can always read and write.
	f := newFile(t, []byte("#!/bin/sh\necho hi\n"))
	e.upload(t, a, "docs", f)
	req := request("docs", "bin/run", nil, f)
	req.Mode = 0o500
	mtime := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	req.Mtime = mtime.UnixNano()
	if _, err := e.srv.Propose(ctx, a, req, f.refs); err != nil {
		t.Fatal(err)
	}
	e.srv.views.wait()
	fi, err := os.Stat(filepath.Join(latest, "bin", "run"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 || !fi.ModTime().Equal(mtime) {
		t.Errorf("view mode %v mtime %v, want 0700 and %v", fi.Mode().Perm(), fi.ModTime(), mtime)
	}

	// A file "a", then a file "a/b": the directory wins, and the other way
	// round. Views show the latest commit; the manifest keeps both.
	fa := newFile(t, []byte("file a"))
	fb := newFile(t, []byte("file a/b"))
	e.mustPush(t, a, "docs", "a", nil, fa)
	e.srv.views.wait()
	e.mustPush(t, a, "docs", "a/b", nil, fb)
	e.srv.views.wait()
	if got := readFile(t, filepath.Join(latest, "a", "b")); !bytes.Equal(got, fb.data) {
		t.Error("a/b not materialized over the file a")
	}
	fc := newFile(t, []byte("file c"))
	e.mustPush(t, a, "docs", "c/d/e", nil, fc)
	e.srv.views.wait()
	fcc := newFile(t, []byte("file c itself"))
	e.mustPush(t, a, "docs", "c", nil, fcc)
	e.srv.views.wait()
	if got := readFile(t, filepath.Join(latest, "c")); !bytes.Equal(got, fcc.data) {
		t.Error("c not materialized over the directory c")
	}

	// A symlink planted in a view is replaced, never followed.
	outside := filepath.Join(t.TempDir(), "outside")
	if err := os.Mkdir(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(latest, "link")); err != nil {
		t.Fatal(err)
	}
	e.mustPush(t, a, "docs", "link/x", nil, newFile(t, []byte("x")))
	e.srv.views.wait()
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Errorf("a write followed a symlink out of the view: %v", entries)
	}
	if fi, err := os.Lstat(filepath.Join(latest, "link")); err != nil || !fi.IsDir() {
		t.Errorf("link not replaced by a directory: %v, %v", fi, err)
	}

	// Deleting the whole view loses nothing: the next commit of a path
	// writes it again.
	if err := os.RemoveAll(filepath.Join(e.dir, SyncDir)); err != nil {
		t.Fatal(err)
	}
	heads, _, _ := e.heads(t, a, "docs", 0)
	e.mustPush(t, a, "docs", "a/b", heads["a/b"], newFile(t, []byte("again")))
	e.srv.views.wait()
	if got := readFile(t, filepath.Join(latest, "a", "b")); string(got) != "again" {
		t.Errorf("view after removal: %q", got)
	}
	// No temporary files are left behind.
	_ = filepath.Walk(filepath.Join(e.dir, SyncDir), func(p string, fi os.FileInfo, err error) error {
		if err == nil && len(fi.Name()) > len(tempPrefix) && fi.Name()[:len(tempPrefix)] == tempPrefix {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

func TestViewsOff(t *testing.T) {
	opts := testOptions(filepath.Join(t.TempDir(), "data"))
	opts.Views = false
	e := newEnvWith(t, opts)
	a := e.client(t, "a")
	e.root(t, a, "docs")
	e.mustPush(t, a, "docs", "f", nil, newFile(t, []byte("f")))
	// A conflict would be materialized too.
	if _, err := e.push(a, "docs", "f", nil, newFile(t, []byte("g"))); err == nil {
		t.Fatal("conflicting proposal accepted")
	}
	if _, err := os.Stat(filepath.Join(e.dir, SyncDir)); !os.IsNotExist(err) {
		t.Errorf("views written with views off: %v", err)
	}
}

func TestViewsCoalesce(t *testing.T) {
	e := newEnv(t)
	a := e.client(t, "a")
	e.root(t, a, "docs")
	var h *syncpb.FileHead
	var last file
	for i := range 20 {
		last = newFile(t, []byte{byte(i), 'x'})
		h = e.mustPush(t, a, "docs", "f", h, last)
	}
	e.srv.views.wait()
	if got := readFile(t, filepath.Join(e.dir, SyncDir, "docs", latestDir, "f")); !bytes.Equal(got, last.data) {
		t.Errorf("view after 20 quick commits is %q, want the last %q", got, last.data)
	}
}

func TestViewsNextKeepsClashingPathsInOrder(t *testing.T) {
	const r1, r2 = manifest.RootID(1), manifest.RootID(2)
	job := func(root manifest.RootID, kind viewKind, p string) viewJob {
		return viewJob{kind: kind, root: root, path: p}
	}
	latest := func(p string) viewJob { return job(r1, viewLatest, p) }
	tests := []struct {
		name    string
		running []viewJob
		fifo    []viewJob
		want    int
	}{
		{"empty", nil, nil, -1},
		{"free", nil, []viewJob{latest("c"), latest("c/d")}, 0},
		{"file running, its subtree waits", []viewJob{latest("c")}, []viewJob{latest("c/d"), latest("e")}, 1},
		{"directory entry running, its parent file waits", []viewJob{latest("c/d/e")}, []viewJob{latest("c"), latest("x")}, 1},
		{"same name, other prefix is free", []viewJob{latest("c")}, []viewJob{latest("cd"), latest("c.txt")}, 0},
		{"a held job holds later clashing ones", []viewJob{latest("c")}, []viewJob{latest("c/d"), latest("c/d/e"), latest("d")}, 2},
		{"held job's sibling may pass", []viewJob{latest("a/b")}, []viewJob{latest("a"), latest("b/c")}, 1},
		{"other root", []viewJob{latest("c")}, []viewJob{job(r2, viewLatest, "c/d")}, 0},
		{"other kind", []viewJob{latest("c")}, []viewJob{job(r1, viewConflict, "c/d")}, 0},
		{"all held", []viewJob{latest("c"), latest("d")}, []viewJob{latest("c/1"), latest("d/1")}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &views{running: tt.running, fifo: tt.fifo}
			if got := v.next(); got != tt.want {
				t.Errorf("next() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestViewsNextLooksOnlySoFar(t *testing.T) {
	v := &views{running: []viewJob{{kind: viewLatest, root: 1, path: "c"}}}
	for i := range nextScan {
		v.fifo = append(v.fifo, viewJob{kind: viewLatest, root: 1, path: "c/" + strconv.Itoa(i)})
	}
	v.fifo = append(v.fifo, viewJob{kind: viewLatest, root: 1, path: "free"})
	if got := v.next(); got != -1 {
		t.Errorf("next() = %d past %d held jobs, want -1 (wait)", got, nextScan)
	}
}

// A file and a file under a directory of its name, committed in turn,
// leave the view of the later commit however the workers interleave.
func TestViewsClashingPathsFollowCommitOrder(t *testing.T) {
	e := newEnv(t)
	a := e.client(t, "a")
	e.root(t, a, "docs")
	latest := filepath.Join(e.dir, SyncDir, "docs", latestDir)
	for i := range 10 {
		dir := "c" + strconv.Itoa(i)
		e.mustPush(t, a, "docs", dir, nil, newFile(t, []byte("a file")))
		e.mustPush(t, a, "docs", dir+"/d", nil, newFile(t, []byte("then a directory")))
	}
	e.srv.views.wait()
	for i := range 10 {
		p := filepath.Join(latest, "c"+strconv.Itoa(i), "d")
		if got, err := os.ReadFile(p); err != nil || string(got) != "then a directory" {
			t.Errorf("%s: %q, %v; want the later commit", p, got, err)
		}
	}
}

// A commit to a path whose job is running queues the job again at once,
// so a later commit to a clashing path is materialized after it.
func TestViewsRerunKeepsCommitOrder(t *testing.T) {
	v := &views{state: make(map[viewJob]jobState), gone: make(map[manifest.RootID]struct{})}
	v.work = sync.NewCond(&v.mu)
	c := viewJob{kind: viewLatest, root: 1, path: "c"}
	cd := viewJob{kind: viewLatest, root: 1, path: "c/d"}
	// c is running when c is committed again, then c/d.
	v.state[c], v.running = jobRunning, []viewJob{c}
	v.enqueue(c)
	v.enqueue(cd)
	if !slices.Equal(v.fifo, []viewJob{c, cd}) || v.state[c] != jobRerun {
		t.Fatalf("queue %v, state of c %v; want c then c/d, c to run again", v.fifo, v.state[c])
	}
	if i := v.next(); i != -1 {
		t.Fatalf("next() = %d while c runs, want -1", i)
	}
	// c ends: its second run comes first, c/d after it.
	v.running = nil
	if i := v.next(); i != 0 {
		t.Fatalf("next() = %d after c ended, want 0 (c again)", i)
	}
}

// BenchmarkViewsQueue is the queue's cost per job for a whole tree's
// commits queued at once (a first sync with views on), without the
// materializing.
func BenchmarkViewsQueue(b *testing.B) {
	const jobs = 20000
	paths := make([]string, jobs)
	for i := range paths {
		paths[i] = "d" + strconv.Itoa(i%400) + "/f" + strconv.Itoa(i)
	}
	for b.Loop() {
		v := &views{state: make(map[viewJob]jobState), gone: make(map[manifest.RootID]struct{})}
		v.work = sync.NewCond(&v.mu)
		for _, p := range paths {
			v.enqueue(viewJob{kind: viewLatest, root: 1, path: p})
		}
		for range jobs {
			j, ok := v.take()
			if !ok {
				b.Fatal("a free job was not handed out")
			}
			v.running = v.running[:0]
			delete(v.state, j)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*jobs), "ns/job")
}

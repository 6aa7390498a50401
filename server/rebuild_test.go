package server

import (
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
)

// viewFile is what a tree comparison looks at.
type viewFile struct {
	hash  cas.ID
	perm  fs.FileMode
	mtime time.Time
}

// snapshotTree returns every regular file under dir by relative path.
func snapshotTree(t testing.TB, dir string) map[string]viewFile {
	t.Helper()
	out := make(map[string]viewFile)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return nil
		}
		if !d.Type().IsRegular() {
			t.Errorf("%s is not a regular file", p)
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[filepath.ToSlash(rel)] = viewFile{hash: cas.Sum(readFile(t, p)), perm: fi.Mode().Perm(), mtime: fi.ModTime()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffTrees(t testing.TB, got, want map[string]viewFile) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("missing %s", k)
		case g.hash != want[k].hash || g.perm != want[k].perm || !g.mtime.Equal(want[k].mtime):
			t.Errorf("%s is %+v, want %+v", k, g, want[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected %s", k)
		}
	}
}

// populate fills two roots with files of several modes and mtimes, a
// deleted file, a file replaced by a directory, and a three-sided
// conflict with a deletion and an awkward client name.
func populate(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	a, b, c := e.client(t, "a"), e.client(t, "Jane's Mac"), e.client(t, "c")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	e.join(t, c, "docs")
	e.root(t, a, "pics")
	for i, p := range []string{"a.txt", "bin/run", "deep/x/y/z.md", "pics-like.jpeg"} {
		f := newFile(t, randomData(uint64(20+i), (i+1)*20<<10))
		e.upload(t, a, "docs", f)
		req := request("docs", p, nil, f)
		req.Mode = []uint32{0o644, 0o755, 0o600, 0o444}[i]
		req.Mtime = time.Date(2021+i, 3, 4, 5, 6, 7, 123456789, time.UTC).UnixNano()
		if _, err := e.srv.Propose(ctx, a, req, f.refs); err != nil {
			t.Fatal(err)
		}
	}
	gone := e.mustPush(t, a, "docs", "gone.txt", nil, newFile(t, []byte("gone")))
	if _, err := e.srv.Propose(ctx, a, deleteRequest("docs", "gone.txt", gone), nil); err != nil {
		t.Fatal(err)
	}
	e.mustPush(t, a, "docs", "c", nil, newFile(t, []byte("c is a file")))
	e.mustPush(t, a, "docs", "c/d", nil, newFile(t, []byte("then a directory")))
	base := e.mustPush(t, a, "docs", "doc.txt", nil, newFile(t, []byte("base")))
	e.mustPush(t, a, "docs", "doc.txt", base, newFile(t, []byte("server side")))
	if _, err := e.push(b, "docs", "doc.txt", base, newFile(t, []byte("Jane's side"))); !errors.Is(err, syncproto.ErrConflict) {
		t.Fatal(err)
	}
	if _, err := e.srv.Propose(ctx, c, deleteRequest("docs", "doc.txt", base), nil); !errors.Is(err, syncproto.ErrConflict) {
		t.Fatal(err)
	}
	e.mustPush(t, a, "pics", "p.png", nil, newFile(t, randomData(30, 5<<10)))
}

func TestRebuildViewsReproducesTheTree(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	populate(t, e)
	e.srv.views.wait()
	syncDir := filepath.Join(e.dir, SyncDir)
	want := snapshotTree(t, syncDir)
	if _, ok := want["docs/conflict/doc.txt/Jane_s_Mac-"+cas.Sum([]byte("Jane's side")).Short()+".txt"]; !ok {
		t.Fatalf("fixture: no conflict view in %v", slices.Sorted(maps.Keys(want)))
	}

	if err := os.RemoveAll(syncDir); err != nil {
		t.Fatal(err)
	}
	rep, err := e.srv.RebuildViews(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// docs: a.txt, bin/run, deep/x/y/z.md, pics-like.jpeg, c, c/d, doc.txt;
	// pics: p.png. The conflict: server and Jane (the deletion has no file).
	if rep != (ViewsReport{Roots: 2, Latest: 8, Conflict: 2, Removed: 0}) {
		t.Errorf("report %+v", rep)
	}
	diffTrees(t, snapshotTree(t, syncDir), want)

	// Again on an intact tree: the same tree, nothing removed.
	rep, err = e.srv.RebuildViews(ctx, "docs")
	if err != nil || rep.Roots != 1 || rep.Removed != 0 {
		t.Errorf("second rebuild: %+v, %v", rep, err)
	}
	diffTrees(t, snapshotTree(t, syncDir), want)
}

func TestRebuildViewsRemovesStaleFiles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	populate(t, e)
	e.srv.views.wait()
	syncDir := filepath.Join(e.dir, SyncDir)
	exported, err := e.srv.ExportHistory(ctx, "docs", "a.txt", "")
	if err != nil {
		t.Fatal(err)
	}
	want := snapshotTree(t, syncDir)

	docs := filepath.Join(syncDir, "docs")
	stale := []string{
		"latest/stale.txt",
		"latest/old/dir/file",
		"latest/" + tempPrefix + "12345",
		"conflict/doc.txt/ghost-12345678.txt",
		"conflict/resolved.txt/server-12345678.txt",
	}
	for _, p := range stale {
		full := filepath.Join(docs, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("stale"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A symlink where a file belongs, and a tampered file.
	if err := os.Remove(filepath.Join(docs, "latest", "a.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(docs, "latest", "a.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(docs, "latest", "bin", "run"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}

	rep, err := e.srv.RebuildViews(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Removed != len(stale) || rep.Roots != 1 {
		t.Errorf("report %+v, want %d removed", rep, len(stale))
	}
	diffTrees(t, snapshotTree(t, syncDir), want)
	for _, dir := range []string{"latest/old", "conflict/resolved.txt"} {
		if _, err := os.Stat(filepath.Join(docs, filepath.FromSlash(dir))); !os.IsNotExist(err) {
			t.Errorf("empty directory %s left: %v", dir, err)
		}
	}
	for _, f := range exported {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("history export %s removed: %v", f, err)
		}
	}

	if _, err := e.srv.RebuildViews(ctx, "nope"); !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("unknown root: %v", err)
	}
}

func TestRebuildViewsWithViewsOff(t *testing.T) {
	on := newEnv(t)
	populate(t, on)
	on.srv.views.wait()
	want := snapshotTree(t, filepath.Join(on.dir, SyncDir))

	opts := testOptions(filepath.Join(t.TempDir(), "data"))
	opts.Views = false
	off := newEnvWith(t, opts)
	populate(t, off)
	syncDir := filepath.Join(off.dir, SyncDir)
	if _, err := os.Stat(syncDir); !os.IsNotExist(err) {
		t.Fatalf("views off wrote views: %v", err)
	}
	rep, err := off.srv.RebuildViews(context.Background(), "")
	if err != nil || rep.Roots != 2 || rep.Latest != 8 {
		t.Fatalf("rebuild with views off: %+v, %v", rep, err)
	}
	// Same commits, same clock: the same tree as the background views.
	diffTrees(t, snapshotTree(t, syncDir), want)
}

func TestRebuildViewsSkipsRemovedRoots(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	populate(t, e)
	e.srv.views.wait()
	r, err := e.srv.db.RootByName(ctx, "pics")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.RemoveRoot(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	rep, err := e.srv.RebuildViews(ctx, "")
	if err != nil || rep.Roots != 1 {
		t.Errorf("rebuild after a removal: %+v, %v", rep, err)
	}
	if _, err := os.Stat(filepath.Join(e.dir, SyncDir, "pics")); !os.IsNotExist(err) {
		t.Errorf("removed root's views came back: %v", err)
	}
}

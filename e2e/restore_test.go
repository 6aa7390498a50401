package e2e

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quic-s/quics/admin"
	"github.com/quic-s/quics/cas"
)

// viewEntry is a file of a view with its modification time.
type viewEntry struct {
	Hash  string
	Mode  fs.FileMode
	MTime time.Time
}

func viewTree(t *testing.T, dir string) map[string]viewEntry {
	t.Helper()
	out := map[string]viewEntry{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = viewEntry{Hash: cas.Sum(data).String(), Mode: fi.Mode().Perm(), MTime: fi.ModTime()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond for up to 10 s: views are written in the background.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestBinariesAdminRestoreConflictViewsRetention(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	addr, _, proc := startQuicsIn(t, dataDir)
	a, b := newQicHome(t, "a"), newQicHome(t, "b")
	a.must("register", "--server", addr, "--password", serverPassword, "--name", "alice")
	b.must("register", "--server", addr, "--password", serverPassword, "--name", "bob")
	a.must("root", "add", a.dir, "--root-password", rootPassword, "--name", "docs")
	b.must("root", "join", "docs", b.dir, "--root-password", rootPassword)

	v := [][]byte{[]byte("version one\n"), []byte("version two, a little longer\n"), []byte("version three\n")}
	for _, content := range v {
		a.write("f.txt", content, 0o640)
		a.sync()
	}
	b.sync()
	hist := showJSON[[]admin.VersionInfo](t, dataDir, "history", "docs", "f.txt")
	if len(hist) != 3 {
		t.Fatalf("history: %+v", hist)
	}
	for i, h := range hist {
		if h.Hash != cas.Sum(v[i]).String() || h.Size != uint64(len(v[i])) || h.ClientName != "alice" {
			t.Errorf("version %d: %+v", i, h)
		}
	}

	t.Run("restore", func(t *testing.T) {
		out := mustQuics(t, "", "restore", "docs", "f.txt", hist[0].Hash[:8], "--data", dataDir)
		if !strings.Contains(out, "restored f.txt") {
			t.Errorf("restore printed %q", out)
		}
		b.sync()
		a.sync()
		for _, h := range []*qicHome{a, b} {
			if got := readFile(t, filepath.Join(h.dir, "f.txt")); !bytes.Equal(got, v[0]) {
				t.Errorf("%s has %q after the restore", h.dir, got)
			}
		}
		// By full hash, then the same again: nothing to do.
		mustQuics(t, "", "restore", "docs", "f.txt", hist[1].Hash, "--data", dataDir)
		if out := mustQuics(t, "", "restore", "docs", "f.txt", hist[1].Hash, "--data", dataDir); !strings.Contains(out, "nothing to do") {
			t.Errorf("restoring the head's content printed %q", out)
		}
		after := showJSON[[]admin.VersionInfo](t, dataDir, "history", "docs", "f.txt")
		if len(after) != 5 || after[3].Hash != hist[0].Hash || after[4].Hash != hist[1].Hash {
			t.Errorf("history after two restores: %+v", after)
		}
		for args, want := range map[string]string{
			"00000000": "not found",
			"abc":      "8",
			"zzzzzzzz": "hex",
		} {
			if _, errOut, code := quicsCLI(t, "", "restore", "docs", "f.txt", args, "--data", dataDir); code != 1 || !strings.Contains(errOut, want) {
				t.Errorf("restore %s: exit %d, %s (want %q)", args, code, errOut, want)
			}
		}
		// --output changes nothing.
		out = filepath.Join(t.TempDir(), "old.txt")
		mustQuics(t, "", "restore", "docs", "f.txt", hist[2].Hash[:10], "--output", out, "--data", dataDir)
		if got := readFile(t, out); !bytes.Equal(got, v[2]) {
			t.Errorf("--output wrote %q", got)
		}
		if again := showJSON[[]admin.VersionInfo](t, dataDir, "history", "docs", "f.txt"); len(again) != len(after) {
			t.Errorf("--output added versions: %d, was %d", len(again), len(after))
		}
		// A deleted file comes back.
		a.sync()
		b.sync()
		if err := os.Remove(filepath.Join(a.dir, "f.txt")); err != nil {
			t.Fatal(err)
		}
		a.sync()
		b.sync()
		mustQuics(t, "", "restore", "docs", "f.txt", hist[2].Hash[:8], "--data", dataDir)
		a.sync()
		b.sync()
		for _, h := range []*qicHome{a, b} {
			if got := readFile(t, filepath.Join(h.dir, "f.txt")); !bytes.Equal(got, v[2]) {
				t.Errorf("%s has %q after restoring the deleted file", h.dir, got)
			}
		}
	})

	t.Run("conflict resolve", func(t *testing.T) {
		a.write("g.txt", []byte("base\n"), 0o644)
		a.sync()
		b.sync()
		a.write("g.txt", []byte("alice's edit\n"), 0o644)
		b.write("g.txt", []byte("bob's edit, longer\n"), 0o644)
		a.sync()
		if _, _, code := b.run("sync", "--json"); code != 3 {
			t.Fatalf("b's sync of a conflicting edit: exit %d, want 3", code)
		}
		conflicts := showJSON[[]admin.ConflictInfo](t, dataDir, "conflicts", "docs")
		if len(conflicts) != 1 || conflicts[0].Path != "g.txt" || len(conflicts[0].Candidates) != 2 {
			t.Fatalf("conflicts: %+v", conflicts)
		}
		view := filepath.Join(dataDir, "sync", "docs", "conflict", "g.txt")
		for _, c := range conflicts[0].Candidates {
			waitFor(t, "conflict view "+c.Name, func() bool {
				got, err := os.ReadFile(filepath.Join(view, c.Name))
				return err == nil && cas.Sum(got).String() == c.Hash
			})
		}
		if _, errOut, code := quicsCLI(t, "", "conflict", "resolve", "docs", "g.txt", "--keep", "nobody", "--data", dataDir); code != 1 || !strings.Contains(errOut, "not found") {
			t.Errorf("--keep nobody: exit %d, %s", code, errOut)
		}
		mustQuics(t, "", "conflict", "resolve", "docs", "g.txt", "--keep", "bob", "--data", dataDir)
		a.sync()
		b.sync()
		for _, h := range []*qicHome{a, b} {
			if got := readFile(t, filepath.Join(h.dir, "g.txt")); string(got) != "bob's edit, longer\n" {
				t.Errorf("%s has %q after keeping bob's side", h.dir, got)
			}
		}
		if c := showJSON[[]admin.ConflictInfo](t, dataDir, "conflicts"); len(c) != 0 {
			t.Errorf("conflicts after resolving: %+v", c)
		}
		waitFor(t, "the conflict view to go", func() bool { _, err := os.Stat(view); return os.IsNotExist(err) })
		var hashes []string
		for _, h := range showJSON[[]admin.VersionInfo](t, dataDir, "history", "docs", "g.txt") {
			hashes = append(hashes, h.Hash)
		}
		if !strings.Contains(strings.Join(hashes, " "), cas.Sum([]byte("alice's edit\n")).String()) {
			t.Errorf("the losing side is not in history: %v", hashes)
		}
	})

	t.Run("views rebuild", func(t *testing.T) {
		syncDir := filepath.Join(dataDir, "sync")
		latest := filepath.Join(syncDir, "docs", "latest")
		waitFor(t, "the latest view of g.txt", func() bool {
			got, err := os.ReadFile(filepath.Join(latest, "g.txt"))
			return err == nil && string(got) == "bob's edit, longer\n"
		})
		before := viewTree(t, syncDir)
		if len(before) < 2 {
			t.Fatalf("views before the rebuild: %v", before)
		}
		if err := os.RemoveAll(syncDir); err != nil {
			t.Fatal(err)
		}
		mustQuics(t, "", "views", "rebuild", "--data", dataDir)
		if diff := cmp.Diff(before, viewTree(t, syncDir)); diff != "" {
			t.Errorf("rebuilt views differ (-before +after):\n%s", diff)
		}
	})

	t.Run("history export", func(t *testing.T) {
		out := mustQuics(t, "", "history", "export", "docs", "f.txt", "--data", dataDir)
		files := strings.Fields(out)
		hist := showJSON[[]admin.VersionInfo](t, dataDir, "history", "docs", "f.txt")
		content := 0
		for _, h := range hist {
			if !h.Deleted {
				content++
			}
		}
		if len(files) != content {
			t.Fatalf("export wrote %v for %d content versions", files, content)
		}
		dir := filepath.Join(dataDir, "sync", "docs", "history", "f.txt")
		for _, f := range files {
			if filepath.Dir(f) != dir || !strings.HasPrefix(filepath.Base(f), "v") || filepath.Ext(f) != ".txt" {
				t.Errorf("export file %s", f)
			}
		}
	})

	t.Run("retention", func(t *testing.T) {
		root := showJSON[[]admin.RootInfo](t, dataDir, "roots")[0]
		if root.Retention != "keep-all" {
			t.Errorf("default retention %q", root.Retention)
		}
		mustQuics(t, "", "root", "set-retention", "docs", "--keep-last", "2", "--data", dataDir)
		if hist := showJSON[[]admin.VersionInfo](t, dataDir, "history", "docs", "f.txt"); len(hist) != 2 {
			t.Errorf("keep-last 2 left %d versions of f.txt", len(hist))
		}
		if root := showJSON[[]admin.RootInfo](t, dataDir, "roots")[0]; root.Retention != "keep-last 2" {
			t.Errorf("retention shown as %q", root.Retention)
		}
		if _, _, code := quicsCLI(t, "", "root", "set-retention", "docs", "--keep-last", "2", "--staggered", "--data", dataDir); code != 2 {
			t.Errorf("two policies: exit %d, want 2", code)
		}
	})

	t.Run("offline output", func(t *testing.T) {
		mustQuics(t, "", "stop", "--data", dataDir)
		<-proc.exited
		head := showJSON[[]admin.FileInfo](t, dataDir, "files", "docs")[0]
		out := filepath.Join(t.TempDir(), "offline.txt")
		mustQuics(t, "", "restore", "docs", head.Path, head.Hash[:12], "-o", out, "--data", dataDir)
		if got := readFile(t, out); cas.Sum(got).String() != head.Hash {
			t.Errorf("offline --output wrote %q", got)
		}
	})
}

package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestQicHistoryListDownloadRollback(t *testing.T) {
	a, b := pair(t)
	v := [][]byte{[]byte("version one\n"), randomBytes(21, 70000), []byte("version three\n")}
	for _, content := range v {
		a.write("f.txt", content, 0o640)
		a.sync()
	}
	b.sync()

	h := b.history("f.txt")
	if len(h) != 3 {
		t.Fatalf("history: %+v", h)
	}
	for i, e := range h {
		if e.Hash != hashOf(v[i]) || e.Size != int64(len(v[i])) || e.ClientName != "a" || e.Client == "" ||
			e.Time.IsZero() || e.Deleted || e.Mode != 0o640 || (i > 0 && e.Seq <= h[i-1].Seq) {
			t.Errorf("version %d: %+v", i, e)
		}
	}
	if last := b.history("f.txt", "-n", "2"); len(last) != 2 || last[0].Hash != h[1].Hash || last[1].Hash != h[2].Hash {
		t.Errorf("-n 2: %+v", last)
	}
	t.Run("relative path", func(t *testing.T) {
		// Relative to the working directory, inside the root.
		t.Chdir(b.dir)
		human := b.in(t).must("history", "list", "f.txt")
		if !strings.Contains(human, h[0].Hash[:16]) || !strings.Contains(human, "head") || !strings.Contains(human, "local copy") {
			t.Errorf("qic history list from inside the root:\n%s", human)
		}
	})

	t.Run("download", func(t *testing.T) {
		b := b.in(t)
		out := filepath.Join(t.TempDir(), "old.bin")
		b.must("history", "download", b.path("f.txt"), h[1].Hash[:8], "-o", out)
		if got, _ := os.ReadFile(out); !bytes.Equal(got, v[1]) {
			t.Fatalf("downloaded %d bytes, want version two", len(got))
		}
		if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o640 {
			t.Errorf("downloaded file: %v, %v", fi, err)
		}
		if _, errOut, code := b.run("history", "download", b.path("f.txt"), h[0].Hash, "-o", out); code != 1 || !strings.Contains(errOut, "--force") {
			t.Errorf("over an existing file: exit %d, %s", code, errOut)
		}
		b.must("history", "download", b.path("f.txt"), h[0].Hash, "-o", out, "--force")
		if got, _ := os.ReadFile(out); !bytes.Equal(got, v[0]) {
			t.Errorf("--force wrote %q", got)
		}
		dir := t.TempDir()
		b.must("history", "download", b.path("f.txt"), strings.ToUpper(h[2].Hash[:12]), "-o", dir)
		if got, _ := os.ReadFile(filepath.Join(dir, "f.txt")); !bytes.Equal(got, v[2]) {
			t.Errorf("into a directory: %q", got)
		}
		for args, want := range map[string]string{
			"00000000": "no version",
			"abc":      "at least 8",
		} {
			if _, errOut, code := b.run("history", "download", b.path("f.txt"), args, "-o", filepath.Join(dir, "x")); code != 1 || !strings.Contains(errOut, want) {
				t.Errorf("download %s: exit %d, %s (want %q)", args, code, errOut, want)
			}
		}
		if _, errOut, code := b.run("history", "list", filepath.Join(t.TempDir(), "elsewhere.txt")); code != 1 || !strings.Contains(errOut, "not in a synced root") {
			t.Errorf("a path outside the roots: exit %d, %s", code, errOut)
		}
	})

	t.Run("rollback", func(t *testing.T) {
		a, b := a.in(t), b.in(t)
		// By full hash from b: b's copy changes at once, a's at its sync.
		b.must("history", "rollback", b.path("f.txt"), h[0].Hash)
		if got, _ := b.content("f.txt"); !bytes.Equal(got, v[0]) {
			t.Fatalf("b after the rollback: %q", got)
		}
		if s := a.sync(); s.FilesDownloaded != 1 {
			t.Errorf("a's sync after the rollback: %+v", s)
		}
		if got, _ := a.content("f.txt"); !bytes.Equal(got, v[0]) {
			t.Fatalf("a after the rollback: %q", got)
		}
		// By prefix from a.
		a.must("history", "rollback", a.path("f.txt"), h[1].Hash[:8])
		if got, _ := a.content("f.txt"); !bytes.Equal(got, v[1]) {
			t.Fatal("a after the second rollback")
		}
		b.sync()
		if got, _ := b.content("f.txt"); !bytes.Equal(got, v[1]) {
			t.Fatal("b after the second rollback")
		}
		if out := a.must("history", "rollback", a.path("f.txt"), h[1].Hash[:8]); !strings.Contains(out, "nothing to roll back") {
			t.Errorf("rolling back to the head: %s", out)
		}
		if _, errOut, code := a.run("history", "rollback", a.path("f.txt"), "00000000"); code != 1 || !strings.Contains(errOut, "00000000") {
			t.Errorf("unknown hash: exit %d, %s", code, errOut)
		}
		after := a.history("f.txt")
		if len(after) != 5 || after[3].Hash != h[0].Hash || after[4].Hash != h[1].Hash {
			t.Errorf("history after two rollbacks: %+v", after)
		}

		// A deleted file comes back on both.
		if err := os.Remove(a.path("f.txt")); err != nil {
			t.Fatal(err)
		}
		a.sync()
		b.sync()
		if _, ok := b.content("f.txt"); ok {
			t.Fatal("the deletion did not reach b")
		}
		b.must("history", "rollback", b.path("f.txt"), h[2].Hash[:8])
		a.sync()
		for _, q := range []*qicHome{a, b} {
			if got, _ := q.content("f.txt"); !bytes.Equal(got, v[2]) {
				t.Errorf("%s after rolling back the deletion: %q", q.home, got)
			}
		}
	})

	t.Run("retention", func(t *testing.T) {
		a, b := a.in(t), b.in(t)
		b.must("root", "set-retention", "shared", "--keep-last", "2")
		if h := a.history("f.txt"); len(h) != 2 {
			t.Errorf("keep-last 2 left %d versions", len(h))
		}
		b.must("root", "set-retention", "shared", "--keep-within", "30d")
		if _, errOut, code := b.run("root", "set-retention", "shared", "--keep-all", "--staggered"); code != 1 || !strings.Contains(errOut, "exactly one") {
			t.Errorf("two policies: exit %d, %s", code, errOut)
		}
	})
}

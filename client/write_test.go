package client

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
)

func fillWith(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}

// tempsIn lists the temporary files under dir.
func tempsIn(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if IsTempName(d.Name()) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func TestWriteFileAtomic(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	mtime := time.Date(2021, 3, 4, 5, 6, 7, 890, time.UTC)
	data := randomBytes(3, 100_000)
	st, err := WriteFileAtomic(ctx, root, "new dir/sub/ü.bin", 0o640, mtime, fillWith(data))
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Join(root, "new dir", "sub", "ü.bin")
	got, err := os.ReadFile(name)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content after write: %d bytes, %v", len(got), err)
	}
	now, err := Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if now != st {
		t.Errorf("returned stat %+v, file's %+v", st, now)
	}
	if st.Mode != 0o640 || st.MTime != mtime.UnixNano() || st.Size != int64(len(data)) {
		t.Errorf("stat %+v, want mode 0640, mtime %d, size %d", st, mtime.UnixNano(), len(data))
	}
	// Replace it.
	if _, err := WriteFileAtomic(ctx, root, "new dir/sub/ü.bin", 0o600, mtime, fillWith([]byte("short"))); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(name); string(got) != "short" {
		t.Errorf("content after replace: %q", got)
	}
	if temps := tempsIn(t, root); len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
}

func TestWriteFileAtomicFailureLeavesNoPartialFile(t *testing.T) {
	boom := errors.New("disk on fire")
	for _, existing := range []bool{false, true} {
		name := "no target"
		if existing {
			name = "existing target"
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			root := t.TempDir()
			if existing {
				writeFile(t, root, "d/f", []byte("the old content"))
			}
			fills := map[string]func(io.Writer) error{
				"fill fails midway": func(w io.Writer) error {
					if _, err := w.Write(randomBytes(4, 50_000)); err != nil {
						return err
					}
					return boom
				},
				"context canceled midway": func(w io.Writer) error {
					if _, err := w.Write([]byte("first half")); err != nil {
						return err
					}
					cancel()
					_, err := w.Write([]byte("second half"))
					return err
				},
			}
			for what, fill := range fills {
				_, err := WriteFileAtomic(ctx, root, "d/f", 0o644, time.Now(), fill)
				if err == nil {
					t.Fatalf("%s: no error", what)
				}
				got, rerr := os.ReadFile(filepath.Join(root, "d", "f"))
				switch {
				case existing && string(got) != "the old content":
					t.Errorf("%s: target holds %q, want the old content", what, got)
				case !existing && !errors.Is(rerr, fs.ErrNotExist):
					t.Errorf("%s: target exists (%d bytes), want none", what, len(got))
				}
				if temps := tempsIn(t, root); len(temps) != 0 {
					t.Errorf("%s: temporary files left: %v", what, temps)
				}
			}
			if _, err := WriteFileAtomic(ctx, root, "d/f", 0o644, time.Now(), fills["fill fails midway"]); !errors.Is(err, context.Canceled) && !errors.Is(err, boom) {
				t.Errorf("error %v does not wrap the cause", err)
			}
		})
	}
}

func TestWriteFileAtomicRefuses(t *testing.T) {
	ctx := context.Background()
	outside := t.TempDir()
	tests := []struct {
		name  string
		setup func(t *testing.T, root string)
		path  string
		want  error
	}{
		{"target is a directory", func(t *testing.T, root string) { writeFile(t, root, "d/x", nil) }, "d", ErrTargetIsDir},
		{"parent is a file", func(t *testing.T, root string) { writeFile(t, root, "f", nil) }, "f/x", ErrParentNotDir},
		{"parent is a symlink out of the root", func(t *testing.T, root string) {
			if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
				t.Fatal(err)
			}
		}, "link/x", ErrSymlink},
		{"target is a symlink", func(t *testing.T, root string) {
			if err := os.Symlink(filepath.Join(outside, "y"), filepath.Join(root, "y")); err != nil {
				t.Fatal(err)
			}
		}, "y", ErrSymlink},
		{"escaping path", func(*testing.T, string) {}, "../x", relpath.ErrInvalidPath},
		{"absolute path", func(*testing.T, string) {}, "/etc/x", relpath.ErrInvalidPath},
		{"backslash", func(*testing.T, string) {}, `a\..\..\x`, relpath.ErrInvalidPath},
		{"reserved temporary name", func(*testing.T, string) {}, "a/.qic-tmp-1", ErrInvalidName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			tc.setup(t, root)
			_, err := WriteFileAtomic(ctx, root, tc.path, 0o644, time.Now(), fillWith([]byte("x")))
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			_, err = StageFile(ctx, root, tc.path, 0o644, time.Now(), false, [][]byte{[]byte("x")}, map[string]bool{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("StageFile: error %v, want %v", err, tc.want)
			}
			entries, _ := os.ReadDir(outside)
			if len(entries) != 0 {
				t.Errorf("something was written outside the root: %v", entries)
			}
			if temps := tempsIn(t, root); len(temps) != 0 {
				t.Errorf("temporary files left: %v", temps)
			}
		})
	}
	if _, err := WriteFileAtomic(ctx, filepath.Join(t.TempDir(), "gone"), "x", 0o644, time.Now(), fillWith(nil)); !errors.Is(err, ErrRootMissing) {
		t.Errorf("write into a missing root: %v, want ErrRootMissing", err)
	}
}

func TestCleanTemps(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, ".qic-tmp-1", []byte("x"))
	writeFile(t, root, "a/b/.qic-tmp-2", []byte("y"))
	writeFile(t, root, "a/b/keep", []byte("z"))
	writeFile(t, root, "a/qic-tmp-not-ours", []byte("z"))
	n, err := CleanTemps(context.Background(), root)
	if err != nil || n != 2 {
		t.Fatalf("CleanTemps = %d, %v; want 2", n, err)
	}
	if temps := tempsIn(t, root); len(temps) != 0 {
		t.Errorf("left: %v", temps)
	}
	for _, keep := range []string{"a/b/keep", "a/qic-tmp-not-ours"} {
		if _, err := os.Stat(filepath.Join(root, keep)); err != nil {
			t.Errorf("%s: %v", keep, err)
		}
	}
	if _, err := CleanTemps(context.Background(), filepath.Join(root, "missing")); !errors.Is(err, ErrRootMissing) {
		t.Errorf("CleanTemps of a missing root: %v", err)
	}
}

func TestRemoveFile(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	writeFile(t, root, "a/b/c/f", []byte("x"))
	writeFile(t, root, "a/sibling", []byte("y"))
	if err := RemoveFile(ctx, root, "a/b/c/f"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "b")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("empty parents a/b/c and a/b should be gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "sibling")); err != nil {
		t.Errorf("non-empty parent a was touched: %v", err)
	}
	if err := RemoveFile(ctx, root, "a/b/c/f"); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}
	if err := RemoveFile(ctx, root, "a"); !errors.Is(err, ErrTargetIsDir) {
		t.Errorf("removing a directory: %v, want ErrTargetIsDir", err)
	}
	outside := t.TempDir()
	writeFile(t, outside, "victim", []byte("v"))
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := RemoveFile(ctx, root, "link/victim"); !errors.Is(err, ErrSymlink) {
		t.Errorf("removing through a symlink: %v, want ErrSymlink", err)
	}
	if _, err := os.Stat(filepath.Join(outside, "victim")); err != nil {
		t.Errorf("file outside the root was removed: %v", err)
	}
	// Removing the only file of the root keeps the root.
	writeFile(t, root, "only/f", nil)
	if err := RemoveFile(ctx, root, "only/f"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("root removed: %v", err)
	}
}

func TestSafeToReplace(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		// prepare writes "f" (or not) and returns the record to pass.
		prepare func(t *testing.T, root string) *FileRecord
		want    bool
	}{
		{"no record, no file", func(*testing.T, string) *FileRecord { return nil }, true},
		{"no record, a local file appeared", func(t *testing.T, root string) *FileRecord {
			writeFile(t, root, "f", []byte("mine"))
			return nil
		}, false},
		{"unchanged, not racy", func(t *testing.T, root string) *FileRecord {
			return recordOf(t, root, "f", []byte("same"), time.Hour)
		}, true},
		{"unchanged, racy: re-hashed and equal", func(t *testing.T, root string) *FileRecord {
			return recordOf(t, root, "f", []byte("same"), 0)
		}, true},
		{"edited with the same size, stat forged equal, racy", func(t *testing.T, root string) *FileRecord {
			rec := recordOf(t, root, "f", []byte("old!"), 0)
			writeFile(t, root, "f", []byte("new!"))
			st, _ := Stat(filepath.Join(root, "f"))
			rec.Stat = st
			rec.ScannedAt = st.MTime
			return rec
		}, false},
		{"edited", func(t *testing.T, root string) *FileRecord {
			rec := recordOf(t, root, "f", []byte("old"), time.Hour)
			writeFile(t, root, "f", []byte("new content"))
			return rec
		}, false},
		{"touched only", func(t *testing.T, root string) *FileRecord {
			rec := recordOf(t, root, "f", []byte("same"), time.Hour)
			later := time.Now().Add(time.Minute)
			if err := os.Chtimes(filepath.Join(root, "f"), later, later); err != nil {
				t.Fatal(err)
			}
			return rec
		}, true},
		{"mode changed", func(t *testing.T, root string) *FileRecord {
			rec := recordOf(t, root, "f", []byte("same"), time.Hour)
			if err := os.Chmod(filepath.Join(root, "f"), 0o600); err != nil {
				t.Fatal(err)
			}
			return rec
		}, false},
		{"record has a pending change", func(t *testing.T, root string) *FileRecord {
			rec := recordOf(t, root, "f", []byte("same"), time.Hour)
			rec.Pending = true
			return rec
		}, false},
		{"file deleted locally, not yet pushed", func(t *testing.T, root string) *FileRecord {
			rec := recordOf(t, root, "f", []byte("same"), time.Hour)
			os.Remove(filepath.Join(root, "f"))
			return rec
		}, false},
		{"a directory is there now", func(t *testing.T, root string) *FileRecord {
			rec := recordOf(t, root, "f", []byte("same"), time.Hour)
			os.Remove(filepath.Join(root, "f"))
			writeFile(t, root, "f/inner", nil)
			return rec
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			rec := tc.prepare(t, root)
			got, err := SafeToReplace(ctx, root, "f", rec)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("SafeToReplace = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := SafeToReplace(ctx, t.TempDir(), "../f", nil); !errors.Is(err, relpath.ErrInvalidPath) {
		t.Errorf("escaping path: %v", err)
	}
}

// recordOf writes name and returns the record a scan made after
// scannedAfter would hold for it.
func recordOf(t *testing.T, root, name string, data []byte, scannedAfter time.Duration) *FileRecord {
	t.Helper()
	writeFile(t, root, name, data)
	st, err := Stat(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return &FileRecord{Path: name, Hash: cas.Sum(data), Stat: st, ScannedAt: st.MTime + scannedAfter.Nanoseconds()}
}

func TestWriteThenScanIsUnchanged(t *testing.T) {
	// A pulled file recorded with the stat WriteFileAtomic returns is not
	// taken for a local edit by the next scan.
	ctx := context.Background()
	h, dir := testRoot(t, testParams)
	data := randomBytes(5, 9000)
	before := time.Now()
	st, err := WriteFileAtomic(ctx, dir, "pulled/f", 0o644, time.Now().Add(-time.Hour), fillWith(data))
	if err != nil {
		t.Fatal(err)
	}
	rec := FileRecord{Path: "pulled/f", BaseSeq: 3, BaseHash: cas.Sum(data), Hash: cas.Sum(data), Stat: st, ScannedAt: before.UnixNano()}
	if err := h.State().PutFile(ctx, "docs", rec); err != nil {
		t.Fatal(err)
	}
	res := mustScan(t, scanner(h, nil, time.Now))
	if len(res.Changes) != 0 || res.Hashed != 0 {
		t.Errorf("scan after a pull: changes %v, %d hashed; want none", changesOf(res), res.Hashed)
	}
}

// A staged file is invisible until Publish, which returns the stat a scan
// sees; Abort leaves the target as it was; files of a directory the batch
// has checked are staged without checking it again.
func TestStageFilePublishAndAbort(t *testing.T) {
	ctx := context.Background()
	h, dir := testRoot(t, testParams)
	writeFile(t, dir, "d/kept", []byte("old"))
	mtime := time.Now().Add(-time.Hour).Truncate(time.Second)
	checked := map[string]bool{}
	before := time.Now()
	a, err := StageFile(ctx, dir, "d/a", 0o640, mtime, false, [][]byte{[]byte("al"), []byte("pha")}, checked)
	if err != nil {
		t.Fatal(err)
	}
	if !checked["d"] {
		t.Errorf("checked directories after staging d/a: %v", checked)
	}
	b, err := StageFile(ctx, dir, "d/kept", 0o644, mtime, true, [][]byte{[]byte("never published")}, checked)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "d", "a")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("staged file visible before Publish: %v", err)
	}
	if temps := tempsIn(t, dir); len(temps) != 2 {
		t.Fatalf("temporary files while staged: %v, want 2", temps)
	}
	st, err := a.Publish()
	if err != nil {
		t.Fatal(err)
	}
	b.Abort()
	if got, _ := os.ReadFile(filepath.Join(dir, "d", "a")); string(got) != "alpha" {
		t.Errorf("published content %q", got)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "d", "kept")); string(got) != "old" {
		t.Errorf("an aborted staged file changed its target: %q", got)
	}
	if temps := tempsIn(t, dir); len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
	want, err := Stat(filepath.Join(dir, "d", "a"))
	if err != nil || st != want || st.Mode != 0o640 || st.MTime != mtime.UnixNano() {
		t.Fatalf("Publish returned %+v, the file has %+v (%v); want mode 0640, mtime %v", st, want, err, mtime)
	}
	rec := FileRecord{Path: "d/a", BaseSeq: 1, BaseHash: cas.Sum([]byte("alpha")), Hash: cas.Sum([]byte("alpha")), Stat: st, ScannedAt: before.UnixNano()}
	if err := h.State().PutFile(ctx, "docs", rec); err != nil {
		t.Fatal(err)
	}
	res := mustScan(t, scanner(h, nil, time.Now))
	for _, c := range res.Changes {
		if c.Path == "d/a" {
			t.Errorf("scan after a publish takes d/a for a local edit")
		}
	}
	if res.Hashed != 1 {
		t.Errorf("scan after a publish hashed %d files, want 1 (d/kept, which has no record)", res.Hashed)
	}
}

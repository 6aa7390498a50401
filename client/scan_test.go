package client

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/chunker"
)

type change struct {
	Path string
	Kind ChangeKind
}

func changesOf(res ScanResult) []change {
	var out []change
	for _, c := range res.Changes {
		out = append(out, change{c.Path, c.Kind})
	}
	return out
}

func TestScanDetectsChanges(t *testing.T) {
	base := map[string]string{
		"a.txt":                 "hello world",
		"sp ace/ü ñ 日本.txt":     "unicode and spaces",
		"nested/b/c/d.txt":      string(randomBytes(1, 20_000)),
		"empty":                 "",
		"keep/other.txt":        "unchanged",
		"nested/b/c/second.txt": "two",
	}
	outside := t.TempDir()
	writeFile(t, outside, "secret.txt", []byte("outside the root"))

	tests := []struct {
		name     string
		mutate   func(t *testing.T, dir string)
		want     []change
		wantWarn []string
		// statOnly: with the later clock no file may be read.
		statOnly bool
		check    func(t *testing.T, h *Home, dir string, res ScanResult)
	}{
		{name: "nothing changed", mutate: func(*testing.T, string) {}, statOnly: true},
		{
			name:   "edit keeping size in the same second",
			mutate: func(t *testing.T, dir string) { writeFile(t, dir, "a.txt", []byte("HELLO WORLD")) },
			want:   []change{{"a.txt", ChangeModified}},
		},
		{
			name: "append and truncate",
			mutate: func(t *testing.T, dir string) {
				writeFile(t, dir, "a.txt", []byte("hello world, and more"))
				writeFile(t, dir, "nested/b/c/d.txt", nil)
			},
			want: []change{{"a.txt", ChangeModified}, {"nested/b/c/d.txt", ChangeModified}},
			check: func(t *testing.T, _ *Home, _ string, res ScanResult) {
				d := res.Changes[1]
				if d.Size != 0 || d.Hash != cas.Sum(nil) || len(d.Chunks) != 0 {
					t.Errorf("truncated file: size %d hash %s chunks %d, want empty", d.Size, d.Hash.Short(), len(d.Chunks))
				}
			},
		},
		{
			name: "touch only",
			mutate: func(t *testing.T, dir string) {
				later := time.Now().Add(-time.Minute).Truncate(time.Second)
				if err := os.Chtimes(filepath.Join(dir, "a.txt"), later, later); err != nil {
					t.Fatal(err)
				}
			},
			check: func(t *testing.T, h *Home, dir string, _ ScanResult) {
				rec, err := h.State().File(context.Background(), "docs", "a.txt")
				if err != nil {
					t.Fatal(err)
				}
				st, err := Stat(filepath.Join(dir, "a.txt"))
				if err != nil {
					t.Fatal(err)
				}
				if rec.Stat != st {
					t.Errorf("record stat %+v, want the touched file's %+v", rec.Stat, st)
				}
			},
		},
		{
			name: "mode change",
			mutate: func(t *testing.T, dir string) {
				if err := os.Chmod(filepath.Join(dir, "a.txt"), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: []change{{"a.txt", ChangeMode}},
			check: func(t *testing.T, _ *Home, _ string, res ScanResult) {
				if res.Changes[0].Mode != 0o600 {
					t.Errorf("mode %#o, want 0600", res.Changes[0].Mode)
				}
			},
		},
		{
			name: "delete",
			mutate: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "empty")); err != nil {
					t.Fatal(err)
				}
			},
			want: []change{{"empty", ChangeDeleted}},
			check: func(t *testing.T, h *Home, _ string, _ ScanResult) {
				rec, err := h.State().File(context.Background(), "docs", "empty")
				if err != nil {
					t.Fatal(err)
				}
				if !rec.Deleted || !rec.Pending {
					t.Errorf("deleted record: Deleted=%v Pending=%v, want both", rec.Deleted, rec.Pending)
				}
			},
		},
		{
			name: "rename is delete plus new with the same hash",
			mutate: func(t *testing.T, dir string) {
				if err := os.Rename(filepath.Join(dir, "nested/b/c/d.txt"), filepath.Join(dir, "moved.bin")); err != nil {
					t.Fatal(err)
				}
			},
			want: []change{{"moved.bin", ChangeNew}, {"nested/b/c/d.txt", ChangeDeleted}},
			check: func(t *testing.T, _ *Home, _ string, res ScanResult) {
				if got, want := res.Changes[0].Hash, cas.Sum([]byte(base["nested/b/c/d.txt"])); got != want {
					t.Errorf("renamed file hash %s, want %s", got.Short(), want.Short())
				}
			},
		},
		{
			name: "directory tree removed",
			mutate: func(t *testing.T, dir string) {
				if err := os.RemoveAll(filepath.Join(dir, "nested")); err != nil {
					t.Fatal(err)
				}
			},
			want: []change{{"nested/b/c/d.txt", ChangeDeleted}, {"nested/b/c/second.txt", ChangeDeleted}},
		},
		{
			name: "file replaced by a directory",
			mutate: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "a.txt")); err != nil {
					t.Fatal(err)
				}
				writeFile(t, dir, "a.txt/inner", []byte("x"))
			},
			want: []change{{"a.txt", ChangeDeleted}, {"a.txt/inner", ChangeNew}},
		},
		{
			name: "symlinks are skipped with a warning",
			mutate: func(t *testing.T, dir string) {
				if err := os.Symlink("a.txt", filepath.Join(dir, "link")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(outside, filepath.Join(dir, "keep/dirlink")); err != nil {
					t.Fatal(err)
				}
			},
			wantWarn: []string{"keep/dirlink", "link"},
		},
		{
			name: "a file replaced by a symlink is deleted",
			mutate: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, "a.txt")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("empty", filepath.Join(dir, "a.txt")); err != nil {
					t.Fatal(err)
				}
			},
			want:     []change{{"a.txt", ChangeDeleted}},
			wantWarn: []string{"a.txt"},
		},
		{
			name: "invalid names are skipped with a warning, the rest syncs",
			mutate: func(t *testing.T, dir string) {
				writeFile(t, dir, "back\\slash.txt", []byte("b"))
				writeFile(t, dir, "new\nline.txt", []byte("n"))
				writeFile(t, dir, "bad\\dir/inner.txt", []byte("i"))
				writeFile(t, dir, "ok.txt", []byte("ok"))
			},
			want:     []change{{"ok.txt", ChangeNew}},
			wantWarn: []string{"back\\slash.txt", "bad\\dir", "new\nline.txt"},
		},
		{
			name: "temporary files are ignored silently, .quics is user data",
			mutate: func(t *testing.T, dir string) {
				writeFile(t, dir, ".qic-tmp-12345", []byte("partial"))
				writeFile(t, dir, "keep/.qic-tmp-9", []byte("partial"))
				writeFile(t, dir, ".quics/notes", []byte("mine"))
			},
			want: []change{{".quics/notes", ChangeNew}},
		},
		{
			name: "new empty file and new nested unicode file",
			mutate: func(t *testing.T, dir string) {
				writeFile(t, dir, "x/y/z/ünï cödé.md", []byte("deep"))
				writeFile(t, dir, "zero", nil)
			},
			want: []change{{"x/y/z/ünï cödé.md", ChangeNew}, {"zero", ChangeNew}},
		},
	}
	clocks := []struct {
		name string
		now  func() time.Time
	}{
		// With the real clock every file is racy at the second scan, so
		// everything is re-read; with the later clock nothing is racy and
		// the stat alone must reveal each change.
		{"racy", time.Now},
		{"stat", laterClock},
	}
	for _, clock := range clocks {
		for _, tc := range tests {
			t.Run(clock.name+"/"+tc.name, func(t *testing.T) {
				h, dir := testRoot(t, testParams)
				for p, data := range base {
					writeFile(t, dir, p, []byte(data))
				}
				var w warnings
				s := scanner(h, &w, clock.now)
				first := mustScan(t, s)
				if len(first.Changes) != len(base) || first.Hashed != len(base) {
					t.Fatalf("first scan: %d changes, %d hashed, want %d", len(first.Changes), first.Hashed, len(base))
				}
				for _, c := range first.Changes {
					if c.Kind != ChangeNew || c.Hash != cas.Sum([]byte(base[c.Path])) {
						t.Errorf("first scan: %s %v %s, want new with the content's hash", c.Path, c.Kind, c.Hash.Short())
					}
				}
				if len(w.list) != 0 {
					t.Fatalf("first scan warned: %v", w.list)
				}

				tc.mutate(t, dir)
				res := mustScan(t, s)
				if diff := cmp.Diff(tc.want, changesOf(res)); diff != "" {
					t.Errorf("changes (-want +got):\n%s", diff)
				}
				got := w.paths()
				slices.Sort(got)
				if diff := cmp.Diff(tc.wantWarn, got); diff != "" {
					t.Errorf("warned paths (-want +got):\n%s", diff)
				}
				if clock.name == "stat" && tc.statOnly && res.Hashed != 0 {
					t.Errorf("unchanged tree: %d files hashed, want 0 (stat only)", res.Hashed)
				}
				for _, c := range res.Changes {
					if c.Kind == ChangeDeleted {
						continue
					}
					data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(c.Path)))
					if err != nil {
						t.Fatal(err)
					}
					if c.Hash != cas.Sum(data) || c.Size != int64(len(data)) {
						t.Errorf("%s: hash %s size %d, want %s %d", c.Path, c.Hash.Short(), c.Size, cas.Sum(data).Short(), len(data))
					}
				}
				if tc.check != nil && !t.Failed() {
					tc.check(t, h, dir, res)
				}
				// A third scan finds nothing new: changes are recorded.
				if again := mustScan(t, s); len(again.Changes) != 0 {
					t.Errorf("third scan found %v, want nothing", changesOf(again))
				}
			})
		}
	}
}

// TestScanRacyRule forges the situation the racy rule exists for: a file
// system whose timestamps did not move when the content changed, so the
// stat matches the record exactly.
func TestScanRacyRule(t *testing.T) {
	for _, tc := range []struct {
		name       string
		scannedAgo time.Duration // how long before the file's mtime the record says it was scanned
		wantChange bool
	}{
		{"scanned in the same tick as the write", 0, true},
		{"scanned within the margin", -DefaultRacyMargin + time.Millisecond, true},
		{"scanned long after the write", -time.Hour, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			h, dir := testRoot(t, testParams)
			writeFile(t, dir, "f", []byte("version one"))
			s := scanner(h, nil, time.Now)
			mustScan(t, s)
			writeFile(t, dir, "f", []byte("version two")) // same size

			// Make the record's stat identical to the new file's, as a
			// coarse file system would.
			rec, err := h.State().File(ctx, "docs", "f")
			if err != nil {
				t.Fatal(err)
			}
			st, err := Stat(filepath.Join(dir, "f"))
			if err != nil {
				t.Fatal(err)
			}
			rec.Stat = st
			rec.ScannedAt = st.MTime - tc.scannedAgo.Nanoseconds()
			if err := h.State().PutFile(ctx, "docs", rec); err != nil {
				t.Fatal(err)
			}

			res := mustScan(t, s)
			got := len(res.Changes) == 1 && res.Changes[0].Kind == ChangeModified
			if got != tc.wantChange {
				t.Fatalf("changes %v, want modified: %v", changesOf(res), tc.wantChange)
			}
			if !tc.wantChange && res.Hashed != 0 {
				t.Errorf("%d files hashed, want 0: a non-racy matching stat is trusted", res.Hashed)
			}
		})
	}
}

func TestScanRecordsPendingChanges(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	dir := t.TempDir()
	h := openTestHome(t, home)
	if err := h.State().PutRoot(ctx, Root{Name: "docs", Dir: dir, Chunking: testParams}); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "a", randomBytes(2, 5000))
	writeFile(t, dir, "b", []byte("b"))
	res := mustScan(t, scanner(h, nil, laterClock))
	if len(res.Changes) != 2 {
		t.Fatalf("changes %v", changesOf(res))
	}
	// Accept a: it is no longer pending; b still is.
	a := res.Changes[0]
	rec, err := h.State().File(ctx, "docs", "a")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a.Chunks, rec.Chunks); diff != "" {
		t.Errorf("recorded chunk list differs from the change's (-change +record):\n%s", diff)
	}
	if err := h.State().Accept(ctx, "docs", "a", rec.LastUpdate, 7, a.Hash); err != nil {
		t.Fatal(err)
	}
	h.Close()

	h2, err := OpenHome(ctx, home)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	var pending []string
	if err := h2.State().PendingFiles(ctx, "docs", func(r FileRecord) error {
		pending = append(pending, r.Path)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"b"}, pending); diff != "" {
		t.Errorf("pending after reopen (-want +got):\n%s", diff)
	}
	recA, err := h2.State().File(ctx, "docs", "a")
	if err != nil {
		t.Fatal(err)
	}
	if recA.BaseSeq != 7 || recA.BaseHash != a.Hash || recA.Pending {
		t.Errorf("accepted record: base %d %s pending %v", recA.BaseSeq, recA.BaseHash.Short(), recA.Pending)
	}
}

func TestScanRootMissing(t *testing.T) {
	h, dir := testRoot(t, testParams)
	writeFile(t, dir, "a", []byte("a"))
	s := scanner(h, nil, time.Now)
	mustScan(t, s)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	_, err := s.Scan(context.Background(), "docs")
	if !errors.Is(err, ErrRootMissing) {
		t.Fatalf("scan of a vanished root: %v, want ErrRootMissing", err)
	}
	rec, err := h.State().File(context.Background(), "docs", "a")
	if err != nil || rec.Deleted {
		t.Fatalf("record after failed scan: %+v, %v; want it untouched", rec, err)
	}
	if _, err := s.Scan(context.Background(), "nope"); !errors.Is(err, ErrRootNotFound) {
		t.Errorf("scan of an unknown root: %v, want ErrRootNotFound", err)
	}
}

// TestScanSkipsStaleUpdates checks that a scan does not overwrite a record
// that changed after the scan read it (a pull wrote the file meanwhile).
func TestScanSkipsStaleUpdates(t *testing.T) {
	ctx := context.Background()
	h, _ := testRoot(t, testParams)
	st := h.State()
	old := FileRecord{Path: "f", Hash: cas.Sum([]byte("old"))}
	pulled := FileRecord{Path: "f", BaseSeq: 9, Hash: cas.Sum([]byte("pulled")), BaseHash: cas.Sum([]byte("pulled"))}
	if err := st.PutFile(ctx, "docs", pulled); err != nil {
		t.Fatal(err)
	}
	s := scanner(h, nil, time.Now)
	w := &scanWalk{root: Root{Name: "docs"}, seed: maphash.MakeSeed(), keepChanges: true}
	sum := func(rec FileRecord) uint64 { return maphash.Bytes(w.seed, encodeFile(&rec)) }
	err := s.apply(ctx, w, []scanUpdate{
		{path: "f", had: true, sum: sum(old), hashed: hashed{hash: cas.Sum([]byte("scanned"))}},
		{path: "g", had: true, sum: sum(FileRecord{Path: "g"})}, // vanished meanwhile
		{path: "h"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]change{{"h", ChangeNew}}, changesOf(w.res)); diff != "" {
		t.Errorf("changes applied (-want +got):\n%s", diff)
	}
	if _, err := st.File(ctx, "docs", "g"); !errors.Is(err, ErrFileNotFound) {
		t.Errorf("g: %v, want no record", err)
	}
	got, err := st.File(ctx, "docs", "f")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(pulled, got); diff != "" {
		t.Errorf("record was overwritten (-want +got):\n%s", diff)
	}
}

// TestChunkListCoversFile is a property test: for files of many sizes, the
// recorded chunks laid end to end are the file, each chunk's ID is the hash
// of its bytes, the cuts are the chunker's, and the file hash is cas.Sum.
func TestChunkListCoversFile(t *testing.T) {
	big := 10 << 20
	if testing.Short() {
		big = 3 << 20
	}
	p := chunker.DefaultParams
	sizes := []int{0, 1, p.Min - 1, p.Min, p.Min + 1, p.Max, p.Max + 1, 3*p.Max + 17, big}
	h, dir := testRoot(t, p)
	contents := map[string][]byte{}
	for i, n := range sizes {
		data := randomBytes(uint64(100+i), n)
		name := "f" + string(rune('a'+i))
		contents[name] = data
		writeFile(t, dir, name, data)
	}
	res := mustScan(t, scanner(h, nil, time.Now))
	if len(res.Changes) != len(sizes) {
		t.Fatalf("%d changes, want %d", len(res.Changes), len(sizes))
	}
	for _, c := range res.Changes {
		data := contents[c.Path]
		if c.Hash != cas.Sum(data) || c.Size != int64(len(data)) {
			t.Errorf("%s: hash %s size %d, want %s %d", c.Path, c.Hash.Short(), c.Size, cas.Sum(data).Short(), len(data))
		}
		cuts, err := chunker.Boundaries(data, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(cuts) != len(c.Chunks) {
			t.Errorf("%s: %d chunks, the chunker cuts %d", c.Path, len(c.Chunks), len(cuts))
			continue
		}
		var joined []byte
		off := 0
		for i, ch := range c.Chunks {
			piece := data[off:cuts[i]]
			if int(ch.Size) != len(piece) || ch.ID != cas.Sum(piece) {
				t.Errorf("%s chunk %d: size %d id %s, want %d %s", c.Path, i, ch.Size, ch.ID.Short(), len(piece), cas.Sum(piece).Short())
			}
			joined = append(joined, piece...)
			off = cuts[i]
		}
		if !slices.Equal(joined, data) {
			t.Errorf("%s: chunks joined are not the file", c.Path)
		}
	}
}

func TestScanWarningsNameTheCause(t *testing.T) {
	h, dir := testRoot(t, testParams)
	writeFile(t, dir, "bad\\name", []byte("x"))
	if err := os.Symlink("/etc", filepath.Join(dir, "etc")); err != nil {
		t.Fatal(err)
	}
	var w warnings
	res := mustScan(t, scanner(h, &w, time.Now))
	if res.Skipped != 2 || len(w.list) != 2 {
		t.Fatalf("skipped %d, warnings %v; want 2", res.Skipped, w.list)
	}
	byPath := map[string]Warning{}
	for _, x := range w.list {
		byPath[x.Path] = x
	}
	if x := byPath["bad\\name"]; !errors.Is(x.Err, ErrInvalidName) {
		t.Errorf("backslash name: %v, want ErrInvalidName", x.Err)
	}
	if x := byPath["etc"]; !errors.Is(x.Err, ErrSymlink) {
		t.Errorf("symlink: %v, want ErrSymlink", x.Err)
	}
	if s := byPath["etc"].String(); s != `root "docs": skipping "etc": client: symlink: not followed` {
		t.Errorf("warning text %q", s)
	}
}

func TestFileStatModeIsPermissionBits(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	if err := os.WriteFile(name, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, 0o640|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	st, err := Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode != 0o640 {
		t.Errorf("mode %#o, want 0640", st.Mode)
	}
	if _, err := Stat(dir); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Stat(dir): %v, want ErrNotRegular", err)
	}
}

// TestSyncPassRemovesTemps: the scan of a sync pass removes the temporary
// files a crash left, at any depth, and uploads none of them; a plain Scan
// leaves them alone, since a pass may be writing them.
func TestSyncPassRemovesTemps(t *testing.T) {
	ctx := context.Background()
	eng, srv, _, dir := newBatchEngine(t)
	writeFile(t, dir, ".qic-tmp-1", []byte("partial"))
	writeFile(t, dir, "a/b/.qic-tmp-2", []byte("partial"))
	writeFile(t, dir, "a/b/keep.txt", []byte("kept"))
	writeFile(t, dir, "a/qic-tmp-not-ours", []byte("mine"))
	if _, err := eng.scanner.Scan(ctx, "docs"); err != nil {
		t.Fatal(err)
	}
	if n := len(tempsIn(t, dir)); n != 2 {
		t.Fatalf("a plain scan left %d temporary files, want both", n)
	}
	res, err := eng.SyncRoot(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if temps := tempsIn(t, dir); len(temps) != 0 {
		t.Errorf("left after the pass: %v", temps)
	}
	if res.FilesUploaded != 2 {
		t.Errorf("%d files uploaded, want keep.txt and qic-tmp-not-ours", res.FilesUploaded)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for path := range srv.heads {
		if IsTempName(path[strings.LastIndex(path, "/")+1:]) {
			t.Errorf("temporary file %s reached the server", path)
		}
	}
}

// An interrupted scan keeps the batches it recorded: a first scan of a
// large tree that is stopped after hours does not start over.
func TestInterruptedScanKeepsRecordedBatches(t *testing.T) {
	defer func(n int) { recordFiles = n }(recordFiles)
	recordFiles = 4
	h, dir := testRoot(t, testParams)
	for i := range 20 {
		writeFile(t, dir, fmt.Sprintf("f%02d", i), randomBytes(uint64(i), 100+i))
	}
	recorded := func() int {
		n := 0
		if err := h.State().Files(context.Background(), "docs", false, func(FileRecord) error { n++; return nil }); err != nil {
			t.Error(err)
		}
		return n
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	// One worker reads the files in walk order and takes the clock once
	// per file: at the tenth file, the first two batches (f00–f07) are
	// done; the clock waits for them to be recorded, then stops the scan.
	now := func() time.Time {
		if calls++; calls == 10 {
			for deadline := time.Now().Add(10 * time.Second); recorded() < 8 && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
		}
		return laterClock()
	}
	s := NewScanner(h.State(), ScanOptions{Workers: 1, Now: now})
	if _, err := s.Scan(ctx, "docs"); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted scan: %v, want context.Canceled", err)
	}
	if n := recorded(); n != 8 {
		t.Fatalf("interrupted scan recorded %d files, want the 8 of its two full batches", n)
	}
	res := mustScan(t, scanner(h, nil, laterClock))
	if res.Hashed != 12 || res.Unchanged != 8 || len(res.Changes) != 12 {
		t.Fatalf("next scan: hashed %d, unchanged %d, %d changes; want 12, 8, 12", res.Hashed, res.Unchanged, len(res.Changes))
	}
	if n := recorded(); n != 20 {
		t.Fatalf("%d files recorded, want 20", n)
	}
}

func TestScopesOf(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"a/b", "a", "c", "a", "ab", "c/d/e"}, []string{"a", "ab", "c"}},
		{[]string{"x", ""}, nil},
		{[]string{"."}, nil},
		{[]string{}, []string{}},
	}
	for _, tc := range tests {
		if got := scopesOf(tc.in); !slices.Equal(got, tc.want) || (got == nil) != (tc.want == nil) {
			t.Errorf("scopesOf(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// ScanPaths looks at the given paths and what is under them, and nothing
// else: a change elsewhere waits for a full scan.
func TestScanPaths(t *testing.T) {
	setup := func(t *testing.T) (*Home, string) {
		h, dir := testRoot(t, testParams)
		for _, p := range []string{"a/1.txt", "a/2.txt", "a/sub/3.txt", "ab.txt", "b/4.txt", "real/5.txt"} {
			writeFile(t, dir, p, []byte("first "+p))
		}
		mustScan(t, scanner(h, nil, laterClock))
		return h, dir
	}
	tests := []struct {
		name   string
		change func(t *testing.T, dir string)
		paths  []string
		want   []change
	}{
		{
			name: "a directory",
			change: func(t *testing.T, dir string) {
				writeFile(t, dir, "a/1.txt", []byte("second, longer"))
				writeFile(t, dir, "a/new.txt", []byte("new"))
				writeFile(t, dir, "b/4.txt", []byte("second, longer")) // outside: not seen
				if err := os.Remove(filepath.Join(dir, "a/2.txt")); err != nil {
					t.Fatal(err)
				}
			},
			paths: []string{"a"},
			want:  []change{{"a/1.txt", ChangeModified}, {"a/2.txt", ChangeDeleted}, {"a/new.txt", ChangeNew}},
		},
		{
			name: "a file, not its namesakes",
			change: func(t *testing.T, dir string) {
				writeFile(t, dir, "a/1.txt", []byte("second, longer"))
				writeFile(t, dir, "ab.txt", []byte("second, longer"))
			},
			paths: []string{"a/1.txt", "a/1.txt/x"},
			want:  []change{{"a/1.txt", ChangeModified}},
		},
		{
			name: "a removed directory",
			change: func(t *testing.T, dir string) {
				if err := os.RemoveAll(filepath.Join(dir, "a")); err != nil {
					t.Fatal(err)
				}
			},
			paths: []string{"a/sub"},
			want:  []change{{"a/sub/3.txt", ChangeDeleted}},
		},
		{
			name: "under a directory replaced by a symlink",
			change: func(t *testing.T, dir string) {
				if err := os.RemoveAll(filepath.Join(dir, "b")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "b")); err != nil {
					t.Fatal(err)
				}
			},
			// b/5.txt is real/5.txt through the link: not synced.
			paths: []string{"b/4.txt", "b/5.txt"},
			want:  []change{{"b/4.txt", ChangeDeleted}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, dir := setup(t)
			tc.change(t, dir)
			res, err := scanner(h, nil, laterClock).ScanPaths(context.Background(), "docs", tc.paths)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, changesOf(res)); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
		})
	}
	// What a scoped scan did not look at, the next full scan finds.
	h, dir := setup(t)
	writeFile(t, dir, "b/4.txt", []byte("second, longer"))
	if res, err := scanner(h, nil, laterClock).ScanPaths(context.Background(), "docs", []string{"a"}); err != nil || len(res.Changes) != 0 {
		t.Fatalf("scan of a: %v, %v", changesOf(res), err)
	}
	if got := changesOf(mustScan(t, scanner(h, nil, laterClock))); !slices.Equal(got, []change{{"b/4.txt", ChangeModified}}) {
		t.Errorf("full scan after: %v", got)
	}
}

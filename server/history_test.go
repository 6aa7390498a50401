package server

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// twins returns two different contents whose hashes share their first 8
// hex digits (a birthday search over 32 bits: about 10^5 hashes).
func twins(t testing.TB) ([]byte, []byte) {
	t.Helper()
	seen := make(map[uint32][]byte, 1<<18)
	for i := range 1 << 22 {
		data := fmt.Appendf(nil, "twin %d", i)
		h := cas.Sum(data)
		k := binary.BigEndian.Uint32(h[:4])
		if other, ok := seen[k]; ok {
			return other, data
		}
		seen[k] = data
	}
	t.Fatal("no 32-bit hash collision found")
	return nil, nil
}

// history pushes contents one after another on path and returns the heads.
func (e *env) history(t testing.TB, sess *syncproto.Session, root, p string, fs ...file) []*syncpb.FileHead {
	t.Helper()
	var heads []*syncpb.FileHead
	var h *syncpb.FileHead
	for _, f := range fs {
		h = e.mustPush(t, sess, root, p, h, f)
		heads = append(heads, h)
	}
	return heads
}

func TestFindVersionAndWriteContent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	t1, t2 := twins(t)
	v1, v2, empty := newFile(t, randomData(1, 300<<10)), newFile(t, []byte("second")), newFile(t, nil)
	heads := e.history(t, a, "docs", "f.bin", v1, v2, v1, newFile(t, t1), newFile(t, t2), empty)

	// The same content twice is one answer, the newest.
	v, err := e.srv.FindVersion(ctx, "docs", "f.bin", v1.hash.String()[:8])
	if err != nil || v.Seq != heads[2].GetSeq() || v.Hash != v1.hash || v.Size != uint64(len(v1.data)) {
		t.Fatalf("FindVersion = %+v, %v; want the newest of seq %d", v, err, heads[2].GetSeq())
	}
	var buf bytes.Buffer
	if err := e.srv.WriteContent(ctx, v.Hash, &buf); err != nil || !bytes.Equal(buf.Bytes(), v1.data) {
		t.Fatalf("WriteContent: %v, %d bytes", err, buf.Len())
	}
	if v, err := e.srv.FindVersion(ctx, "docs", "f.bin", strings.ToUpper(v2.hash.String())); err != nil || v.Seq != heads[1].GetSeq() {
		t.Errorf("full upper-case hash: %+v, %v", v, err)
	}
	ev, err := e.srv.FindVersion(ctx, "docs", "f.bin", empty.hash.String()[:10])
	buf.Reset()
	if err != nil || e.srv.WriteContent(ctx, ev.Hash, &buf) != nil || buf.Len() != 0 {
		t.Errorf("empty content: %+v, %v", ev, err)
	}

	twin := cas.Sum(t1).String()[:8]
	for _, tt := range []struct {
		name, root, path, prefix string
		want                     error
		text                     string
	}{
		{"ambiguous", "docs", "f.bin", twin, syncproto.ErrBadRequest, cas.Sum(t2).String()},
		{"too short", "docs", "f.bin", v2.hash.String()[:7], syncproto.ErrBadRequest, ""},
		{"not hex", "docs", "f.bin", "zzzzzzzz", syncproto.ErrBadRequest, ""},
		{"unknown", "docs", "f.bin", "00000000", syncproto.ErrNotFound, "00000000"},
		{"unknown file", "docs", "g", v1.hash.String()[:8], syncproto.ErrNotFound, ""},
		{"unknown root", "nope", "f.bin", v1.hash.String()[:8], syncproto.ErrNotFound, ""},
		{"hostile path", "docs", "a/../f.bin", v1.hash.String()[:8], syncproto.ErrInvalidPath, ""},
	} {
		if _, err := e.srv.FindVersion(ctx, tt.root, tt.path, tt.prefix); !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.text) {
			t.Errorf("%s: %v, want %v mentioning %q", tt.name, err, tt.want, tt.text)
		}
	}
	// A longer prefix settles it.
	if v, err := e.srv.FindVersion(ctx, "docs", "f.bin", cas.Sum(t2).String()[:16]); err != nil || v.Hash != cas.Sum(t2) {
		t.Errorf("longer prefix: %+v, %v", v, err)
	}

	// Content that does not hash to its name is refused at the end.
	forged := cas.Sum([]byte("forged"))
	if err := e.srv.db.PutChunkList(ctx, forged, toChunks(v2.refs)); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.WriteContent(ctx, forged, &bytes.Buffer{}); !errors.Is(err, cas.ErrCorrupt) {
		t.Errorf("forged chunk list: %v, want ErrCorrupt", err)
	}
	if err := e.srv.WriteContent(ctx, cas.Sum([]byte("unknown")), &bytes.Buffer{}); !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("unknown content: %v, want ErrNotFound", err)
	}
}

func toChunks(refs []syncproto.ChunkRef) []manifest.Chunk {
	out := make([]manifest.Chunk, len(refs))
	for i, r := range refs {
		out[i] = manifest.Chunk{ID: r.ID, Size: r.Size}
	}
	return out
}

func TestRestoreVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	v1, v2, v3 := newFile(t, randomData(1, 90<<10)), newFile(t, randomData(2, 10<<10)), newFile(t, []byte("three"))
	req := request("docs", "f.txt", nil, v1)
	req.Mode, req.Mtime = 0o600, time.Date(2020, 2, 3, 4, 5, 6, 0, time.UTC).UnixNano()
	e.upload(t, a, "docs", v1)
	first, err := e.srv.Propose(ctx, a, req, v1.refs)
	if err != nil {
		t.Fatal(err)
	}
	h2 := e.mustPush(t, a, "docs", "f.txt", first.GetHead(), v2)
	e.mustPush(t, a, "docs", "f.txt", h2, v3)
	w := e.watch(t, b, &syncpb.WatchRequest{})
	e.subscribed(t, "docs", 1)

	// By full hash: a new version with the old content, mode and mtime.
	v, committed, err := e.srv.RestoreVersion(ctx, "docs", "f.txt", v1.hash.String(), uuid.Nil)
	if err != nil || !committed {
		t.Fatalf("restore: %+v, %v, %v", v, committed, err)
	}
	if v.Hash != v1.hash || v.Mode != 0o600 || v.MTime.UnixNano() != req.Mtime || v.Client != uuid.Nil || v.Seq <= h2.GetSeq()+1 {
		t.Errorf("restored version %+v", v)
	}
	w.waitFor(t, "must-sync of the restore", func(ns []*syncpb.Notice) bool {
		for _, n := range ns {
			if n.GetKind() == syncpb.Notice_KIND_MUST_SYNC && n.GetHead().GetSeq() == v.Seq {
				return true
			}
		}
		return false
	})
	e.srv.views.wait()
	latest := filepath.Join(e.dir, SyncDir, "docs", latestDir, "f.txt")
	if got := readFile(t, latest); !bytes.Equal(got, v1.data) {
		t.Error("latest view not restored")
	}
	hashes := versionHashes(t, e, "docs", "f.txt")
	if len(hashes) != 4 || hashes[3] != v1.hash.Short() {
		t.Errorf("history %v: restoring must add a version", hashes)
	}

	// The head has it already: nothing written.
	again, committed, err := e.srv.RestoreVersion(ctx, "docs", "f.txt", v1.hash.String()[:8], uuid.Nil)
	if err != nil || committed || again != v {
		t.Errorf("restore of the head's content: %+v, %v, %v; want the head, not committed", again, committed, err)
	}

	// By prefix, by a client.
	byB := clientOf(t, b)
	v, committed, err = e.srv.RestoreVersion(ctx, "docs", "f.txt", v2.hash.String()[:9], byB)
	if err != nil || !committed || v.Hash != v2.hash || v.Client != byB {
		t.Errorf("restore by prefix: %+v, %v, %v", v, committed, err)
	}

	// A deleted file comes back.
	del, err := e.srv.Propose(ctx, a, deleteRequest("docs", "f.txt", fileHead("f.txt", v.Head())), nil)
	if err != nil {
		t.Fatal(err)
	}
	e.srv.views.wait()
	if _, err := os.Stat(latest); !os.IsNotExist(err) {
		t.Fatalf("view of the deleted file: %v", err)
	}
	v, committed, err = e.srv.RestoreVersion(ctx, "docs", "f.txt", v3.hash.String()[:8], uuid.Nil)
	if err != nil || !committed || v.Hash != v3.hash || v.Deleted || v.Seq <= del.GetHead().GetSeq() {
		t.Errorf("restore of a deleted file: %+v, %v, %v", v, committed, err)
	}
	e.srv.views.wait()
	if got := readFile(t, latest); !bytes.Equal(got, v3.data) {
		t.Error("deleted file not back in the view")
	}

	for _, tt := range []struct {
		name, prefix string
		want         error
	}{
		{"short", v1.hash.String()[:7], syncproto.ErrBadRequest},
		{"unknown", "0123456789", syncproto.ErrNotFound},
		{"not hex", "v1v1v1v1", syncproto.ErrBadRequest},
	} {
		if _, _, err := e.srv.RestoreVersion(ctx, "docs", "f.txt", tt.prefix, uuid.Nil); !errors.Is(err, tt.want) {
			t.Errorf("%s prefix: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestRestoreAmbiguousAndDuringConflict(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	t1, t2 := twins(t)
	heads := e.history(t, a, "docs", "f", newFile(t, t1), newFile(t, t2), newFile(t, []byte("head")))
	if _, _, err := e.srv.RestoreVersion(ctx, "docs", "f", cas.Sum(t1).String()[:8], uuid.Nil); !errors.Is(err, syncproto.ErrBadRequest) ||
		!strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if _, err := e.push(b, "docs", "f", heads[0], newFile(t, []byte("b's edit"))); !errors.Is(err, syncproto.ErrConflict) {
		t.Fatal(err)
	}
	_, _, err := e.srv.RestoreVersion(ctx, "docs", "f", cas.Sum(t1).String(), uuid.Nil)
	if !errors.Is(err, syncproto.ErrBadRequest) || !strings.Contains(err.Error(), "resolve the conflict") {
		t.Errorf("restore during a conflict: %v", err)
	}
	if got := versionHashes(t, e, "docs", "f"); len(got) != 3 {
		t.Errorf("versions %v after a refused restore", got)
	}
}

func TestExportHistory(t *testing.T) {
	for _, views := range []bool{true, false} {
		t.Run(fmt.Sprintf("views %v", views), func(t *testing.T) {
			opts := testOptions(filepath.Join(t.TempDir(), "data"))
			opts.Views = views
			e := newEnvWith(t, opts)
			ctx := context.Background()
			a := e.client(t, "a")
			e.root(t, a, "docs")
			v1, v2 := newFile(t, randomData(5, 70<<10)), newFile(t, []byte("v2"))
			heads := e.history(t, a, "docs", "dir/report.txt", v1, v2)
			if _, err := e.srv.Propose(ctx, a, deleteRequest("docs", "dir/report.txt", heads[1]), nil); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(e.dir, SyncDir, "docs", historyDir, "dir", "report.txt")

			// One version by prefix.
			files, err := e.srv.ExportHistory(ctx, "docs", "dir/report.txt", v2.hash.String()[:8])
			want := filepath.Join(dir, fmt.Sprintf("v%d-%s.txt", heads[1].GetSeq(), v2.hash.Short()))
			if err != nil || len(files) != 1 || files[0] != want {
				t.Fatalf("export of one version: %v, %v; want %s", files, err, want)
			}
			if !filepath.IsAbs(files[0]) {
				t.Errorf("%s is not absolute", files[0])
			}
			// Every content version: the deletion has none.
			files, err = e.srv.ExportHistory(ctx, "docs", "dir/report.txt", "")
			if err != nil || len(files) != 2 {
				t.Fatalf("export of all versions: %v, %v", files, err)
			}
			for i, f := range []file{v1, v2} {
				name := fmt.Sprintf("v%d-%s.txt", heads[i].GetSeq(), f.hash.Short())
				if filepath.Base(files[i]) != name {
					t.Errorf("file %d is %s, want %s", i, files[i], name)
				}
				if got := readFile(t, files[i]); !bytes.Equal(got, f.data) {
					t.Errorf("%s has the wrong content", files[i])
				}
				fi, err := os.Stat(files[i])
				if err != nil || fi.Mode().Perm() != 0o644 || fi.ModTime().UnixNano() != request("", "", nil, f).GetMtime() {
					t.Errorf("%s: %v, %v", files[i], fi, err)
				}
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Errorf("history dir holds %d entries, want 2 (no temporary files)", len(entries))
			}
			if _, err := os.Stat(filepath.Join(e.dir, SyncDir, "docs", latestDir)); !views && !os.IsNotExist(err) {
				t.Errorf("an export with views off wrote a latest view: %v", err)
			}

			for _, tt := range []struct {
				name, root, path, prefix string
				want                     error
			}{
				{"hostile path", "docs", "../../etc/passwd", "", syncproto.ErrInvalidPath},
				{"unknown file", "docs", "nope", "", syncproto.ErrNotFound},
				{"unknown root", "nope", "dir/report.txt", "", syncproto.ErrNotFound},
				{"unknown prefix", "docs", "dir/report.txt", "deadbeef", syncproto.ErrNotFound},
			} {
				if _, err := e.srv.ExportHistory(ctx, tt.root, tt.path, tt.prefix); !errors.Is(err, tt.want) {
					t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
				}
			}
		})
	}
}

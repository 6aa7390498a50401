package client

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/syncproto"
)

// scannedSources hashes the files at rels the way the scan does and
// returns their chunks as upload sources, with the stat they were hashed
// under.
func scannedSources(t testing.TB, dir string, rels ...string) []chunkSource {
	t.Helper()
	return scannedSourcesWith(t, testParams, dir, rels...)
}

// scannedSourcesWith is scannedSources with chunker parameters p.
func scannedSourcesWith(t testing.TB, p chunker.Params, dir string, rels ...string) []chunkSource {
	t.Helper()
	ch, err := newContentHasher(p)
	if err != nil {
		t.Fatal(err)
	}
	var srcs []chunkSource
	for _, rel := range rels {
		f, pre, err := openRegular(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		h, err := ch.hashChunks(context.Background(), f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		var off int64
		for _, c := range h.chunks {
			srcs = append(srcs, chunkSource{id: c.ID, path: rel, off: off, size: c.Size, stat: pre})
			off += int64(c.Size)
		}
	}
	return srcs
}

// readAll streams batch through br and returns copies of its chunks and
// the files it reports changed.
func readAll(t testing.TB, br batchReader, batch []chunkSource, buf *uploadBuf) ([]syncproto.Chunk, []string) {
	t.Helper()
	cs := br.stream(context.Background(), batch, buf)
	var chunks []syncproto.Chunk
	for {
		c, err := cs.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c.Data = bytes.Clone(c.Data)
		chunks = append(chunks, c)
	}
	return chunks, cs.finish()
}

func decodeAll(t *testing.T, chunks []syncproto.Chunk) map[cas.ID][]byte {
	t.Helper()
	out := make(map[cas.ID][]byte)
	for _, c := range chunks {
		data, err := cas.Stored{Codec: cas.Codec(c.Codec), Data: c.Data, RawLen: c.RawLen}.Decode(c.ID)
		if err != nil {
			t.Fatalf("chunk %s: %v", c.ID.Short(), err)
		}
		out[c.ID] = data
	}
	return out
}

// TestBatchReaderLeavesOutChangedFiles: a file written since its scan is
// reported and its chunks left out, whether or not chunks are hashed;
// the other files' chunks arrive intact, compressed ones included.
func TestBatchReaderLeavesOutChangedFiles(t *testing.T) {
	dir := t.TempDir()
	text := bytes.Repeat([]byte("the same line of text, again and again\n"), 300)
	writeFile(t, dir, "text.txt", text)
	writeFile(t, dir, "random.bin", randomBytes(1, 20000))
	writeFile(t, dir, "edited.bin", randomBytes(2, 20000))
	srcs := scannedSources(t, dir, "text.txt", "random.bin", "edited.bin")
	edited := randomBytes(3, 20000)
	name := filepath.Join(dir, "edited.bin")
	if err := os.WriteFile(name, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	// Same size, and an mtime set back to the scan's: the ctime still moved.
	mtime := time.Unix(0, srcs[len(srcs)-1].stat.MTime)
	if err := os.Chtimes(name, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	for _, verify := range []bool{false, true} {
		chunks, changed := readAll(t, batchReader{dir: dir, verify: verify}, srcs, new(uploadBuf))
		if !slices.Equal(changed, []string{"edited.bin"}) {
			t.Errorf("verify=%v: changed %v, want [edited.bin]", verify, changed)
		}
		got := decodeAll(t, chunks)
		want := 0
		for _, s := range srcs {
			if s.path != "edited.bin" {
				want++
				if got[s.id] == nil {
					t.Errorf("verify=%v: chunk of %s at %d missing", verify, s.path, s.off)
				}
			}
		}
		if len(chunks) != want {
			t.Errorf("verify=%v: %d chunks, want %d", verify, len(chunks), want)
		}
		compressed := false
		for _, c := range chunks {
			compressed = compressed || c.Codec == syncproto.ChunkZstd
		}
		if !compressed {
			t.Errorf("verify=%v: no chunk of the text file was compressed", verify)
		}
	}
}

// TestBatchReaderReusesBuffer: a stream holds one chunk at a time, in the
// same buffer from chunk to chunk and from batch to batch.
func TestBatchReaderReusesBuffer(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.bin", randomBytes(4, 30000))
	writeFile(t, dir, "b.bin", randomBytes(5, 30000))
	a, b := scannedSources(t, dir, "a.bin"), scannedSources(t, dir, "b.bin")
	buf := new(uploadBuf)
	br := batchReader{dir: dir}
	first, _ := readAll(t, br, a, buf)
	if len(decodeAll(t, first)) != len(a) {
		t.Fatalf("%d distinct chunks of a.bin, want %d", len(first), len(a))
	}
	if cap(buf.raw) > int(testParams.Max) {
		t.Errorf("a buffer of %d bytes for chunks of at most %d", cap(buf.raw), testParams.Max)
	}
	raw := &buf.raw[:1][0]
	if second, _ := readAll(t, br, b, buf); len(decodeAll(t, second)) != len(b) {
		t.Fatalf("%d distinct chunks of b.bin, want %d", len(second), len(b))
	}
	if &buf.raw[:1][0] != raw && cap(buf.raw) <= int(testParams.Max) {
		t.Error("the second batch allocated a new buffer")
	}
}

// TestSendBatchHashesAfterRefusal: chunks trusted on an unchanged stat but
// no longer matching their IDs (a write the stat did not show) are refused
// by the server; the batch is read again hashed, the file reported
// changed and the rest uploaded.
func TestSendBatchHashesAfterRefusal(t *testing.T) {
	ctx := context.Background()
	eng, srv, _, dir := newBatchEngine(t)
	writeFile(t, dir, "good.bin", randomBytes(6, 20000))
	writeFile(t, dir, "stale.bin", randomBytes(7, 20000))
	srcs := scannedSources(t, dir, "good.bin", "stale.bin")
	for i := range srcs {
		if srcs[i].path == "stale.bin" {
			srcs[i].id = cas.Sum([]byte{byte(i)}) // what the record says: not what the file holds
		}
	}
	root, err := eng.st.Root(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	sent, changed, err := eng.sendBatch(ctx, root, uploadBatch{srcs: srcs}, nil, new(uploadBuf), &pass{})
	if err != nil {
		t.Fatalf("sendBatch: %v", err)
	}
	if !slices.Equal(changed, []string{"stale.bin"}) {
		t.Errorf("changed %v, want [stale.bin]", changed)
	}
	for _, s := range srcs {
		srv.mu.Lock()
		_, stored := srv.chunks[s.id]
		srv.mu.Unlock()
		if stored != (s.path == "good.bin") {
			t.Errorf("chunk of %s at %d stored: %v", s.path, s.off, stored)
		}
	}
	if sent == 0 || sent >= len(srcs) {
		t.Errorf("%d chunks sent of %d sources", sent, len(srcs))
	}
}

// TestHashSized: reading by the stat's size gives the content hash and
// chunk list of reading to the end, for files below, at and above the
// smallest chunk (below it, the one chunk's ID is the content hash), and
// stops at the size when the file has grown since.
func TestHashSized(t *testing.T) {
	ctx := context.Background()
	ch, err := newContentHasher(testParams)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, testParams.Min - 1, testParams.Min, testParams.Min + 1, 5 * testParams.Avg} {
		data := randomBytes(uint64(n)+40, n)
		want, err := ch.hashChunks(ctx, bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		grown := append(bytes.Clone(data), "appended later"...)
		got, err := ch.hashSized(ctx, bytes.NewReader(grown), int64(n))
		if err != nil {
			t.Fatal(err)
		}
		if got.hash != cas.Sum(data) || got.n != int64(n) || !slices.Equal(got.chunks, want.chunks) {
			t.Errorf("%d bytes: hash %s n %d %d chunks; want %s, %d, %v", n, got.hash.Short(), got.n, len(got.chunks), cas.Sum(data).Short(), n, want.chunks)
		}
	}
}

package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
)

// runsServer records every upload stream with the whole runs it named.
type runsServer struct {
	*fakeServer
	uploads []runsUpload
}

type runsUpload struct {
	runs   []syncproto.WholeRun
	chunks []cas.ID
	data   map[cas.ID][]byte
}

func (s *runsServer) PutChunkStream(ctx context.Context, root string, next func() (syncproto.Chunk, error)) error {
	return s.PutChunkRuns(ctx, root, nil, next)
}

func (s *runsServer) PutChunkRuns(ctx context.Context, root string, runs []syncproto.WholeRun, next func() (syncproto.Chunk, error)) error {
	up := runsUpload{runs: runs, data: map[cas.ID][]byte{}}
	var chunks []syncproto.Chunk
	for {
		c, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		// PutChunks below refuses a chunk that does not decode to its
		// ID, as the server does, after storing those before it.
		if data, err := (cas.Stored{Codec: cas.Codec(c.Codec), Data: c.Data, RawLen: c.RawLen}).Decode(c.ID); err == nil {
			up.data[c.ID] = bytes.Clone(data) // a raw chunk aliases the sender's buffer
		}
		up.chunks = append(up.chunks, c.ID)
		c.Data = bytes.Clone(c.Data)
		chunks = append(chunks, c)
	}
	s.mu.Lock()
	s.uploads = append(s.uploads, up)
	s.mu.Unlock()
	return s.PutChunks(ctx, root, chunks)
}

// TestPushNamesWholeRuns: a file whose chunks the server lacks all goes as
// a whole run, in order, alone in its batch when larger than one; a file
// the server has some chunks of, and a one-chunk file, go as loose chunks.
func TestPushNamesWholeRuns(t *testing.T) {
	ctx := context.Background()
	h, dir := testRoot(t, testParams)
	srv := &runsServer{fakeServer: newFakeServer(t)}
	eng := NewEngine(h.State(), srv, EngineOptions{Scan: ScanOptions{Now: laterClock}, UploadBatchBytes: 16 << 10})

	seed := randomBytes(1, 12<<10)
	writeFile(t, dir, "seed.bin", seed)
	if _, err := eng.SyncRoot(ctx, "docs"); err != nil {
		t.Fatal(err)
	}
	srv.uploads = nil

	files := map[string][]byte{
		"a.bin":   randomBytes(2, 10<<10),
		"b.bin":   append(bytes.Clone(seed), randomBytes(3, 6<<10)...), // starts with chunks the server has
		"c.txt":   []byte("one chunk"),
		"big.bin": randomBytes(4, 40<<10), // over a batch
	}
	for name, data := range files {
		writeFile(t, dir, name, data)
	}
	if res, err := eng.SyncRoot(ctx, "docs"); err != nil || res.FilesUploaded != len(files) {
		t.Fatalf("sync: %+v, %v", res, err)
	}

	named := map[cas.ID]bool{}
	sent := map[cas.ID]int{}
	for _, up := range srv.uploads {
		for _, id := range up.chunks {
			sent[id]++
		}
		i := 0
		for _, r := range up.runs {
			i += int(r.Skip)
			if i+int(r.Chunks) > len(up.chunks) {
				t.Fatalf("run %+v past the %d chunks of its upload", r, len(up.chunks))
			}
			var content []byte
			for _, id := range up.chunks[i : i+int(r.Chunks)] {
				content = append(content, up.data[id]...)
			}
			if cas.Sum(content) != r.Hash {
				t.Errorf("run of %d chunks does not make its content %s", r.Chunks, r.Hash.Short())
			}
			named[r.Hash] = true
			if r.Hash == cas.Sum(files["big.bin"]) && (len(up.runs) != 1 || r.Skip != 0 || int(r.Chunks) != len(up.chunks)) {
				t.Errorf("big.bin shares its upload: %d runs, %d chunks", len(up.runs), len(up.chunks))
			}
			i += int(r.Chunks)
		}
	}
	for name, want := range map[string]bool{"a.bin": true, "big.bin": true, "b.bin": false, "c.txt": false} {
		if got := named[cas.Sum(files[name])]; got != want {
			t.Errorf("%s named as a whole run: %v, want %v", name, got, want)
		}
	}
	for id, n := range sent {
		if n != 1 {
			t.Errorf("chunk %s sent %d times", id.Short(), n)
		}
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for name, data := range files {
		list, ok := srv.lists[cas.Sum(data)]
		if !ok {
			t.Fatalf("%s not proposed", name)
		}
		for _, c := range list {
			if _, ok := srv.chunks[c.ID]; !ok {
				t.Errorf("chunk %s of %s never uploaded", c.ID.Short(), name)
			}
		}
	}
}

// TestRetryAfterRefusalSkipsStoredChunks: when the server refuses a batch
// holding a whole run (a chunk of the file no longer matches its ID), the
// batch is sent again without the chunks the server stored before the
// refusal and without runs; the changed file is reported, the rest
// uploaded.
func TestRetryAfterRefusalSkipsStoredChunks(t *testing.T) {
	ctx := context.Background()
	h, dir := testRoot(t, testParams)
	srv := &runsServer{fakeServer: newFakeServer(t)}
	eng := NewEngine(h.State(), srv, EngineOptions{Scan: ScanOptions{Now: laterClock}})
	writeFile(t, dir, "stale.bin", randomBytes(5, 20<<10))
	writeFile(t, dir, "good.bin", randomBytes(6, 8<<10))
	srcs := scannedSources(t, dir, "stale.bin", "good.bin")
	n := 0
	for _, s := range srcs {
		if s.path == "stale.bin" {
			n++
		}
	}
	const bad = 5 // stale.bin's chunk that no longer matches its record
	srcs[bad].id = cas.Sum([]byte("what the record says"))
	root, err := eng.st.Root(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	batch := uploadBatch{srcs: srcs, runs: []syncproto.WholeRun{{Hash: cas.Sum([]byte("stale.bin's content")), Chunks: uint32(n)}}}
	_, changed, err := eng.sendBatch(ctx, root, batch, nil, new(uploadBuf), &pass{})
	if err != nil {
		t.Fatalf("sendBatch: %v", err)
	}
	if len(changed) != 1 || changed[0] != "stale.bin" {
		t.Errorf("changed %v, want [stale.bin]", changed)
	}
	if len(srv.uploads) != 2 {
		t.Fatalf("%d uploads, want the refused one and its retry", len(srv.uploads))
	}
	retry := srv.uploads[1]
	if len(retry.runs) != 0 {
		t.Errorf("the retry names runs %+v", retry.runs)
	}
	var want []cas.ID
	for _, s := range srcs[n:] {
		want = append(want, s.id)
	}
	if !slices.Equal(retry.chunks, want) {
		t.Errorf("the retry sent %d chunks, want good.bin's %d (stale.bin's first %d stored, the rest left out)", len(retry.chunks), len(want), bad)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for i, s := range srcs {
		if _, ok := srv.chunks[s.id]; ok != (i < bad || i >= n) {
			t.Errorf("chunk %d of %s stored: %v", i, s.path, ok)
		}
	}
}

// TestUploadBatchRunsBounded: a batch names at most MaxWholeRuns runs; the
// files past that go in the next batch, still as runs.
func TestUploadBatchRunsBounded(t *testing.T) {
	ctx := context.Background()
	old := groupFiles
	groupFiles = 4 * syncproto.MaxWholeRuns // one group: one upload unless the bound cuts it
	t.Cleanup(func() { groupFiles = old })
	h, dir := testRoot(t, testParams)
	srv := &runsServer{fakeServer: newFakeServer(t)}
	eng := NewEngine(h.State(), srv, EngineOptions{Scan: ScanOptions{Now: laterClock}, UploadBatchBytes: 64 << 20})
	const files = syncproto.MaxWholeRuns + 40
	for i := range files {
		writeFile(t, dir, fmt.Sprintf("d%d/f%04d.bin", i%9, i), randomBytes(uint64(100+i), 3<<10))
	}
	if res, err := eng.SyncRoot(ctx, "docs"); err != nil || res.FilesUploaded != files {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	multi := 0
	srv.mu.Lock()
	for _, list := range srv.lists {
		if len(list) > 1 {
			multi++
		}
	}
	srv.mu.Unlock()
	runs := 0
	for _, up := range srv.uploads {
		if len(up.runs) > syncproto.MaxWholeRuns {
			t.Errorf("an upload names %d runs, limit %d", len(up.runs), syncproto.MaxWholeRuns)
		}
		runs += len(up.runs)
	}
	if len(srv.uploads) < 2 {
		t.Errorf("%d uploads, want the runs over the bound in a second one", len(srv.uploads))
	}
	if multi <= syncproto.MaxWholeRuns || runs != multi {
		t.Errorf("%d runs named for %d files of several chunks (want them all, over %d)", runs, multi, syncproto.MaxWholeRuns)
	}
}

// TestChunkStreamAheadSameAsInOrder: a batch encoded ahead on several
// goroutines yields the same chunks, in the same order, as one read in
// order: a file changed since its scan left out, a chunk that no longer
// matches its ID (verify) ending its file, the rest intact.
func TestChunkStreamAheadSameAsInOrder(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "text.txt", bytes.Repeat([]byte("a line of text that compresses, again\n"), 2000))
	writeFile(t, dir, "random.bin", randomBytes(1, 60000))
	writeFile(t, dir, "edited.bin", randomBytes(2, 30000))
	writeFile(t, dir, "stale.bin", randomBytes(3, 30000))
	srcs := scannedSources(t, dir, "text.txt", "random.bin", "edited.bin", "stale.bin")
	writeFile(t, dir, "edited.bin", randomBytes(4, 31000)) // its stat changes
	stale := -1
	for i, s := range srcs {
		if s.path == "stale.bin" && stale < 0 {
			stale = i + 2 // a chunk in the file's middle
		}
	}
	srcs[stale].id = cas.Sum([]byte("what the record says"))

	for _, verify := range []bool{false, true} {
		br := batchReader{dir: dir, verify: verify}
		old := encodeAheadBytes
		encodeAheadBytes = 1 << 62
		want, wantBad := readAll(t, br, srcs, new(uploadBuf))
		encodeAheadBytes = 1
		if cs := br.stream(context.Background(), srcs, new(uploadBuf)); cs.jobs == nil {
			t.Fatal("the batch is not encoded ahead (GOMAXPROCS 1?)")
		} else {
			cs.finish()
		}
		got, gotBad := readAll(t, br, srcs, new(uploadBuf))
		encodeAheadBytes = old
		if !slices.Equal(gotBad, wantBad) {
			t.Errorf("verify=%v: changed %v ahead, %v in order", verify, gotBad, wantBad)
		}
		if len(got) != len(want) {
			t.Fatalf("verify=%v: %d chunks ahead, %d in order", verify, len(got), len(want))
		}
		for i := range got {
			if got[i].ID != want[i].ID || got[i].Codec != want[i].Codec || !bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("verify=%v: chunk %d differs ahead", verify, i)
			}
		}
		if verify && !slices.Contains(gotBad, "stale.bin") {
			t.Errorf("verify: changed %v, want stale.bin among them", gotBad)
		}
	}
}

package server

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// noiseBytes is n random bytes.
func noiseBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, ^seed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
}

// noiseFile is a file of n random bytes: several chunks, none repeated.
func noiseFile(t testing.TB, seed uint64, n int) file {
	t.Helper()
	f := newFile(t, noiseBytes(seed, n))
	if len(f.refs) < 3 {
		t.Fatalf("%d bytes made %d chunks, want several", n, len(f.refs))
	}
	return f
}

// wireChunks are f's chunks in list order, compressed as a client sends
// them.
func wireChunks(t testing.TB, f file) []syncproto.Chunk {
	t.Helper()
	out := make([]syncproto.Chunk, 0, len(f.refs))
	for _, r := range f.refs {
		c, err := f.wire(r.ID)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// TestUploadRunProvesList: over QUIC, a file uploaded as a whole run
// commits without its chunks being read back; one uploaded without runs is
// read back, as before runs existed.
func TestUploadRunProvesList(t *testing.T) {
	e := newEnv(t)
	addr := e.serveQUIC(t)
	c := e.mustDial(t, addr, e.registerDevice(t, addr, "laptop"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.RegisterRoot(ctx, "docs", rootPassword("docs")); err != nil {
		t.Fatal(err)
	}
	loose := noiseFile(t, 1, 200<<10)
	whole := noiseFile(t, 2, 300<<10)
	plain := noiseFile(t, 3, 250<<10)

	// One loose chunk first, so that the run starts after a skip.
	up := append(wireChunks(t, loose)[:1], wireChunks(t, whole)...)
	runs := []syncproto.WholeRun{{Skip: 1, Hash: whole.hash, Chunks: uint32(len(whole.refs))}}
	if err := c.PutChunkRuns(ctx, "docs", runs, chunkSource(up)); err != nil {
		t.Fatalf("put chunk runs: %v", err)
	}
	if resp, err := c.Propose(ctx, request("docs", "whole.bin", nil, whole), whole.refs); err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Fatalf("propose whole.bin: %v, %v", resp.GetOutcome(), err)
	}
	if got, back := e.srv.metrics.listsProvenOnUpload.Load(), e.srv.metrics.listsReadBack.Load(); got != 1 || back != 0 {
		t.Fatalf("after the run: %d lists proven on upload, %d read back; want 1, 0", got, back)
	}

	if _, _, err := quicPush(ctx, c, "docs", "plain.bin", nil, plain); err != nil {
		t.Fatalf("push plain.bin: %v", err)
	}
	if got, back := e.srv.metrics.listsProvenOnUpload.Load(), e.srv.metrics.listsReadBack.Load(); got != 1 || back != 1 {
		t.Fatalf("after a plain upload: %d lists proven on upload, %d read back; want 1, 1", got, back)
	}
	reader := e.client(t, "reader")
	e.join(t, reader, "docs")
	for path, f := range map[string]file{"whole.bin": whole, "plain.bin": plain} {
		data, err := e.download(t, reader, "docs", path, f.hash[:])
		if err != nil || string(data) != string(f.data) {
			t.Fatalf("download %s: %d bytes, %v", path, len(data), err)
		}
	}
}

// TestUploadRunsAreOnlyHints: runs that do not add up prove nothing and
// fail nothing; chunks are stored and checked as without runs, and a
// proposal whose list does not make its hash is refused as before.
func TestUploadRunsAreOnlyHints(t *testing.T) {
	a := noiseFile(t, 4, 200<<10)
	b := noiseFile(t, 5, 200<<10)
	tests := []struct {
		name   string
		chunks func() []syncproto.Chunk
		runs   []syncproto.WholeRun
	}{
		{
			name:   "run names another content",
			chunks: func() []syncproto.Chunk { return wireChunks(t, a) },
			runs:   []syncproto.WholeRun{{Hash: b.hash, Chunks: uint32(len(a.refs))}},
		},
		{
			name:   "run longer than the upload",
			chunks: func() []syncproto.Chunk { return wireChunks(t, a) },
			runs:   []syncproto.WholeRun{{Hash: a.hash, Chunks: uint32(len(a.refs) + 1)}},
		},
		{
			name:   "skip past the upload",
			chunks: func() []syncproto.Chunk { return wireChunks(t, a) },
			runs:   []syncproto.WholeRun{{Skip: 1000, Hash: a.hash, Chunks: 1}},
		},
		{
			name:   "a chunk left out shifts the run",
			chunks: func() []syncproto.Chunk { return wireChunks(t, a)[1:] },
			runs:   []syncproto.WholeRun{{Hash: a.hash, Chunks: uint32(len(a.refs) - 1)}},
		},
		{
			name:   "huge counts",
			chunks: func() []syncproto.Chunk { return wireChunks(t, a) },
			runs:   []syncproto.WholeRun{{Skip: ^uint32(0), Hash: a.hash, Chunks: ^uint32(0)}, {Hash: a.hash, Chunks: ^uint32(0)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			sess := e.client(t, "laptop")
			e.root(t, sess, "docs")
			ctx := context.Background()
			up := tt.chunks()
			if err := e.srv.PutChunkRuns(ctx, sess, "docs", tt.runs, chunkSource(up)); err != nil {
				t.Fatalf("put chunk runs: %v", err)
			}
			for _, c := range up {
				if ok, err := e.srv.store.Has(ctx, []cas.ID{c.ID}); err != nil || !ok[0] {
					t.Fatalf("chunk %s not stored: %v", c.ID.Short(), err)
				}
			}
			if e.srv.proven.proves(a.hash, toChunks(a.refs)) || e.srv.proven.proves(b.hash, toChunks(a.refs)) {
				t.Fatal("a run that does not add up proved a list")
			}
			// a's own list, its chunks all stored (the one left out
			// uploaded now), commits by reading them back.
			e.upload(t, sess, "docs", a)
			if _, err := e.srv.Propose(ctx, sess, request("docs", "a.bin", nil, a), a.refs); err != nil {
				t.Fatalf("propose a.bin: %v", err)
			}
			if back := e.srv.metrics.listsReadBack.Load(); back != 1 {
				t.Fatalf("%d lists read back, want 1", back)
			}
			// b's hash with a's chunks is refused.
			lie := request("docs", "b.bin", nil, b)
			lie.Size, lie.ChunkCount = int64(len(a.data)), uint32(len(a.refs))
			if _, err := e.srv.Propose(ctx, sess, lie, a.refs); !errors.Is(err, syncproto.ErrBadRequest) {
				t.Fatalf("propose b's hash with a's chunks: %v, want ErrBadRequest", err)
			}
		})
	}
}

// TestProvenListsForgetsOldest: the memory of proven lists is bounded and
// forgets the oldest first; a list proves only its own content.
func TestProvenListsForgetsOldest(t *testing.T) {
	p := newProvenLists()
	list := func(i int) []manifest.Chunk {
		return []manifest.Chunk{{ID: cas.Sum([]byte{byte(i), byte(i >> 8), 1}), Size: 10}, {ID: cas.Sum([]byte{byte(i), byte(i >> 8), 2}), Size: uint32(i + 1)}}
	}
	hash := func(i int) cas.ID { return cas.Sum([]byte{byte(i), byte(i >> 8)}) }
	const n = wholeMemory + 10
	for i := range n {
		p.add(hash(i), listDigest(list(i)))
	}
	if len(p.m) != wholeMemory || len(p.order) != wholeMemory {
		t.Fatalf("%d lists remembered (ring %d), want %d", len(p.m), len(p.order), wholeMemory)
	}
	for i := range n {
		want := i >= n-wholeMemory
		if got := p.proves(hash(i), list(i)); got != want {
			t.Errorf("list %d proven: %v, want %v", i, got, want)
		}
	}
	if p.proves(hash(n-1), list(n-2)) {
		t.Error("another content's list proved a hash")
	}
	short := list(n - 1)[:1]
	if p.proves(hash(n-1), short) {
		t.Error("part of a list proved its content")
	}
}

// TestLongUploadSyncsAsItGoes: an upload syncs the store every
// syncEveryBytes, so a long one (a large file as one run) neither holds
// all it stored unsynced nor loses it to a crash before its end.
func TestLongUploadSyncsAsItGoes(t *testing.T) {
	for _, tt := range []struct {
		name        string
		every       int
		wantPending bool
	}{{"default", syncEveryBytes, true}, {"every chunk", 1, false}} {
		t.Run(tt.name, func(t *testing.T) {
			old := syncEveryBytes
			syncEveryBytes = tt.every
			t.Cleanup(func() { syncEveryBytes = old })
			e := newEnv(t)
			sess := e.client(t, "laptop")
			e.root(t, sess, "docs")
			ctx := context.Background()
			f := noiseFile(t, 6, 200<<10)
			up := wireChunks(t, f)
			var pendingSeen []int
			i := 0
			next := func() (syncproto.Chunk, error) {
				if i > 0 {
					st, err := e.srv.store.Stats(ctx)
					if err != nil {
						return syncproto.Chunk{}, err
					}
					pendingSeen = append(pendingSeen, st.Pending)
				}
				if i == len(up) {
					return syncproto.Chunk{}, io.EOF
				}
				i++
				return up[i-1], nil
			}
			runs := []syncproto.WholeRun{{Hash: f.hash, Chunks: uint32(len(up))}}
			if err := e.srv.PutChunkRuns(ctx, sess, "docs", runs, next); err != nil {
				t.Fatal(err)
			}
			if got := slices.Max(pendingSeen) > 0; got != tt.wantPending {
				t.Errorf("unsynced chunks during the upload %v, want some: %v", pendingSeen, tt.wantPending)
			}
			if st, err := e.srv.store.Stats(ctx); err != nil || st.Pending != 0 {
				t.Errorf("after the upload: %d unsynced chunks, %v", st.Pending, err)
			}
		})
	}
}

// FuzzRunHasher: whatever runs a client names over whatever chunks, the
// hasher proves only lists that do make their content: a contiguous
// stretch of the upload hashing to the proven content hash.
func FuzzRunHasher(f *testing.F) {
	f.Add([]byte{0, 3, 1, 2}, []byte("abcdefgh"), uint8(0))
	f.Add([]byte{1, 2, 0, 255, 9, 9}, []byte("the quick brown fox"), uint8(1))
	f.Add([]byte{}, []byte("x"), uint8(2))
	f.Fuzz(func(t *testing.T, spec, content []byte, truth uint8) {
		if len(spec) > 64 || len(content) > 4096 {
			return
		}
		// The upload: content cut into pieces of up to 7 bytes.
		var pieces [][]byte
		for rest := content; len(rest) > 0; {
			n := min(len(rest), 1+len(pieces)%7)
			pieces = append(pieces, rest[:n])
			rest = rest[n:]
		}
		// Runs: (skip, chunks) byte pairs; the run's hash is the true
		// content of that stretch when truth's bit for it is set, else
		// some other hash.
		var runs []syncproto.WholeRun
		at := 0
		for i := 0; i+1 < len(spec); i += 2 {
			r := syncproto.WholeRun{Skip: uint32(spec[i]), Chunks: uint32(spec[i+1])}
			start, end := at+int(r.Skip), at+int(r.Skip)+int(r.Chunks)
			if truth&(1<<(i/2%8)) != 0 && end <= len(pieces) && r.Chunks > 0 {
				var whole []byte
				for _, p := range pieces[start:end] {
					whole = append(whole, p...)
				}
				r.Hash = cas.Sum(whole)
			} else {
				r.Hash = cas.Sum(append([]byte("not "), spec[i:i+2]...))
			}
			runs = append(runs, r) // empty ones too, which the protocol refuses
			at = start + int(r.Chunks)
		}
		proven := newProvenLists()
		h := newRunHasher(runs, proven)
		for _, p := range pieces {
			h.chunk(cas.Sum(p), p)
		}
		h.close()
		for hash, digest := range proven.m {
			found := false
			for i := 0; i < len(pieces) && !found; i++ {
				var whole []byte
				var list []manifest.Chunk
				for j := i; j < len(pieces); j++ {
					whole = append(whole, pieces[j]...)
					list = append(list, manifest.Chunk{ID: cas.Sum(pieces[j]), Size: uint32(len(pieces[j]))})
					if cas.Sum(whole) == hash && listDigest(list) == digest {
						found = true
						break
					}
				}
			}
			if !found {
				t.Fatalf("proved %s, which no stretch of the upload makes", hash.Short())
			}
		}
	})
}

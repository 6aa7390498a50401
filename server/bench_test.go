package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func benchEnv(b *testing.B) (*env, *syncproto.Session) {
	opts := testOptions(filepath.Join(b.TempDir(), "data"))
	opts.Views = false
	e := newEnvWith(b, opts)
	a := e.client(b, "a")
	e.root(b, a, "docs")
	return e, a
}

// BenchmarkProposeFastForward measures an edit of a small file that is
// already uploaded: decide, verify, commit (one fsync), notify.
func BenchmarkProposeFastForward(b *testing.B) {
	e, a := benchEnv(b)
	ctx := context.Background()
	files := make([]file, 64)
	for i := range files {
		files[i] = newFile(b, randomData(uint64(i), 8<<10))
		e.upload(b, a, "docs", files[i])
	}
	head := e.mustPush(b, a, "docs", "f", nil, files[0])
	i := 1
	for b.Loop() {
		f := files[i%len(files)]
		if f.hash == files[(i-1)%len(files)].hash {
			i++
			f = files[i%len(files)]
		}
		resp, err := e.srv.Propose(ctx, a, request("docs", "f", head, f), f.refs)
		if err != nil {
			b.Fatal(err)
		}
		head = resp.GetHead()
		i++
	}
}

// BenchmarkPutChunks measures storing uploaded 64 KiB chunks (verify the
// hash, append to a pack) including the fsync before the answer. The
// chunks are random, so they travel raw as a client would send them.
func BenchmarkPutChunks(b *testing.B) {
	e, a := benchEnv(b)
	ctx := context.Background()
	const perCall, size = 16, 64 << 10
	base := randomData(1, size)
	for i := 0; i < size; i++ {
		base[i] ^= byte(i * 131) // no compressible half
	}
	b.SetBytes(perCall * size)
	n := uint64(0)
	chunks := make([]syncproto.Chunk, perCall)
	for b.Loop() {
		for i := range chunks {
			data := make([]byte, size)
			copy(data, base)
			n++
			binary.LittleEndian.PutUint64(data, n) // a new chunk every time
			chunks[i] = syncproto.Chunk{Codec: syncproto.ChunkRaw, ID: cas.Sum(data), RawLen: size, Data: data}
		}
		if err := e.srv.PutChunks(ctx, a, "docs", chunkSource(chunks)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetChunks measures serving the chunks of a 4 MiB file in stored
// form, as a download does.
func BenchmarkGetChunks(b *testing.B) {
	e, a := benchEnv(b)
	ctx := context.Background()
	f := newFile(b, randomData(1, 4<<20))
	e.mustPush(b, a, "docs", "f", nil, f)
	if _, _, err := e.srv.ChunkList(ctx, a, &syncpb.ChunkListRequest{Root: "docs", Path: "f", Hash: f.hash[:]}); err != nil {
		b.Fatal(err)
	}
	ids := f.ids()
	b.SetBytes(int64(len(f.data)))
	for b.Loop() {
		err := e.srv.GetChunks(ctx, a, "docs", ids, func(syncproto.Chunk) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHaveChunks measures answering for the chunks of a 256 MiB file
// at the average chunk size (4096 IDs), all present, pinned each time.
func BenchmarkHaveChunks(b *testing.B) {
	e, a := benchEnv(b)
	ctx := context.Background()
	var ids []cas.ID
	var chunks []syncproto.Chunk
	for i := range 4096 {
		data := fmt.Appendf(nil, "chunk %d", i)
		id := cas.Sum(data)
		ids = append(ids, id)
		chunks = append(chunks, syncproto.Chunk{Codec: syncproto.ChunkRaw, ID: id, RawLen: len(data), Data: data})
	}
	if err := e.srv.PutChunks(ctx, a, "docs", chunkSource(chunks)); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := e.srv.HaveChunks(ctx, a, "docs", ids); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUploadNewFile measures the server's side of a new 32 MiB
// random file's upload and commit on one stream: as a whole run (hashed as
// it arrives, nothing read back) and as plain chunks (read back and hashed
// before the commit).
func BenchmarkUploadNewFile(b *testing.B) {
	for _, runs := range []bool{true, false} {
		name := map[bool]string{true: "run", false: "read-back"}[runs]
		b.Run(name, func(b *testing.B) {
			e, a := benchEnv(b)
			ctx := context.Background()
			const size = 32 << 20
			b.SetBytes(size)
			i := 0
			for b.Loop() {
				b.StopTimer()
				f := newFile(b, noiseBytes(uint64(i), size))
				up := wireChunks(b, f)
				var wr []syncproto.WholeRun
				if runs {
					wr = []syncproto.WholeRun{{Hash: f.hash, Chunks: uint32(len(up))}}
				}
				b.StartTimer()
				if err := e.srv.PutChunkRuns(ctx, a, "docs", wr, chunkSource(up)); err != nil {
					b.Fatal(err)
				}
				if _, err := e.srv.Propose(ctx, a, request("docs", fmt.Sprintf("f%d", i), nil, f), f.refs); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

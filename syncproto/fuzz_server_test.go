package syncproto

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// FuzzParseIDs checks the ID list and bitmap decoders of HaveChunks and
// GetChunks: nothing panics, and what decodes re-encodes to the input.
func FuzzParseIDs(f *testing.F) {
	id := cas.Sum([]byte("x"))
	f.Add(AppendIDs(nil, []cas.ID{id, id}), 2)
	f.Add([]byte{1, 2, 3}, 3)
	f.Add([]byte{0xff}, 9)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if ids, err := ParseIDs(b, 64); err == nil {
			if got := AppendIDs(nil, ids); string(got) != string(b) {
				t.Fatalf("ParseIDs round trip: %x != %x", got, b)
			}
		} else if !errors.Is(err, ErrBadRequest) {
			t.Fatalf("ParseIDs refusal %v is not ErrBadRequest", err)
		}
		if n < 0 || n > 1<<16 {
			return
		}
		if bits, err := ParseBitmap(b, n); err == nil {
			if len(bits) != n || string(AppendBitmap(nil, bits)) != string(b) {
				t.Fatalf("ParseBitmap(%x, %d) = %v does not round trip", b, n, bits)
			}
		}
	})
}

// FuzzServerTransaction writes arbitrary bytes as a whole transaction (the
// request frame and whatever follows: chunk frames, chunk list parts) on
// an authenticated connection to a Server over real QUIC, with the
// in-memory Handler: the server answers or ends the stream without a
// handler panic, and keeps serving.
func FuzzServerTransaction(f *testing.F) {
	id := cas.Sum([]byte("chunk"))
	frames := func(msgs ...proto.Message) []byte {
		var out []byte
		for _, m := range msgs {
			ft, payload, err := EncodeMessage(nil, m)
			if err != nil {
				f.Fatal(err)
			}
			out = AppendFrame(out, ft, payload)
		}
		return out
	}
	chunk, err := EncodeChunkFrame(nil, Chunk{Codec: ChunkRaw, ID: cas.Sum([]byte("x")), RawLen: 1, Data: []byte("x")})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(frames(&syncpb.ListRootsRequest{Remote: true}))
	f.Add(frames(&syncpb.RegisterRootRequest{Name: "fz", RootPassword: "root secret"}))
	f.Add(frames(&syncpb.JoinRootRequest{Name: "fz", RootPassword: "root secret"}))
	f.Add(frames(&syncpb.HeadsRequest{Root: "fz"}))
	f.Add(frames(&syncpb.HaveChunksRequest{Root: "fz", Ids: AppendIDs(nil, []cas.ID{id})}))
	f.Add(AppendFrame(frames(&syncpb.PutChunksRequest{Root: "fz"}), FrameChunk, chunk))
	f.Add(AppendFrame(frames(&syncpb.PutChunksRequest{Root: "fz", Wholes: []*syncpb.WholeRun{{Skip: 1, Hash: id[:], Chunks: 2}}}), FrameChunk, chunk))
	f.Add(frames(&syncpb.ProposeRequest{Root: "fz", Path: "f", Hash: id[:], Size: 1, ChunkCount: 1}, EncodeChunkListPart([]ChunkRef{{id, 1}})))
	f.Add(frames(&syncpb.ChunkListRequest{Root: "fz", Path: "f", Hash: id[:]}))
	f.Add(frames(&syncpb.GetChunksRequest{Root: "fz", Ids: AppendIDs(nil, []cas.ID{id})}))
	f.Add(frames(&syncpb.HistoryRequest{Root: "fz", Path: "f"}))
	f.Add(frames(&syncpb.ListConflictsRequest{Root: "fz"}))
	f.Add(frames(&syncpb.Ping{Sent: 1}))
	// The delta forms.
	f.Add(frames(&syncpb.ProposeRequest{Root: "fz", Path: "g", Hash: id[:], Size: 1, ChunkCount: 1, Delta: true},
		EncodeListDelta(&ListDelta{SourcePath: "f", SourceHash: id, Runs: []ListRun{{Copy: 1}}})))
	f.Add(frames(&syncpb.SignaturesRequest{Root: "fz", Sources: []*syncpb.SignaturesRequest_Source{{Path: "f", Hash: id[:], Ids: id[:], BlockSize: 64}}}))
	f.Add(frames(&syncpb.ChunkListRequest{Root: "fz", Path: "f", Hash: id[:], BaseHash: id[:]}))
	f.Add(frames(&syncpb.GetChunksRequest{Root: "fz", Ids: AppendIDs(nil, []cas.ID{id}), DictIds: id[:], DictCounts: []uint32{1}}))
	src := bytes.Repeat([]byte("source "), 100)
	next := append(bytes.Clone(src), "!"...)
	if dc, ok := EncodeDeltaFrom(cas.Sum(next), next, []cas.ID{cas.Sum(src)}, [][]byte{src}, len(next)); ok {
		delta, err := EncodeChunkFrame(nil, dc)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(AppendFrame(frames(&syncpb.PutChunksRequest{Root: "fz"}), FrameChunk, delta))
	}

	s := startLimitedServer(f, newMemHandler(testServerPassword), Config{ReadTimeout: time.Second}, ServerOptions{})
	id0, token := s.register(f, Config{})
	var conn *Conn
	connect := func(t testing.TB) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := DialSession(ctx, s.addr, s.tls(), Config{}, id0, token)
		if err != nil {
			t.Fatalf("the server stopped serving: %v", err)
		}
		conn = c.conn
	}
	connect(f)
	f.Cleanup(func() { _ = conn.Close() })

	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if conn.Context().Err() != nil {
			connect(t) // a fuzzed AuthRequest may have used up the connection's failures
		}
		st, err := conn.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = st.qs.Write(data)
		_ = st.CloseWrite()
		for {
			if _, _, err := st.ReadFrame(ctx); err != nil {
				break
			}
		}
		if log := s.log.String(); strings.Contains(log, "panicked") {
			t.Fatalf("the server panicked:\n%s", log)
		}
	})
}

package syncproto

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// runsHandler records the whole runs of each upload before storing it as
// memHandler does.
type runsHandler struct {
	*memHandler
	got chan []WholeRun
}

func (h runsHandler) PutChunkRuns(ctx context.Context, s *Session, root string, runs []WholeRun, next func() (Chunk, error)) error {
	h.got <- runs
	return h.PutChunks(ctx, s, root, next)
}

// The runs a client names reach a WholeRunner as they were sent; a
// server without one stores the upload all the same.
func TestPutChunkRunsReachHandler(t *testing.T) {
	chunks := []Chunk{storedChunk(t, randomBytes(3000)), storedChunk(t, randomBytes(4000)), storedChunk(t, randomBytes(5000))}
	runs := []WholeRun{{Skip: 1, Hash: cas.Sum([]byte("content")), Chunks: 2}}
	for _, tt := range []struct {
		name   string
		runner bool
	}{{"runner", true}, {"plain handler", false}} {
		t.Run(tt.name, func(t *testing.T) {
			mem := newMemHandler(testServerPassword)
			h := runsHandler{memHandler: mem, got: make(chan []WholeRun, 1)}
			var handler Handler = mem
			if tt.runner {
				handler = h
			}
			s := startServerOf(t, handler, mem, Config{})
			ctx := testCtx(t)
			c := s.client(t)
			mustRoot(ctx, t, c, "r")
			i := 0
			err := c.PutChunkRuns(ctx, "r", runs, func() (Chunk, error) {
				if i == len(chunks) {
					return Chunk{}, io.EOF
				}
				i++
				return chunks[i-1], nil
			})
			if err != nil {
				t.Fatalf("PutChunkRuns: %v", err)
			}
			if tt.runner {
				if got := <-h.got; !slices.Equal(got, runs) {
					t.Errorf("handler got runs %+v, want %+v", got, runs)
				}
			}
			ids := []cas.ID{chunks[0].ID, chunks[1].ID, chunks[2].ID}
			if have, err := c.HaveChunks(ctx, "r", ids); err != nil || slices.Contains(have, false) {
				t.Fatalf("HaveChunks after the upload = %v, %v; want all", have, err)
			}
		})
	}
}

// Malformed runs are refused before any chunk is stored.
func TestPutChunkRunsMalformed(t *testing.T) {
	h := runsHandler{memHandler: newMemHandler(testServerPassword), got: make(chan []WholeRun, 1)}
	s := startServerOf(t, h, h.memHandler, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")
	hash := cas.Sum([]byte("content"))
	tooMany := make([]*syncpb.WholeRun, MaxWholeRuns+1)
	for i := range tooMany {
		tooMany[i] = &syncpb.WholeRun{Hash: hash[:], Chunks: 1}
	}
	for name, wholes := range map[string][]*syncpb.WholeRun{
		"no chunks":   {{Hash: hash[:]}},
		"short hash":  {{Hash: hash[:31], Chunks: 1}},
		"no hash":     {{Chunks: 1}},
		"over limit":  tooMany,
		"one bad run": {{Hash: hash[:], Chunks: 1}, {Hash: hash[:], Chunks: 0}},
	} {
		t.Run(name, func(t *testing.T) {
			st, err := openStream(ctx, c.conn)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteMessage(ctx, st, &syncpb.PutChunksRequest{Root: "r", Wholes: wholes}); err != nil {
				t.Fatal(err)
			}
			chunk := storedChunk(t, randomBytes(2000))
			_ = st.WriteChunk(ctx, chunk)
			endRequest(st)
			if err := ReadMessage(ctx, st, &syncpb.Ack{}); !errors.Is(err, ErrBadRequest) {
				t.Fatalf("upload with %s: %v, want ErrBadRequest", name, err)
			}
			if have, err := c.HaveChunks(ctx, "r", []cas.ID{chunk.ID}); err != nil || have[0] {
				t.Errorf("chunk stored after a refused request: %v, %v", have, err)
			}
			select {
			case runs := <-h.got:
				t.Errorf("handler called with %+v", runs)
			default:
			}
		})
	}
	over := make([]WholeRun, MaxWholeRuns+1)
	if err := c.PutChunkRuns(ctx, "r", over, func() (Chunk, error) { return storedChunk(t, []byte("x")), nil }); !errors.Is(err, ErrBadRequest) {
		t.Errorf("client sending %d runs: %v, want ErrBadRequest", len(over), err)
	}
}

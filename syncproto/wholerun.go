package syncproto

import (
	"context"
	"fmt"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// WholeRun says that chunk frames of an upload are, in order, one whole
// content: after Skip other frames (counted from the end of the previous
// run, or from the start), the next Chunks frames are the chunk list of
// the content Hash, repeats included. A server that hashes such a run as
// it arrives need not read the chunks back when that content is proposed
// with that list.
type WholeRun struct {
	Skip   uint32
	Hash   cas.ID
	Chunks uint32
}

// WholeRunner is implemented by a Handler that takes the whole runs of an
// upload (see WholeRun). The Server finds it by type assertion and calls
// PutChunkRuns instead of PutChunks when a PutChunksRequest names runs;
// the contract is PutChunks', and runs are hints: chunks that do not hash
// to their run's content are stored all the same.
type WholeRunner interface {
	PutChunkRuns(ctx context.Context, s *Session, root string, runs []WholeRun, next func() (Chunk, error)) error
}

// wholeRunsToPB is the wire form of runs.
func wholeRunsToPB(runs []WholeRun) []*syncpb.WholeRun {
	if len(runs) == 0 {
		return nil
	}
	out := make([]*syncpb.WholeRun, len(runs))
	for i, r := range runs {
		out[i] = &syncpb.WholeRun{Skip: r.Skip, Hash: r.Hash[:], Chunks: r.Chunks}
	}
	return out
}

// wholeRunsFromPB checks the runs of a PutChunksRequest: at most
// MaxWholeRuns, each with a content hash and at least one chunk.
func wholeRunsFromPB(pb []*syncpb.WholeRun) ([]WholeRun, error) {
	if len(pb) == 0 {
		return nil, nil
	}
	if len(pb) > MaxWholeRuns {
		return nil, fmt.Errorf("%w: put chunks: %d whole runs, limit %d", ErrBadRequest, len(pb), MaxWholeRuns)
	}
	runs := make([]WholeRun, len(pb))
	for i, r := range pb {
		hash, err := cas.IDFromBytes(r.GetHash())
		if err != nil {
			return nil, fmt.Errorf("%w: put chunks: whole run %d: %w", ErrBadRequest, i, err)
		}
		if r.GetChunks() == 0 {
			return nil, fmt.Errorf("%w: put chunks: whole run %d has no chunks", ErrBadRequest, i)
		}
		runs[i] = WholeRun{Skip: r.GetSkip(), Hash: hash, Chunks: r.GetChunks()}
	}
	return runs, nil
}

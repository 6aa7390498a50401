package syncproto

import (
	"context"
	"fmt"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// ChunkListItem names one version for ChunkListBatch, and the version the
// client holds, if any (BaseHash zero: none), of BasePath ("" for Path):
// its chunks become dictionaries for GetChunksDict, as with ChunkListFrom.
type ChunkListItem struct {
	Path     string
	Hash     cas.ID
	BasePath string
	BaseHash cas.ID
}

// ChunkListResult is one answer of ChunkListBatch: the version's size and
// chunk list, or Err as the item's own ChunkList would have failed
// (errors.Is works on it).
type ChunkListResult struct {
	Size   int64
	Chunks []ChunkRef
	Err    error
}

// ChunkListBatch returns the chunk lists of many versions in one
// transaction, in order; at most MaxChunkListBatch items, no deltas. A
// server keeps the lists of one answer within MaxBatchEntries entries and
// answers the items past that with ErrBadRequest: ask those one by one. A
// server that predates batches answers ErrUnsupported.
func (c *Client) ChunkListBatch(ctx context.Context, root string, items []ChunkListItem) ([]ChunkListResult, error) {
	if len(items) == 0 || len(items) > MaxChunkListBatch {
		return nil, fmt.Errorf("%w: a batch of %d chunk lists, want 1 to %d", ErrBadRequest, len(items), MaxChunkListBatch)
	}
	req := &syncpb.ChunkListBatchRequest{Root: root, Items: make([]*syncpb.ChunkListBatchRequest_Item, len(items))}
	for i, it := range items {
		req.Items[i] = &syncpb.ChunkListBatchRequest_Item{Path: it.Path, Hash: it.Hash[:], BasePath: it.BasePath}
		if !it.BaseHash.IsZero() {
			req.Items[i].BaseHash = it.BaseHash[:]
		}
	}
	var resp syncpb.ChunkListBatchResponse
	if err := transact(ctx, c.conn, req, &resp); err != nil {
		return nil, fmt.Errorf("chunk lists of %d files in %q: %w", len(items), root, err)
	}
	out, err := decodeListResults(&resp, len(items), DefaultMaxChunkSize)
	if err != nil {
		return nil, fmt.Errorf("chunk lists of %d files in %q: %w", len(items), root, err)
	}
	return out, nil
}

// decodeListResults checks the answer to a batch of n chunk lists: one
// result each, a list adding up to its size or a known error code, never
// both, and no more than MaxBatchEntries entries in all.
func decodeListResults(resp *syncpb.ChunkListBatchResponse, n, maxChunk int) ([]ChunkListResult, error) {
	if len(resp.GetResults()) != n {
		return nil, fmt.Errorf("%w: %d results for %d chunk lists", ErrBadRequest, len(resp.GetResults()), n)
	}
	out := make([]ChunkListResult, n)
	entries := 0
	for i, r := range resp.GetResults() {
		if code := r.GetErrorCode(); code != uint32(CodeNoError) {
			if r.GetSize() != 0 || len(r.GetIds()) > 0 || len(r.GetSizes()) > 0 {
				return nil, fmt.Errorf("%w: result %d has both a list and an error", ErrBadRequest, i)
			}
			e, err := checkedError(uint64(code), r.GetErrorMessage())
			if err != nil {
				return nil, fmt.Errorf("result %d: %w", i, err)
			}
			out[i].Err = e
			continue
		}
		if entries += len(r.GetSizes()); entries > MaxBatchEntries {
			return nil, fmt.Errorf("%w: chunk list batch of more than %d entries", ErrBadRequest, MaxBatchEntries)
		}
		var refs []ChunkRef
		if len(r.GetSizes()) > 0 || len(r.GetIds()) > 0 {
			var err error
			refs, err = appendChunkListPart(nil, &syncpb.ChunkListPart{Ids: r.GetIds(), Sizes: r.GetSizes()}, len(r.GetSizes()), maxChunk)
			if err != nil {
				return nil, fmt.Errorf("result %d: %w", i, err)
			}
		}
		var total int64
		for _, c := range refs {
			total += int64(c.Size)
		}
		if total != r.GetSize() {
			return nil, fmt.Errorf("%w: result %d: chunks add up to %d bytes, file size %d", ErrBadRequest, i, total, r.GetSize())
		}
		out[i] = ChunkListResult{Size: total, Chunks: refs}
	}
	return out, nil
}

// chunkListBatch serves a ChunkListBatchRequest: each item is answered as
// a ChunkListRequest without a base, its failure in its result. Lists stop
// once the answer holds MaxBatchEntries entries; the items past that are
// answered BadRequest.
func (t *tx) chunkListBatch(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameChunkListBatchRequest, payload, &syncpb.ChunkListBatchRequest{})
	if err != nil {
		return err
	}
	n := len(req.GetItems())
	if n == 0 || n > MaxChunkListBatch {
		return fmt.Errorf("%w: chunk list batch of %d items, want 1 to %d", ErrBadRequest, n, MaxChunkListBatch)
	}
	if err := expectEnd(ctx, t.st); err != nil {
		return fmt.Errorf("chunk list batch: after the request: %w", err)
	}
	answers := t.answerListBatch(ctx, req)
	if err := ctx.Err(); err != nil {
		return err
	}
	results := make([]*syncpb.ChunkListBatchResponse_Result, n)
	entries := 0
	for i, it := range req.GetItems() {
		size, refs, err := answers[i].Size, answers[i].Chunks, answers[i].Err
		if err == nil && entries+len(refs) > MaxBatchEntries {
			err = fmt.Errorf("%w: chunk list of %q does not fit in this batch's %d entries; ask it alone", ErrBadRequest, it.GetPath(), MaxBatchEntries)
		}
		if err != nil {
			t.logFailure(fmt.Sprintf("chunk list batch item %q", it.GetPath()), err)
			we := WireError(storageErr(err))
			results[i] = &syncpb.ChunkListBatchResponse_Result{ErrorCode: uint32(we.Code), ErrorMessage: sanitizeMessage(we.Message)}
			continue
		}
		entries += len(refs)
		part := EncodeChunkListPart(refs)
		results[i] = &syncpb.ChunkListBatchResponse_Result{Size: size, Ids: part.Ids, Sizes: part.Sizes}
	}
	return WriteMessage(ctx, t.st, &syncpb.ChunkListBatchResponse{Results: results})
}

// ChunkListBatcher is a Handler that answers the items of a
// ChunkListBatchRequest itself, cheaper than ChunkList for each (the root
// and the membership looked up once). Results are in item order, each as
// ChunkList would have answered it; a Handler without it gets ChunkList
// per item.
type ChunkListBatcher interface {
	ChunkListBatch(ctx context.Context, s *Session, root string, items []ChunkListItem) []ChunkListResult
}

// answerListBatch asks the Handler for each well-formed item of req and
// checks what it answers: a list adding up to its size.
func (t *tx) answerListBatch(ctx context.Context, req *syncpb.ChunkListBatchRequest) []ChunkListResult {
	out := make([]ChunkListResult, len(req.GetItems()))
	var valid []ChunkListItem
	var at []int
	for i, it := range req.GetItems() {
		hash, err := cas.IDFromBytes(it.GetHash())
		if err != nil {
			out[i].Err = fmt.Errorf("%w: chunk list %q: hash of %d bytes, want %d", ErrBadRequest, it.GetPath(), len(it.GetHash()), cas.IDSize)
			continue
		}
		item := ChunkListItem{Path: it.GetPath(), Hash: hash, BasePath: it.GetBasePath()}
		if base, err := cas.IDFromBytes(it.GetBaseHash()); err == nil {
			item.BaseHash = base
		}
		valid = append(valid, item)
		at = append(at, i)
	}
	var answers []ChunkListResult
	if b, ok := t.srv.h.(ChunkListBatcher); ok && len(valid) > 0 {
		answers = b.ChunkListBatch(ctx, t.session, req.GetRoot(), valid)
	} else {
		answers = make([]ChunkListResult, len(valid))
		for i, it := range valid {
			if ctx.Err() != nil {
				break
			}
			answers[i].Size, answers[i].Chunks, answers[i].Err = t.srv.h.ChunkList(ctx, t.session, &syncpb.ChunkListRequest{Root: req.GetRoot(), Path: it.Path, Hash: it.Hash[:]})
		}
	}
	dh, deltas := t.srv.h.(DeltaHandler)
	for j, i := range at {
		if j >= len(answers) {
			out[i].Err = internalf("ChunkListBatch answered %d of %d items", len(answers), len(valid))
			continue
		}
		out[i] = checkedAnswer(answers[j], valid[j].Path)
		if it := valid[j]; deltas && out[i].Err == nil && len(out[i].Chunks) > 0 && !it.BaseHash.IsZero() {
			// As for a ChunkListRequest's base: its chunks become the
			// session's dictionaries. A base the client cannot reach
			// is not an error (it may hold content the server forgot).
			basePath := it.BasePath
			if basePath == "" {
				basePath = it.Path
			}
			_, _ = dh.SourceChunkList(ctx, t.session, req.GetRoot(), basePath, it.BaseHash)
		}
	}
	return out
}

// checkedAnswer is a Handler's answer for one chunk list, refused when
// its list does not add up to its size.
func checkedAnswer(a ChunkListResult, path string) ChunkListResult {
	if a.Err != nil {
		return ChunkListResult{Err: a.Err}
	}
	var total int64
	for _, r := range a.Chunks {
		total += int64(r.Size)
	}
	if total != a.Size {
		return ChunkListResult{Err: internalf("ChunkList of %q adds up to %d bytes, size %d", path, total, a.Size)}
	}
	return a
}

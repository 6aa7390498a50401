package syncproto

import (
	"context"
	"fmt"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// ChunkListItem names one version for ChunkListBatch.
type ChunkListItem struct {
	Path string
	Hash cas.ID
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
		req.Items[i] = &syncpb.ChunkListBatchRequest_Item{Path: it.Path, Hash: it.Hash[:]}
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
	results := make([]*syncpb.ChunkListBatchResponse_Result, n)
	entries := 0
	for i, it := range req.GetItems() {
		if err := ctx.Err(); err != nil {
			return err
		}
		size, refs, err := t.batchChunkList(ctx, req.GetRoot(), it)
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

// batchChunkList answers one item of a batch through the Handler's
// ChunkList, with the checks a ChunkListRequest gets.
func (t *tx) batchChunkList(ctx context.Context, root string, it *syncpb.ChunkListBatchRequest_Item) (int64, []ChunkRef, error) {
	if len(it.GetHash()) != cas.IDSize {
		return 0, nil, fmt.Errorf("%w: chunk list %q: hash of %d bytes, want %d", ErrBadRequest, it.GetPath(), len(it.GetHash()), cas.IDSize)
	}
	size, refs, err := t.srv.h.ChunkList(ctx, t.session, &syncpb.ChunkListRequest{Root: root, Path: it.GetPath(), Hash: it.GetHash()})
	if err != nil {
		return 0, nil, err
	}
	var total int64
	for _, r := range refs {
		total += int64(r.Size)
	}
	if total != size {
		return 0, nil, internalf("ChunkList of %q adds up to %d bytes, size %d", it.GetPath(), total, size)
	}
	return size, refs, nil
}

package syncproto

import (
	"context"
	"fmt"
	"sync"

	"github.com/quic-s/quics/syncproto/syncpb"
)

// batchWorkers is how many batch items one connection has in decision at
// once, over all its streams: a client's whole batch of 256, so the
// manifest's group commit takes it in a few transactions (32 at once cost
// three times the syncs), and no more however many batches it sends.
const batchWorkers = 256

// BatchProposal is one item of Client.ProposeBatch: a proposal and its
// whole chunk list.
type BatchProposal struct {
	Request *syncpb.ProposeRequest
	Chunks  []ChunkRef
}

// BatchResult is the outcome of one BatchProposal: Commit, or Err as the
// item's own Propose would have failed (errors.Is works on it).
type BatchResult struct {
	Commit *syncpb.CommitResponse
	Err    error
}

// ProposeBatch proposes items in one transaction, each decided on its own
// as by Propose, and returns their results in order. At most
// MaxBatchProposals items and MaxBatchEntries chunk list entries in all;
// no delta lists. A server that predates batches answers ErrUnsupported:
// propose one by one then. An error return means no item has a result
// (some may have been committed all the same: proposing them again is
// answered CONVERGED).
func (c *Client) ProposeBatch(ctx context.Context, root string, items []BatchProposal) ([]BatchResult, error) {
	req, err := encodeBatch(root, items)
	if err != nil {
		return nil, err
	}
	var resp syncpb.ProposeBatchResponse
	if err := transact(ctx, c.conn, req, &resp); err != nil {
		return nil, fmt.Errorf("propose %d files in %q: %w", len(items), root, err)
	}
	out, err := decodeBatchResults(&resp, len(items))
	if err != nil {
		return nil, fmt.Errorf("propose %d files in %q: %w", len(items), root, err)
	}
	return out, nil
}

func encodeBatch(root string, items []BatchProposal) (*syncpb.ProposeBatchRequest, error) {
	if len(items) == 0 || len(items) > MaxBatchProposals {
		return nil, fmt.Errorf("%w: a batch of %d proposals, want 1 to %d", ErrBadRequest, len(items), MaxBatchProposals)
	}
	req := &syncpb.ProposeBatchRequest{Root: root, Items: make([]*syncpb.ProposeBatchRequest_Item, len(items))}
	entries := 0
	for i, it := range items {
		entries += len(it.Chunks)
		if entries > MaxBatchEntries {
			return nil, fmt.Errorf("%w: a batch with more than %d chunk list entries", ErrBadRequest, MaxBatchEntries)
		}
		r := it.Request
		r.Root, r.Delta, r.ChunkCount = "", false, uint32(len(it.Chunks))
		part := EncodeChunkListPart(it.Chunks)
		req.Items[i] = &syncpb.ProposeBatchRequest_Item{Request: r, Ids: part.Ids, Sizes: part.Sizes}
	}
	return req, nil
}

// decodeBatchResults checks the answer to a batch of n items: one result
// each, a commit or a known error code, never both.
func decodeBatchResults(resp *syncpb.ProposeBatchResponse, n int) ([]BatchResult, error) {
	if len(resp.GetResults()) != n {
		return nil, fmt.Errorf("%w: %d results for %d proposals", ErrBadRequest, len(resp.GetResults()), n)
	}
	out := make([]BatchResult, n)
	for i, r := range resp.GetResults() {
		switch code := r.GetErrorCode(); {
		case code == uint32(CodeNoError) && r.GetCommit() == nil:
			return nil, fmt.Errorf("%w: result %d has neither a commit nor an error", ErrBadRequest, i)
		case code == uint32(CodeNoError):
			out[i].Commit = r.GetCommit()
		case r.GetCommit() != nil:
			return nil, fmt.Errorf("%w: result %d has both a commit and an error", ErrBadRequest, i)
		default:
			e, err := checkedError(uint64(code), r.GetErrorMessage())
			if err != nil {
				return nil, fmt.Errorf("result %d: %w", i, err)
			}
			out[i].Err = e
		}
	}
	return out, nil
}

// proposeBatch serves a ProposeBatchRequest: every item is checked and
// decided as its own ProposeRequest would be, several at once, and its
// failure answered in its result, not by failing the transaction.
func (t *tx) proposeBatch(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameProposeBatchRequest, payload, &syncpb.ProposeBatchRequest{})
	if err != nil {
		return err
	}
	items, err := decodeBatch(req, t.srv.opts.MaxChunkSize)
	if err != nil {
		return err
	}
	if err := expectEnd(ctx, t.st); err != nil {
		return fmt.Errorf("propose batch: after the request: %w", err)
	}
	propose := t.batchProposer(ctx, req.GetRoot(), items)
	results := make([]*syncpb.ProposeBatchResponse_Result, len(items))
	var wg sync.WaitGroup
items:
	for i := range items {
		select {
		case t.cs.batchSlots <- struct{}{}:
		case <-ctx.Done():
			break items
		}
		wg.Go(func() {
			defer func() { <-t.cs.batchSlots }()
			results[i] = t.proposeItem(ctx, propose, items[i])
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return WriteMessage(ctx, t.st, &syncpb.ProposeBatchResponse{Results: results})
}

// batchProposer returns what decides the batch's items: the handler's
// BatchPreparer given the well-formed ones, or its Propose.
func (t *tx) batchProposer(ctx context.Context, root string, items []batchItem) ProposeFunc {
	if bp, ok := t.srv.h.(BatchPreparer); ok {
		valid := make([]BatchItem, 0, len(items))
		for _, it := range items {
			if it.err == nil {
				valid = append(valid, BatchItem{Request: it.req, Chunks: it.refs})
			}
		}
		if len(valid) > 0 {
			return bp.PrepareBatch(ctx, t.session, root, valid)
		}
	}
	return func(ctx context.Context, req *syncpb.ProposeRequest, chunks []ChunkRef) (*syncpb.CommitResponse, error) {
		return t.srv.h.Propose(ctx, t.session, req, chunks)
	}
}

// batchItem is a decoded item: its request and list, or why it is refused.
type batchItem struct {
	req  *syncpb.ProposeRequest
	refs []ChunkRef
	err  error
}

// decodeBatch checks a batch's bounds and decodes its items. An item that
// is malformed on its own gets its error; a batch over its bounds is
// refused whole.
func decodeBatch(req *syncpb.ProposeBatchRequest, maxChunk int) ([]batchItem, error) {
	n := len(req.GetItems())
	if n == 0 || n > MaxBatchProposals {
		return nil, fmt.Errorf("%w: propose batch of %d items, want 1 to %d", ErrBadRequest, n, MaxBatchProposals)
	}
	entries := 0
	for _, it := range req.GetItems() {
		entries += len(it.GetSizes())
	}
	if entries > MaxBatchEntries {
		return nil, fmt.Errorf("%w: propose batch with %d chunk list entries, limit %d", ErrBadRequest, entries, MaxBatchEntries)
	}
	items := make([]batchItem, n)
	for i, it := range req.GetItems() {
		r := it.GetRequest()
		if r == nil {
			items[i].err = fmt.Errorf("%w: propose batch item %d has no request", ErrBadRequest, i)
			continue
		}
		r.Root = req.GetRoot()
		items[i].req = r
		items[i].err = decodeItem(&items[i], it, maxChunk)
	}
	return items, nil
}

func decodeItem(b *batchItem, it *syncpb.ProposeBatchRequest_Item, maxChunk int) error {
	r := b.req
	if r.GetDelta() {
		return fmt.Errorf("%w: propose %q: no delta lists in a batch", ErrBadRequest, r.GetPath())
	}
	if err := checkProposeRequest(r); err != nil {
		return err
	}
	if uint64(r.GetChunkCount()) != uint64(len(it.GetSizes())) {
		return fmt.Errorf("%w: propose %q: chunk_count %d but %d entries", ErrBadRequest, r.GetPath(), r.GetChunkCount(), len(it.GetSizes()))
	}
	if r.GetChunkCount() > 0 {
		refs, err := appendChunkListPart(nil, &syncpb.ChunkListPart{Ids: it.GetIds(), Sizes: it.GetSizes()}, len(it.GetSizes()), maxChunk)
		if err != nil {
			return fmt.Errorf("propose %q: %w", r.GetPath(), err)
		}
		b.refs = refs
	} else if len(it.GetIds()) > 0 {
		return fmt.Errorf("%w: propose %q: chunk IDs without sizes", ErrBadRequest, r.GetPath())
	}
	return checkListSize(r, b.refs)
}

// proposeItem decides one item and returns its result, logging a failure
// as a transaction of its own would be.
func (t *tx) proposeItem(ctx context.Context, propose ProposeFunc, it batchItem) *syncpb.ProposeBatchResponse_Result {
	err := it.err
	var resp *syncpb.CommitResponse
	if err == nil {
		resp, err = propose(ctx, it.req, it.refs)
		if err == nil && resp == nil {
			err = internalf("Propose returned no response")
		}
	}
	if err == nil {
		return &syncpb.ProposeBatchResponse_Result{Commit: resp}
	}
	path := ""
	if it.req != nil {
		path = it.req.GetPath()
	}
	t.logFailure(fmt.Sprintf("propose batch item %q", path), err)
	we := WireError(storageErr(err))
	return &syncpb.ProposeBatchResponse_Result{ErrorCode: uint32(we.Code), ErrorMessage: sanitizeMessage(we.Message)}
}

package syncproto

import (
	"context"
	"fmt"
	"reflect"

	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/syncproto/syncpb"
)

// The conflict, history and retention transactions: each is one request
// answered by one message.

// unary serves a transaction whose request frame ft is answered by the one
// message call returns.
func unary[Req, Resp proto.Message](ft FrameType, call func(h Handler, ctx context.Context, s *Session, req Req) (Resp, error)) func(t *tx, ctx context.Context, payload []byte) error {
	return func(t *tx, ctx context.Context, payload []byte) error {
		req, err := decodeRequest(ft, payload, newOf[Req]())
		if err != nil {
			return err
		}
		resp, err := call(t.srv.h, ctx, t.session, req)
		if err != nil {
			return err
		}
		if reflect.ValueOf(resp).IsNil() {
			return internalf("%s returned no answer", frameName(ft))
		}
		return WriteMessage(ctx, t.st, resp)
	}
}

// newOf returns a new empty message of the pointer type M.
func newOf[M proto.Message]() M {
	var zero M
	return zero.ProtoReflect().Type().New().Interface().(M)
}

// The transaction runners of the messages above, listed in transactions.
var (
	serveListConflicts = unary(FrameListConflictsRequest,
		func(h Handler, ctx context.Context, s *Session, req *syncpb.ListConflictsRequest) (*syncpb.ListConflictsResponse, error) {
			return h.ListConflicts(ctx, s, req)
		})
	serveResolveConflict = unary(FrameResolveConflictRequest,
		func(h Handler, ctx context.Context, s *Session, req *syncpb.ResolveConflictRequest) (*syncpb.CommitResponse, error) {
			return h.ResolveConflict(ctx, s, req)
		})
	serveHistory = unary(FrameHistoryRequest,
		func(h Handler, ctx context.Context, s *Session, req *syncpb.HistoryRequest) (*syncpb.HistoryResponse, error) {
			return h.History(ctx, s, req)
		})
	serveRestore = unary(FrameRestoreRequest,
		func(h Handler, ctx context.Context, s *Session, req *syncpb.RestoreRequest) (*syncpb.CommitResponse, error) {
			return h.Restore(ctx, s, req)
		})
	serveSetRetention = unary(FrameSetRetentionRequest,
		func(h Handler, ctx context.Context, s *Session, req *syncpb.SetRetentionRequest) (*syncpb.Ack, error) {
			if err := h.SetRetention(ctx, s, req); err != nil {
				return nil, err
			}
			return &syncpb.Ack{}, nil
		})
)

// ListConflicts lists the unresolved conflicts of root, or of one path when
// path is not empty.
func (c *Client) ListConflicts(ctx context.Context, root, path string) ([]*syncpb.Conflict, error) {
	var resp syncpb.ListConflictsResponse
	if err := transact(ctx, c.conn, &syncpb.ListConflictsRequest{Root: root, Path: path}, &resp); err != nil {
		return nil, fmt.Errorf("list conflicts of %q: %w", root, err)
	}
	if n := len(resp.GetConflicts()); n > MaxConflicts {
		return nil, fmt.Errorf("%w: list conflicts: %d conflicts, at most %d", ErrBadRequest, n, MaxConflicts)
	}
	return resp.GetConflicts(), nil
}

// ResolveConflict keeps one side of the conflict on path: "server",
// "client" (this client's side), a client name or ID, or a hash prefix of
// at least 8 hex digits. It returns the new head.
func (c *Client) ResolveConflict(ctx context.Context, root, path, keep string) (*syncpb.FileHead, error) {
	var resp syncpb.CommitResponse
	if err := transact(ctx, c.conn, &syncpb.ResolveConflictRequest{Root: root, Path: path, Keep: keep}, &resp); err != nil {
		return nil, fmt.Errorf("resolve conflict on %q: %w", path, err)
	}
	if resp.GetHead() == nil {
		return nil, fmt.Errorf("%w: resolve conflict on %q: no head in the answer", ErrBadRequest, path)
	}
	return resp.GetHead(), nil
}

// History lists the versions of path, oldest first; limit > 0 keeps the
// newest limit.
func (c *Client) History(ctx context.Context, root, path string, limit uint32) ([]*syncpb.HistoryEntry, error) {
	var resp syncpb.HistoryResponse
	if err := transact(ctx, c.conn, &syncpb.HistoryRequest{Root: root, Path: path, Limit: limit}, &resp); err != nil {
		return nil, fmt.Errorf("history of %q: %w", path, err)
	}
	if n := len(resp.GetVersions()); n > MaxHistoryEntries {
		return nil, fmt.Errorf("%w: history of %q: %d versions, at most %d", ErrBadRequest, path, n, MaxHistoryEntries)
	}
	return resp.GetVersions(), nil
}

// Restore makes the version of path whose hash starts with hashPrefix the
// new head. committed is false when the head already had that content.
func (c *Client) Restore(ctx context.Context, root, path, hashPrefix string) (head *syncpb.FileHead, committed bool, err error) {
	var resp syncpb.CommitResponse
	if err := transact(ctx, c.conn, &syncpb.RestoreRequest{Root: root, Path: path, HashPrefix: hashPrefix}, &resp); err != nil {
		return nil, false, fmt.Errorf("restore %q: %w", path, err)
	}
	if resp.GetHead() == nil {
		return nil, false, fmt.Errorf("%w: restore %q: no head in the answer", ErrBadRequest, path)
	}
	return resp.GetHead(), resp.GetOutcome() == syncpb.CommitResponse_OUTCOME_COMMITTED, nil
}

// SetRetention sets root's retention policy.
func (c *Client) SetRetention(ctx context.Context, root string, kind syncpb.SetRetentionRequest_Kind, value int64) error {
	if err := transact(ctx, c.conn, &syncpb.SetRetentionRequest{Root: root, Kind: kind, Value: value}, &syncpb.Ack{}); err != nil {
		return fmt.Errorf("set retention of %q: %w", root, err)
	}
	return nil
}

package syncproto

import (
	"context"
	"fmt"

	"github.com/quic-s/quics/syncproto/syncpb"
)

// The share link transactions: each is one request answered by one
// message.

var (
	serveCreateShare = unary(FrameCreateShareRequest,
		func(h Handler, ctx context.Context, s *Session, req *syncpb.CreateShareRequest) (*syncpb.CreateShareResponse, error) {
			if req.GetExpiresIn() < 0 {
				return nil, fmt.Errorf("%w: create share: negative expiry %d", ErrBadRequest, req.GetExpiresIn())
			}
			return h.CreateShare(ctx, s, req)
		})
	serveListShares = unary(FrameListSharesRequest,
		func(h Handler, ctx context.Context, s *Session, req *syncpb.ListSharesRequest) (*syncpb.ListSharesResponse, error) {
			resp, err := h.ListShares(ctx, s, req)
			if err == nil && len(resp.GetShares()) > MaxShares {
				return nil, internalf("ListShares answered %d links, limit %d", len(resp.GetShares()), MaxShares)
			}
			return resp, err
		})
	serveStopShare = unary(FrameStopShareRequest,
		func(h Handler, ctx context.Context, s *Session, req *syncpb.StopShareRequest) (*syncpb.StopShareResponse, error) {
			if (req.GetId() == "") == (req.GetToken() == "") {
				return nil, fmt.Errorf("%w: stop share: name the link by id or by token, not both or neither", ErrBadRequest)
			}
			return h.StopShare(ctx, s, req)
		})
)

// CreateShare creates a share link to path in root. The answer carries the
// link's URL, or, when the server does not know its public address, the
// token and port to build it from (see syncpb.CreateShareResponse).
func (c *Client) CreateShare(ctx context.Context, req *syncpb.CreateShareRequest) (*syncpb.CreateShareResponse, error) {
	var resp syncpb.CreateShareResponse
	if err := transact(ctx, c.conn, req, &resp); err != nil {
		return nil, fmt.Errorf("share %q: %w", req.GetPath(), err)
	}
	if resp.GetShare() == nil || (resp.GetUrl() == "" && (resp.GetToken() == "" || resp.GetPort() == 0 || resp.GetPort() > 65535)) {
		return nil, fmt.Errorf("%w: share %q: the answer has no link", ErrBadRequest, req.GetPath())
	}
	return &resp, nil
}

// ListShares lists the share links this client created.
func (c *Client) ListShares(ctx context.Context) ([]*syncpb.ShareInfo, error) {
	var resp syncpb.ListSharesResponse
	if err := transact(ctx, c.conn, &syncpb.ListSharesRequest{}, &resp); err != nil {
		return nil, fmt.Errorf("list shares: %w", err)
	}
	if n := len(resp.GetShares()); n > MaxShares {
		return nil, fmt.Errorf("%w: list shares: %d links, at most %d", ErrBadRequest, n, MaxShares)
	}
	return resp.GetShares(), nil
}

// StopShare stops the share link named by id, or by token when id is
// empty, and returns it as it was.
func (c *Client) StopShare(ctx context.Context, id, token string) (*syncpb.ShareInfo, error) {
	var resp syncpb.StopShareResponse
	name := id
	if name == "" {
		name = "of the given URL"
	}
	if err := transact(ctx, c.conn, &syncpb.StopShareRequest{Id: id, Token: token}, &resp); err != nil {
		return nil, fmt.Errorf("stop share %s: %w", name, err)
	}
	if resp.GetShare() == nil {
		return nil, fmt.Errorf("%w: stop share %s: no link in the answer", ErrBadRequest, name)
	}
	return resp.GetShare(), nil
}

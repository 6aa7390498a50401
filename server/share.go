package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// Share links (see the package documentation and sharehttp.go for the
// public listener that serves them).

// Bounds of share links.
const (
	// MaxSharesPerClient bounds the links one client keeps, whatever their
	// state: past it, creating one asks to stop some first. It is checked
	// before the link is stored, so racing creations may pass it by a few.
	MaxSharesPerClient = 1024
	// MaxShareLifetime bounds a link's expiry.
	MaxShareLifetime = 100 * 365 * 24 * time.Hour
)

// errNoShareListener answers CreateShare on a server without a share
// listener: a link nobody can download must not be handed out.
var errNoShareListener = fmt.Errorf("%w: this server does not serve share links (start it with --share-listen)", syncproto.ErrUnavailable)

// ShareInfo is a share link with the names people read.
type ShareInfo struct {
	manifest.Share
	State manifest.ShareState
	// RootName is "" when the root was removed.
	RootName   string
	ClientName string
}

// CreateShare creates a share link to a file of a root the session's
// client is a member of (else syncproto.ErrForbidden). The link follows
// the file's head unless req.HashPrefix pins a version (see FindVersion).
// The answer carries the token once: only its SHA-256 is stored.
func (s *Server) CreateShare(ctx context.Context, sess *syncproto.Session, req *syncpb.CreateShareRequest) (*syncpb.CreateShareResponse, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	r, err := s.memberRoot(ctx, st, req.GetRoot())
	if err != nil {
		return nil, err
	}
	p := req.GetPath()
	if err := relpath.Check(p); err != nil {
		return nil, err
	}
	ep := s.shareAt.Load()
	if ep == nil {
		return nil, errNoShareListener
	}
	now := s.now()
	ns := manifest.NewShare{Root: r.ID, Path: p, Client: st.client, MaxDownloads: uint64(req.GetMaxDownloads())}
	switch d := time.Duration(req.GetExpiresIn()); {
	case d < 0 || d > MaxShareLifetime:
		return nil, fmt.Errorf("%w: share expiry of %v, want 0 (never) to %v", syncproto.ErrBadRequest, d, MaxShareLifetime)
	case d > 0:
		ns.Expires = now.Add(d)
	}
	if prefix := req.GetHashPrefix(); prefix != "" {
		v, err := s.findVersion(ctx, r, p, prefix)
		if err != nil {
			return nil, err
		}
		ns.PinSeq = v.Seq
	}
	if n, err := s.countShares(ctx, st.client); err != nil {
		return nil, err
	} else if n >= MaxSharesPerClient {
		return nil, fmt.Errorf("%w: %d share links already, at most %d: stop some first", syncproto.ErrBadRequest, n, MaxSharesPerClient)
	}
	token, err := secret.NewToken()
	if err != nil {
		return nil, fmt.Errorf("server: share token: %w", err)
	}
	ns.Token = manifest.HashShareToken(token)
	sh, err := s.db.CreateShare(ctx, ns)
	switch {
	case errors.Is(err, manifest.ErrNotMember):
		return nil, fmt.Errorf("%w: not a member of root %.64q", syncproto.ErrForbidden, r.Name)
	case errors.Is(err, manifest.ErrNotFound):
		return nil, fmt.Errorf("%w: %q in root %q has no content to share (deleted or never synced)", syncproto.ErrNotFound, p, r.Name)
	case err != nil:
		return nil, fmt.Errorf("server: create share of %q in root %q: %w", p, r.Name, err)
	}
	s.log.Info("server: share link created", "share", sh.ID.String(), "root", r.Name, "path", p, "client", st.client,
		"max_downloads", sh.MaxDownloads, "expires", sh.Expires, "pinned", sh.Pin != nil)
	name := ""
	if c, err := s.db.Client(ctx, st.client); err == nil {
		name = c.Name
	}
	info := ShareInfo{Share: sh, State: manifest.ShareActive, RootName: r.Name, ClientName: name}
	return &syncpb.CreateShareResponse{Share: shareProto(info), Url: ep.url(token), Token: token, Port: uint32(ep.port)}, nil
}

// countShares counts the links client created.
func (s *Server) countShares(ctx context.Context, client uuid.UUID) (int, error) {
	n := 0
	err := s.db.ListShares(ctx, s.now(), func(sh manifest.Share, _ manifest.ShareState) error {
		if sh.Client == client {
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("server: list shares: %w", err)
	}
	return n, nil
}

// ListShares lists the links the session's client created, oldest first
// (the newest syncproto.MaxShares if there are more).
func (s *Server) ListShares(ctx context.Context, sess *syncproto.Session, _ *syncpb.ListSharesRequest) (*syncpb.ListSharesResponse, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	infos, err := s.shares(ctx, func(sh manifest.Share) bool { return sh.Client == st.client })
	if err != nil {
		return nil, err
	}
	infos = infos[max(0, len(infos)-syncproto.MaxShares):]
	resp := &syncpb.ListSharesResponse{Shares: make([]*syncpb.ShareInfo, len(infos))}
	for i, info := range infos {
		resp.Shares[i] = shareProto(info)
	}
	return resp, nil
}

// StopShare stops a link the session's client created, named by its id or
// by its token; another client's link is syncproto.ErrForbidden.
func (s *Server) StopShare(ctx context.Context, sess *syncproto.Session, req *syncpb.StopShareRequest) (*syncpb.StopShareResponse, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	id, err := s.shareIDOf(ctx, req.GetId(), req.GetToken())
	if err != nil {
		return nil, err
	}
	info, err := s.removeShare(ctx, id, func(sh manifest.Share) error {
		if sh.Client != st.client {
			return fmt.Errorf("%w: share link %s was created by another client; only it or the server's admin can stop it", syncproto.ErrForbidden, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &syncpb.StopShareResponse{Share: shareProto(info)}, nil
}

// shareIDOf finds the link named by id, or else by token.
func (s *Server) shareIDOf(ctx context.Context, id, token string) (manifest.ShareID, error) {
	if id != "" {
		sid, err := manifest.ParseShareID(strings.ToLower(id))
		if err != nil {
			return manifest.ShareID{}, fmt.Errorf("%w: %v", syncproto.ErrBadRequest, err)
		}
		return sid, nil
	}
	sh, err := s.db.ShareByToken(ctx, manifest.HashShareToken(token))
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return manifest.ShareID{}, fmt.Errorf("%w: no share link has that URL", syncproto.ErrNotFound)
	case err != nil:
		return manifest.ShareID{}, fmt.Errorf("server: find share link: %w", err)
	}
	return sh.ID, nil
}

// Shares lists every share link, oldest first, for the operator.
func (s *Server) Shares(ctx context.Context) ([]ShareInfo, error) {
	return s.shares(ctx, nil)
}

// RemoveShare stops the link named id (its hex form), whoever created it:
// the operator's stop. An unknown id is syncproto.ErrNotFound.
func (s *Server) RemoveShare(ctx context.Context, id string) (ShareInfo, error) {
	sid, err := s.shareIDOf(ctx, id, "")
	if err != nil {
		return ShareInfo{}, err
	}
	return s.removeShare(ctx, sid, nil)
}

func (s *Server) removeShare(ctx context.Context, id manifest.ShareID, check func(manifest.Share) error) (ShareInfo, error) {
	now := s.now()
	sh, err := s.db.RemoveShare(ctx, id, check)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return ShareInfo{}, fmt.Errorf("%w: no share link %s", syncproto.ErrNotFound, id)
	case errors.Is(err, syncproto.ErrForbidden):
		return ShareInfo{}, err
	case err != nil:
		return ShareInfo{}, fmt.Errorf("server: stop share link %s: %w", id, err)
	}
	s.log.Info("server: share link stopped", "share", id.String(), "downloads", sh.Downloads)
	infos, err := s.describeShares(ctx, []manifest.Share{sh})
	if err != nil {
		return ShareInfo{}, err
	}
	// The state it had when stopped, as far as the record tells.
	info := infos[0]
	if info.State = sh.StateAt(now); info.State == manifest.ShareActive && info.RootName == "" {
		info.State = manifest.ShareRevoked
	}
	return info, nil
}

// shares lists the links keep accepts (nil: all), oldest first.
func (s *Server) shares(ctx context.Context, keep func(manifest.Share) bool) ([]ShareInfo, error) {
	now := s.now()
	var list []manifest.Share
	states := map[manifest.ShareID]manifest.ShareState{}
	err := s.db.ListShares(ctx, now, func(sh manifest.Share, st manifest.ShareState) error {
		if keep == nil || keep(sh) {
			list = append(list, sh)
			states[sh.ID] = st
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("server: list shares: %w", err)
	}
	infos, err := s.describeShares(ctx, list)
	if err != nil {
		return nil, err
	}
	for i := range infos {
		infos[i].State = states[infos[i].ID]
	}
	slices.SortFunc(infos, func(a, b ShareInfo) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID.String(), b.ID.String()))
	})
	return infos, nil
}

// describeShares adds root and client names.
func (s *Server) describeShares(ctx context.Context, list []manifest.Share) ([]ShareInfo, error) {
	roots, err := s.db.ListRoots(ctx)
	if err != nil {
		return nil, fmt.Errorf("server: list roots: %w", err)
	}
	rootNames := make(map[manifest.RootID]string, len(roots))
	for _, r := range roots {
		rootNames[r.ID] = r.Name
	}
	clientNames := map[uuid.UUID]string{}
	out := make([]ShareInfo, len(list))
	for i, sh := range list {
		name, ok := clientNames[sh.Client]
		if !ok {
			if c, err := s.db.Client(ctx, sh.Client); err == nil {
				name = c.Name
			}
			clientNames[sh.Client] = name
		}
		out[i] = ShareInfo{Share: sh, RootName: rootNames[sh.Root], ClientName: name}
	}
	return out, nil
}

// shareProto is the wire form of a link.
func shareProto(info ShareInfo) *syncpb.ShareInfo {
	m := &syncpb.ShareInfo{
		Id: info.ID.String(), Root: info.RootName, Path: info.Path, ClientId: info.Client.String(), ClientName: info.ClientName,
		Created: unixNano(info.Created), Expires: unixNano(info.Expires),
		MaxDownloads: uint32(min(info.MaxDownloads, 1<<32-1)), Downloads: uint32(min(info.Downloads, 1<<32-1)),
		LastDownload: unixNano(info.LastDownload), State: string(info.State),
	}
	if p := info.Pin; p != nil {
		m.PinnedHash, m.PinnedSeq, m.PinnedSize = slices.Clone(p.Hash[:]), p.Seq, int64(p.Size)
	}
	return m
}

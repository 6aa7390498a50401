package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// MaxRootNameLen bounds a root name, in bytes.
const MaxRootNameLen = 255

// checkRootName applies the rule for root names: a root's name is a
// directory name under DataDir/sync, so it must be a valid one-segment
// sync path.
func checkRootName(name string) error {
	if err := relpath.Check(name); err != nil {
		return err // wraps ErrInvalidPath and quotes the name
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("%w: root name %q contains '/'", syncproto.ErrInvalidPath, name)
	}
	if len(name) > MaxRootNameLen {
		return fmt.Errorf("%w: root name of %d bytes, at most %d", syncproto.ErrInvalidPath, len(name), MaxRootNameLen)
	}
	return nil
}

func checkRootPassword(pw string) error {
	switch {
	case pw == "":
		return fmt.Errorf("%w: empty root password", syncproto.ErrBadRequest)
	case len(pw) > secret.MaxSecretLen:
		return fmt.Errorf("%w: root password of %d bytes, at most %d", syncproto.ErrBadRequest, len(pw), secret.MaxSecretLen)
	}
	return nil
}

// memberRoot returns the root called name if the session's client is a
// member. A root that does not exist is refused the same way as one the
// client is not in, so non-members learn nothing from the answer.
func (s *Server) memberRoot(ctx context.Context, st *session, name string) (manifest.Root, error) {
	// Built only when refused: this runs for every transaction.
	forbidden := func() error { return fmt.Errorf("%w: not a member of root %.64q", syncproto.ErrForbidden, name) }
	r, err := s.db.RootByName(ctx, name)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return manifest.Root{}, forbidden()
	case err != nil:
		return manifest.Root{}, fmt.Errorf("server: root %q: %w", name, err)
	}
	ok, err := s.db.IsMember(ctx, r.ID, st.client)
	switch {
	case err != nil:
		return manifest.Root{}, fmt.Errorf("server: membership of %s in root %q: %w", st.client, name, err)
	case !ok:
		return manifest.Root{}, forbidden()
	}
	return r, nil
}

// maxCachedRoots bounds a session's cache of membership checks.
const maxCachedRoots = 64

// proposalRoot is memberRoot for proposals, which come many at a time
// (a batch is up to a thousand): a check a session already passed is
// reused until a root or a membership changes anywhere. The root's seq
// may be behind; a proposal reads heads, not the root's seq.
func (s *Server) proposalRoot(ctx context.Context, st *session, name string) (manifest.Root, error) {
	gen := s.db.RootsGeneration() // before the lookup: see RootsGeneration
	st.mu.Lock()
	m, ok := st.roots[name]
	st.mu.Unlock()
	if ok && m.gen == gen {
		return m.root, nil
	}
	r, err := s.memberRoot(ctx, st, name)
	if err != nil {
		return r, err
	}
	st.mu.Lock()
	if st.roots == nil || len(st.roots) >= maxCachedRoots {
		st.roots = make(map[string]memberOf)
	}
	st.roots[name] = memberOf{root: r, gen: gen}
	st.mu.Unlock()
	return r, nil
}

// rootInfo describes a root to a member: everything, with the members.
func (s *Server) rootInfo(ctx context.Context, r manifest.Root) (*syncpb.RootInfo, error) {
	members, err := s.db.MembersOfRoot(ctx, r.ID)
	if err != nil {
		return nil, fmt.Errorf("server: members of root %q: %w", r.Name, err)
	}
	info := &syncpb.RootInfo{
		Name:     r.Name,
		Chunking: &syncpb.ChunkParams{Min: r.Chunking.Min, Avg: r.Chunking.Avg, Max: r.Chunking.Max},
		Seq:      r.Seq,
		Created:  unixNano(r.Created),
		Owner:    r.Owner.String(),
	}
	for _, m := range members {
		info.Members = append(info.Members, m.Client.String())
	}
	return info, nil
}

// RegisterRoot creates a root owned by the session's client, with the
// default chunking parameters.
func (s *Server) RegisterRoot(ctx context.Context, sess *syncproto.Session, req *syncpb.RegisterRootRequest) (*syncpb.RootInfo, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	if err := checkRootName(name); err != nil {
		return nil, err
	}
	if err := checkRootPassword(req.GetRootPassword()); err != nil {
		return nil, err
	}
	release, err := acquire(ctx, s.passwordSlots)
	if err != nil {
		return nil, err
	}
	p := chunker.DefaultParams
	r, err := s.db.CreateRoot(ctx, manifest.NewRoot{
		Name: name, Owner: st.client, Password: req.GetRootPassword(),
		Chunking: manifest.ChunkParams{Min: uint32(p.Min), Avg: uint32(p.Avg), Max: uint32(p.Max)},
	})
	release()
	switch {
	case errors.Is(err, manifest.ErrExists):
		return nil, fmt.Errorf("%w: root %q", syncproto.ErrExists, name)
	case err != nil:
		return nil, fmt.Errorf("server: create root %q: %w", name, err)
	}
	s.log.Info("server: root registered", "root", name, "owner", st.client)
	return s.rootInfo(ctx, r)
}

// JoinRoot makes the session's client a member of a root, given the
// root's password. Joining a root one is already in is not an error.
func (s *Server) JoinRoot(ctx context.Context, sess *syncproto.Session, req *syncpb.JoinRootRequest) (*syncpb.RootInfo, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	if len(name) > MaxRootNameLen || len(req.GetRootPassword()) > secret.MaxSecretLen {
		return nil, fmt.Errorf("%w: root name or password too long", syncproto.ErrBadRequest)
	}
	release, err := acquire(ctx, s.passwordSlots)
	if err != nil {
		return nil, err
	}
	_, err = s.db.Join(ctx, name, st.client, req.GetRootPassword())
	release()
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return nil, fmt.Errorf("%w: root %.64q", syncproto.ErrNotFound, name)
	case errors.Is(err, manifest.ErrBadCredentials):
		return nil, fmt.Errorf("%w: root %.64q", syncproto.ErrBadPassword, name)
	case errors.Is(err, manifest.ErrExists):
		// Already a member, and the password was right.
	case err != nil:
		return nil, fmt.Errorf("server: join root %q: %w", name, err)
	default:
		s.log.Info("server: root joined", "root", name, "client", st.client)
	}
	// Re-read: the seq may have moved since the password check (and on
	// ErrExists, Join returned no root).
	r, err := s.db.RootByName(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("server: root %q: %w", name, err)
	}
	return s.rootInfo(ctx, r)
}

// LeaveRoot ends the session's client's membership of a root; its
// watches stop receiving that root's notices.
func (s *Server) LeaveRoot(ctx context.Context, sess *syncproto.Session, req *syncpb.LeaveRootRequest) error {
	st, err := sessionOf(sess)
	if err != nil {
		return err
	}
	r, err := s.memberRoot(ctx, st, req.GetName())
	if err != nil {
		return err
	}
	err = s.db.RemoveMember(ctx, r.ID, st.client)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return fmt.Errorf("%w: not a member of root %.64q", syncproto.ErrForbidden, r.Name)
	case err != nil:
		return fmt.Errorf("server: leave root %q: %w", r.Name, err)
	}
	s.broker.dropClient(r.ID, st.client)
	s.log.Info("server: root left", "root", r.Name, "client", st.client)
	return nil
}

// ListRoots lists the roots the session's client belongs to, or with
// Remote every root on the server; roots the client is not in are listed
// by name only.
func (s *Server) ListRoots(ctx context.Context, sess *syncproto.Session, req *syncpb.ListRootsRequest) (*syncpb.ListRootsResponse, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	mine, err := s.db.RootsOfClient(ctx, st.client)
	if err != nil {
		return nil, fmt.Errorf("server: roots of client %s: %w", st.client, err)
	}
	member := make(map[manifest.RootID]bool, len(mine))
	for _, r := range mine {
		member[r.ID] = true
	}
	roots := mine
	if req.GetRemote() {
		if roots, err = s.db.ListRoots(ctx); err != nil {
			return nil, fmt.Errorf("server: list roots: %w", err)
		}
	}
	resp := &syncpb.ListRootsResponse{}
	for _, r := range roots {
		if !member[r.ID] {
			resp.Roots = append(resp.Roots, &syncpb.RootInfo{Name: r.Name})
			continue
		}
		info, err := s.rootInfo(ctx, r)
		if err != nil {
			return nil, err
		}
		resp.Roots = append(resp.Roots, info)
	}
	return resp, nil
}

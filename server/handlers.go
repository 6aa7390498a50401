package server

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// The conflict, history and retention requests of clients. Each checks
// the session's membership of the root (memberRoot) and the path
// (relpath.Check), then does what the operator's methods of the same
// name do.

// ListConflicts lists a root's unresolved conflicts in path order, or the
// one on req.Path, at most syncproto.MaxConflicts of them.
func (s *Server) ListConflicts(ctx context.Context, sess *syncproto.Session, req *syncpb.ListConflictsRequest) (*syncpb.ListConflictsResponse, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	r, err := s.memberRoot(ctx, st, req.GetRoot())
	if err != nil {
		return nil, err
	}
	if p := req.GetPath(); p != "" {
		if err := relpath.Check(p); err != nil {
			return nil, err
		}
	}
	cs, err := s.conflicts(ctx, r, req.GetPath())
	if err != nil {
		return nil, err
	}
	resp := &syncpb.ListConflictsResponse{}
	for _, c := range cs[:min(len(cs), syncproto.MaxConflicts)] {
		pc := &syncpb.Conflict{Path: c.Path, Candidates: make([]*syncpb.ConflictCandidate, len(c.Candidates))}
		for i, cand := range c.Candidates {
			pc.Candidates[i] = conflictCandidate(cand)
		}
		resp.Conflicts = append(resp.Conflicts, pc)
	}
	return resp, nil
}

func conflictCandidate(c CandidateInfo) *syncpb.ConflictCandidate {
	pc := &syncpb.ConflictCandidate{
		Side: syncpb.ConflictCandidate_SIDE_CLIENT, ClientName: c.ClientName, Size: int64(c.Size), Mode: c.Mode,
		Mtime: unixNano(c.MTime), Deleted: c.Deleted, BaseSeq: c.BaseSeq, Created: unixNano(c.Created), Name: c.Name,
	}
	if c.Side == SideServer {
		pc.Side = syncpb.ConflictCandidate_SIDE_SERVER
	}
	if c.Client != uuid.Nil {
		pc.ClientId = c.Client.String()
	}
	if !c.Deleted {
		pc.Hash = slices.Clone(c.Hash[:])
	}
	return pc
}

// ResolveConflict resolves a conflict as Resolve does; "client" keeps the
// session's own side.
func (s *Server) ResolveConflict(ctx context.Context, sess *syncproto.Session, req *syncpb.ResolveConflictRequest) (*syncpb.CommitResponse, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	r, err := s.memberRoot(ctx, st, req.GetRoot())
	if err != nil {
		return nil, err
	}
	if err := relpath.Check(req.GetPath()); err != nil {
		return nil, err
	}
	v, err := s.resolve(ctx, r, req.GetPath(), req.GetKeep(), st.client)
	if err != nil {
		return nil, err
	}
	return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_COMMITTED, Head: fileHead(req.GetPath(), v.Head())}, nil
}

// History lists a file's versions, oldest first: the newest req.Limit of
// them (0: all), and never more than syncproto.MaxHistoryEntries.
func (s *Server) History(ctx context.Context, sess *syncproto.Session, req *syncpb.HistoryRequest) (*syncpb.HistoryResponse, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	r, err := s.memberRoot(ctx, st, req.GetRoot())
	if err != nil {
		return nil, err
	}
	if err := relpath.Check(req.GetPath()); err != nil {
		return nil, err
	}
	vs, err := s.versions(ctx, r, req.GetPath())
	if err != nil {
		return nil, err
	}
	limit := syncproto.MaxHistoryEntries
	if l := int(req.GetLimit()); l > 0 {
		limit = min(limit, l)
	}
	vs = vs[max(0, len(vs)-limit):]
	names := make(map[uuid.UUID]string)
	resp := &syncpb.HistoryResponse{Versions: make([]*syncpb.HistoryEntry, len(vs))}
	for i, v := range vs {
		e := &syncpb.HistoryEntry{
			Seq: v.Seq, Size: int64(v.Size), Mode: v.Mode, Mtime: unixNano(v.MTime), Time: unixNano(v.WallTime), Deleted: v.Deleted,
		}
		if !v.Deleted {
			e.Hash = slices.Clone(v.Hash[:])
		}
		if v.Client != uuid.Nil {
			e.ClientId = v.Client.String()
			name, ok := names[v.Client]
			if !ok {
				if c, err := s.db.Client(ctx, v.Client); err == nil {
					name = c.Name
				}
				names[v.Client] = name
			}
			e.ClientName = name
		}
		resp.Versions[i] = e
	}
	return resp, nil
}

// Restore makes an old version the head, as RestoreVersion does, written
// by the session's client. The answer is OUTCOME_COMMITTED with the new
// head, or OUTCOME_CONVERGED when the head already had that content.
func (s *Server) Restore(ctx context.Context, sess *syncproto.Session, req *syncpb.RestoreRequest) (*syncpb.CommitResponse, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	r, err := s.memberRoot(ctx, st, req.GetRoot())
	if err != nil {
		return nil, err
	}
	if err := relpath.Check(req.GetPath()); err != nil {
		return nil, err
	}
	v, committed, err := s.restore(ctx, r, req.GetPath(), req.GetHashPrefix(), st.client)
	if err != nil {
		return nil, err
	}
	outcome := syncpb.CommitResponse_OUTCOME_COMMITTED
	if !committed {
		outcome = syncpb.CommitResponse_OUTCOME_CONVERGED
	}
	return &syncpb.CommitResponse{Outcome: outcome, Head: fileHead(req.GetPath(), v.Head())}, nil
}

// SetRetention sets a root's retention policy (any member may) and
// applies it at once.
func (s *Server) SetRetention(ctx context.Context, sess *syncproto.Session, req *syncpb.SetRetentionRequest) error {
	st, err := sessionOf(sess)
	if err != nil {
		return err
	}
	r, err := s.memberRoot(ctx, st, req.GetRoot())
	if err != nil {
		return err
	}
	ret, err := retentionOf(req)
	if err != nil {
		return err
	}
	return s.setRetention(ctx, r, ret)
}

// retentionOf checks a SetRetentionRequest's kind and value: KEEP_LAST
// needs a count of at least 1, KEEP_WITHIN a positive duration, the other
// kinds a value of 0.
func retentionOf(req *syncpb.SetRetentionRequest) (manifest.Retention, error) {
	v := req.GetValue()
	var ret manifest.Retention
	ok := false
	switch req.GetKind() {
	case syncpb.SetRetentionRequest_KIND_KEEP_ALL:
		ret, ok = manifest.Retention{Kind: manifest.KeepAll}, v == 0
	case syncpb.SetRetentionRequest_KIND_KEEP_LAST:
		ret, ok = manifest.Retention{Kind: manifest.KeepLast, Value: v}, v >= 1
	case syncpb.SetRetentionRequest_KIND_KEEP_WITHIN:
		ret, ok = manifest.Retention{Kind: manifest.KeepWithin, Value: v}, v > 0
	case syncpb.SetRetentionRequest_KIND_STAGGERED:
		ret, ok = manifest.Retention{Kind: manifest.Staggered}, v == 0
	default:
		return manifest.Retention{}, fmt.Errorf("%w: unknown retention kind %d", syncproto.ErrBadRequest, req.GetKind())
	}
	if !ok {
		return manifest.Retention{}, fmt.Errorf("%w: retention %s with value %d", syncproto.ErrBadRequest, req.GetKind(), v)
	}
	return ret, nil
}

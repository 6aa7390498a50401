package server

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/conflict"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
)

// Sides of a conflict, as CandidateInfo.Side and Resolve's keep spell them.
const (
	SideServer = conflict.ServerSide // "server"
	SideClient = "client"
)

// ConflictInfo is an unresolved conflict on one path.
type ConflictInfo struct {
	Path       string
	Candidates []CandidateInfo
}

// CandidateInfo is one side of a conflict, as people see it.
type CandidateInfo struct {
	// Side is SideServer (the head when the conflict arose) or SideClient
	// (a client's proposal).
	Side string
	// Client wrote the side: the proposing client, or for the server side
	// the author of the head it was (uuid.Nil if that was the operator,
	// or its version is gone). ClientName is its device name, "" if none.
	Client     uuid.UUID
	ClientName string
	Hash       cas.ID // zero for a deletion
	Size       uint64
	Mode       uint32
	MTime      time.Time
	Deleted    bool
	// BaseSeq is the version the side started from (the head's own seq
	// for the server side).
	BaseSeq uint64
	// Created is when the server kept the side.
	Created time.Time
	// Name is the side's file name in the conflict view (and in a
	// client's conflict download): <side>-<hash8><ext>.
	Name string
}

// Conflicts lists the unresolved conflicts of root, in path order, or
// the one on path when path is not empty (none: an empty list). A
// missing root is syncproto.ErrNotFound.
func (s *Server) Conflicts(ctx context.Context, root, p string) ([]ConflictInfo, error) {
	if p != "" {
		if err := relpath.Check(p); err != nil {
			return nil, err
		}
	}
	r, err := s.rootByName(ctx, root)
	if err != nil {
		return nil, err
	}
	return s.conflicts(ctx, r, p)
}

func (s *Server) conflicts(ctx context.Context, r manifest.Root, p string) ([]ConflictInfo, error) {
	var cs []manifest.Conflict
	if p == "" {
		var err error
		if cs, err = s.db.ListConflicts(ctx, r.ID); err != nil {
			return nil, fmt.Errorf("server: conflicts of root %q: %w", r.Name, err)
		}
	} else {
		c, err := s.db.Conflict(ctx, r.ID, p)
		switch {
		case errors.Is(err, manifest.ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("server: conflict on %q in root %q: %w", p, r.Name, err)
		}
		cs = []manifest.Conflict{c}
	}
	names := make(map[uuid.UUID]string)
	out := make([]ConflictInfo, 0, len(cs))
	for _, c := range cs {
		out = append(out, ConflictInfo{Path: c.Path, Candidates: s.candidateInfos(ctx, r, c.Path, c.Candidates, names)})
	}
	return out, nil
}

// candidateInfos describes the candidates of the conflict on p; names
// caches client names across calls.
func (s *Server) candidateInfos(ctx context.Context, r manifest.Root, p string, cands []manifest.Candidate, names map[uuid.UUID]string) []CandidateInfo {
	out := make([]CandidateInfo, len(cands))
	for i, c := range cands {
		info := CandidateInfo{
			Side: SideClient, Client: c.Client, Hash: c.Hash, Size: c.Size, Mode: c.Mode, MTime: c.MTime,
			Deleted: c.Deleted, BaseSeq: c.BaseSeq, Created: c.Created, Name: s.candidateName(ctx, p, c),
		}
		if c.Kind == manifest.CandidateServer {
			info.Side = SideServer
			info.Client = s.serverSideAuthor(ctx, r, p, c)
		}
		if info.Client != uuid.Nil {
			name, ok := names[info.Client]
			if !ok {
				if cl, err := s.db.Client(ctx, info.Client); err == nil {
					name = cl.Name
				}
				names[info.Client] = name
			}
			info.ClientName = name
		}
		out[i] = info
	}
	return out
}

// serverSideAuthor is the client that wrote the head a server candidate
// was: the author of its version, if that version is still there.
func (s *Server) serverSideAuthor(ctx context.Context, r manifest.Root, p string, c manifest.Candidate) uuid.UUID {
	v, err := s.db.Version(ctx, r.ID, p, c.BaseSeq)
	if err != nil || v.Deleted != c.Deleted || v.Hash != c.Hash {
		return uuid.Nil
	}
	return v.Client
}

// Resolve resolves the conflict on path by keeping one side, named by
// keep:
//
//   - "server": the server side (the head when the conflict arose);
//   - "client": the side of client `by` (uuid.Nil is refused, since the
//     operator has no side);
//   - a client's UUID or device name: that client's side (a name that
//     several of the sides' clients share is refused, naming them);
//   - else a hex prefix of at least 8 digits of a side's content hash.
//
// In one manifest transaction, the losing sides whose content is not
// already a version of the file become versions (their client as
// author; deletions have no content and are skipped), the kept side
// becomes the new head (its client as author, or for the server side the
// head's author), and the conflict is cleared. Then the conflict view is
// removed, the latest view updated, and the root's clients get MUST_SYNC
// and FORCE_SYNC, so every copy becomes the kept one (what a client had
// locally stays in history).
//
// A commit that lands meanwhile, or a side added meanwhile, makes it
// decide again from the new state. No conflict on the path, or no side
// matching keep, is syncproto.ErrNotFound; a bad or ambiguous keep is
// syncproto.ErrBadRequest.
func (s *Server) Resolve(ctx context.Context, root, p, keep string, by uuid.UUID) (manifest.Version, error) {
	if err := relpath.Check(p); err != nil {
		return manifest.Version{}, err
	}
	r, err := s.rootByName(ctx, root)
	if err != nil {
		return manifest.Version{}, err
	}
	return s.resolve(ctx, r, p, keep, by)
}

// maxResolveRounds bounds how often Resolve decides again after a commit
// or a new side got in first. Each round is lost only to another writer
// making progress; the bound keeps a stream of them from starving the
// resolution forever.
const maxResolveRounds = 16

func (s *Server) resolve(ctx context.Context, r manifest.Root, p, keep string, by uuid.UUID) (manifest.Version, error) {
	for round := 1; ; round++ {
		c, err := s.db.Conflict(ctx, r.ID, p)
		switch {
		case errors.Is(err, manifest.ErrNotFound):
			return manifest.Version{}, fmt.Errorf("%w: no conflict on %q in root %q", syncproto.ErrNotFound, p, r.Name)
		case err != nil:
			return manifest.Version{}, fmt.Errorf("server: conflict on %q in root %q: %w", p, r.Name, err)
		}
		infos := s.candidateInfos(ctx, r, p, c.Candidates, make(map[uuid.UUID]string))
		win, err := pickCandidate(infos, keep, by)
		if err != nil {
			return manifest.Version{}, fmt.Errorf("resolve %q in root %q: %w", p, r.Name, err)
		}
		head, err := s.head(ctx, r.ID, p)
		if err != nil {
			return manifest.Version{}, err
		}
		mp, err := s.resolution(ctx, r, p, c.Candidates, infos, win, head)
		if err != nil {
			return manifest.Version{}, err
		}
		if mp.Check, err = s.contentPresent(ctx, mp.Hash, mp.Deleted); err != nil {
			return manifest.Version{}, err
		}
		v, err := s.db.Commit(ctx, mp)
		if (errors.Is(err, manifest.ErrHeadChanged) || errors.Is(err, manifest.ErrConflictChanged)) && round < maxResolveRounds {
			continue
		}
		if err != nil {
			return manifest.Version{}, fmt.Errorf("server: resolve %q in root %q: %w", p, r.Name, err)
		}
		if s.views != nil {
			s.views.updateConflict(r.ID, r.Name, p)
		}
		s.committed(ctx, r, p, v)
		if err := s.ForceSync(ctx, r.Name, p); err != nil {
			// The resolution stands; a client that misses the push
			// proposes its copy again and hears it was superseded.
			s.log.Warn("server: force-sync after resolution", "root", r.Name, "path", p, "err", err)
		}
		s.log.Info("server: conflict resolved", "root", r.Name, "path", p, "keep", keep,
			"side", infos[win].Side, "client", infos[win].Client, "deleted", v.Deleted, "hash", v.Hash.String(),
			"seq", v.Seq, "kept_in_history", len(mp.History), "by", by)
		return v, nil
	}
}

// resolution builds the commit that keeps side win of the conflict cands:
// the losers not yet in the file's history first, then the winner on top
// of head.
func (s *Server) resolution(ctx context.Context, r manifest.Root, p string, cands []manifest.Candidate, infos []CandidateInfo, win int, head *manifest.Head) (manifest.Proposal, error) {
	known := cas.NewIDSet()
	if head != nil {
		vs, err := s.versions(ctx, r, p)
		if err != nil {
			return manifest.Proposal{}, err
		}
		for _, v := range vs {
			if !v.Deleted {
				known.Insert(v.Hash)
			}
		}
	}
	w := cands[win]
	if !w.Deleted {
		known.Insert(w.Hash) // the winner becomes a version itself
	}
	var history []manifest.Version
	for i, c := range cands {
		if i == win || c.Deleted || known.Has(c.Hash) {
			continue
		}
		known.Insert(c.Hash)
		history = append(history, manifest.Version{
			Hash: c.Hash, Size: c.Size, Mode: c.Mode, MTime: c.MTime, Client: infos[i].Client,
		})
	}
	mp := manifest.Proposal{
		Root: r.ID, Path: p, Hash: w.Hash, Size: w.Size, Mode: w.Mode, MTime: w.MTime, Deleted: w.Deleted,
		Client: infos[win].Client, Conflict: cands, History: history,
	}
	if head != nil {
		mp.BaseSeq, mp.BaseHash = head.Seq, head.Hash
	}
	return mp, nil
}

// pickCandidate returns the index of the side keep names (see Resolve).
// by is the caller's client for "client".
func pickCandidate(cands []CandidateInfo, keep string, by uuid.UUID) (int, error) {
	clientSide := func(id uuid.UUID) int {
		for i, c := range cands {
			if c.Side == SideClient && c.Client == id {
				return i
			}
		}
		return -1
	}
	notFound := func(what string) error {
		return fmt.Errorf("%w: no side %s; the sides are %s", syncproto.ErrNotFound, what, describeSides(cands))
	}
	switch keep {
	case "":
		return 0, fmt.Errorf("%w: say which side to keep: server, client, a client or a content hash", syncproto.ErrBadRequest)
	case SideServer:
		for i, c := range cands {
			if c.Side == SideServer {
				return i, nil
			}
		}
		return 0, notFound("server")
	case SideClient:
		if by == uuid.Nil {
			return 0, fmt.Errorf("%w: \"client\" keeps the caller's own side, and the operator has none: name the client", syncproto.ErrBadRequest)
		}
		if i := clientSide(by); i >= 0 {
			return i, nil
		}
		return 0, notFound("of client " + by.String())
	}
	// uuid.Parse also takes 32 bare hex digits, which may as well be a
	// hash prefix: a client ID only wins if such a side exists.
	if id, err := uuid.Parse(keep); err == nil {
		if i := clientSide(id); i >= 0 {
			return i, nil
		}
	}
	named := -1
	var sharing []string
	for i, c := range cands {
		if c.Side == SideClient && c.ClientName == keep {
			if named < 0 {
				named = i
			}
			sharing = append(sharing, c.Client.String())
		}
	}
	switch {
	case len(sharing) > 1:
		return 0, fmt.Errorf("%w: clients %s are all called %q: name one by its ID", syncproto.ErrBadRequest, strings.Join(sharing, ", "), keep)
	case named >= 0:
		return named, nil
	}
	prefix, err := cas.ParsePrefix(keep)
	if err != nil {
		if isHex(keep) {
			return 0, fmt.Errorf("%w: a hash prefix needs at least %d hex digits, got %q", syncproto.ErrBadRequest, cas.MinPrefixLen, keep)
		}
		return 0, notFound(fmt.Sprintf("%q", keep))
	}
	match := -1
	var hashes []string
	for i, c := range cands {
		if c.Deleted || !prefix.Matches(c.Hash) {
			continue
		}
		switch {
		case match < 0:
			match = i
			hashes = append(hashes, c.Hash.String())
		case c.Hash != cands[match].Hash:
			if !slices.Contains(hashes, c.Hash.String()) {
				hashes = append(hashes, c.Hash.String())
			}
		case c.Side == SideServer:
			match = i // the same content on several sides: the server's
		}
	}
	switch {
	case len(hashes) > 1:
		return 0, fmt.Errorf("%w: ambiguous prefix %s, matches %s", syncproto.ErrBadRequest, prefix, strings.Join(hashes, ", "))
	case match < 0:
		return 0, notFound("with a hash starting with " + prefix.String())
	}
	return match, nil
}

func isHex(s string) bool {
	return s != "" && strings.Trim(s, "0123456789abcdefABCDEF") == ""
}

// describeSides lists the sides for an error message: "server
// (1a2b3c4d), laptop 5f0e…-… (deleted)".
func describeSides(cands []CandidateInfo) string {
	parts := make([]string, len(cands))
	for i, c := range cands {
		content := "deleted"
		if !c.Deleted {
			content = c.Hash.Short()
		}
		switch {
		case c.Side == SideServer:
			parts[i] = fmt.Sprintf("server (%s)", content)
		case c.ClientName != "":
			parts[i] = fmt.Sprintf("%s %s (%s)", c.ClientName, c.Client, content)
		default:
			parts[i] = fmt.Sprintf("%s (%s)", c.Client, content)
		}
	}
	return strings.Join(parts, ", ")
}

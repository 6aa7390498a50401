package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/conflict"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// maxDecideRounds bounds how often Propose decides again after losing a
// compare-and-swap race. A lost race never turns into a fast-forward (the
// head moved away from the base), so the second round settles it; the
// bound only guards against a bug looping forever.
const maxDecideRounds = 4

// proposal is a validated ProposeRequest.
type proposal struct {
	path       string
	baseSeq    uint64
	baseHash   cas.ID
	hash       cas.ID
	size       uint64
	mode       uint32
	mtime      time.Time
	deleted    bool
	lastUpdate uint64
	chunks     []manifest.Chunk
	ids        []cas.ID // distinct chunk IDs
}

func (p *proposal) decisionInput() conflict.Proposal {
	return conflict.Proposal{BaseSeq: p.baseSeq, BaseHash: p.baseHash, Hash: p.hash, Deleted: p.deleted, Mode: p.mode}
}

// hasContent reports whether the proposal names chunks: not a deletion and
// not the empty file.
func (p *proposal) hasContent() bool { return !p.deleted && p.size > 0 }

// oneChunk reports whether the content is one chunk, whose ID is then the
// content hash.
func (p *proposal) oneChunk() bool {
	return p.hasContent() && len(p.chunks) == 1 && p.chunks[0].ID == p.hash
}

// smallList is the longest chunk list parseProposal dedups without a map.
const smallList = 16

// parseProposal checks everything about a proposal that does not need the
// database: path, hashes, sizes and the chunk list against the root's
// largest chunk.
func parseProposal(req *syncpb.ProposeRequest, refs []syncproto.ChunkRef, maxChunk uint32) (*proposal, error) {
	p := &proposal{
		path: req.GetPath(), baseSeq: req.GetBaseSeq(), mode: req.GetMode(),
		deleted: req.GetDeleted(), lastUpdate: req.GetLastUpdate(),
	}
	if err := relpath.Check(p.path); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: propose %q: %s", syncproto.ErrBadRequest, p.path, fmt.Sprintf(format, args...))
	}
	var err error
	if len(req.GetBaseHash()) > 0 {
		if p.baseHash, err = cas.IDFromBytes(req.GetBaseHash()); err != nil {
			return nil, bad("base hash of %d bytes", len(req.GetBaseHash()))
		}
	}
	if len(req.GetHash()) > 0 {
		if p.hash, err = cas.IDFromBytes(req.GetHash()); err != nil {
			return nil, bad("hash of %d bytes", len(req.GetHash()))
		}
	}
	if req.GetSize() < 0 {
		return nil, bad("size %d", req.GetSize())
	}
	p.size = uint64(req.GetSize())
	if req.GetMtime() != 0 {
		p.mtime = time.Unix(0, req.GetMtime()).UTC()
	}
	if int(req.GetChunkCount()) != len(refs) {
		return nil, bad("chunk_count %d but %d chunks", req.GetChunkCount(), len(refs))
	}
	switch {
	case p.deleted && (!p.hash.IsZero() || p.size != 0 || len(refs) != 0):
		return nil, bad("a deletion carries no hash, size or chunks")
	case p.deleted:
		return p, nil
	case p.hash.IsZero():
		return nil, bad("no content hash")
	case p.size == 0 && (p.hash != manifest.EmptyHash || len(refs) != 0):
		return nil, bad("an empty file has the empty hash and no chunks")
	case p.size == 0:
		return p, nil
	case len(refs) == 0:
		return nil, bad("%d bytes without chunks", p.size)
	case len(refs) > manifest.MaxChunks:
		return nil, bad("%d chunks, at most %d", len(refs), manifest.MaxChunks)
	}
	p.chunks = make([]manifest.Chunk, len(refs))
	// Most proposals are small files of one or a few chunks: a map to
	// find repeated chunks would cost more than the rest of the parse.
	var seen cas.IDSet
	if len(refs) > smallList {
		seen = make(cas.IDSet, len(refs))
	}
	var total uint64
	for i, r := range refs {
		if r.Size == 0 || r.Size > maxChunk {
			return nil, bad("chunk %d (%s) of %d bytes, the root allows 1 to %d", i, r.ID.Short(), r.Size, maxChunk)
		}
		total += uint64(r.Size)
		p.chunks[i] = manifest.Chunk{ID: r.ID, Size: r.Size}
		switch {
		case seen == nil:
			if !slices.Contains(p.ids, r.ID) {
				p.ids = append(p.ids, r.ID)
			}
		case !seen.Has(r.ID):
			seen.Insert(r.ID)
			p.ids = append(p.ids, r.ID)
		}
	}
	if total != p.size {
		return nil, bad("chunks add up to %d bytes, the file has %d", total, p.size)
	}
	return p, nil
}

// Propose is please-sync: it decides a proposal against the file's head
// (package conflict) and commits it, reports it converged, or keeps it as a
// conflict candidate. The commit re-checks in its own transaction that
// every chunk is in the store, so garbage collection cannot remove one
// between the upload and the commit unnoticed.
func (s *Server) Propose(ctx context.Context, sess *syncproto.Session, req *syncpb.ProposeRequest, refs []syncproto.ChunkRef) (*syncpb.CommitResponse, error) {
	return s.propose(ctx, sess, req, refs, nil)
}

// PrepareBatch implements syncproto.BatchPreparer: the heads of a batch's
// paths and the chunks of its one-chunk files are read in two
// transactions, not two per item. A badger transaction waits for the
// commits in flight, so a transaction per item had the items of a batch
// queue behind each other's commits.
func (s *Server) PrepareBatch(ctx context.Context, sess *syncproto.Session, root string, items []syncproto.BatchItem) syncproto.ProposeFunc {
	pre := s.lookUpBatch(ctx, sess, root, items)
	return func(ctx context.Context, req *syncpb.ProposeRequest, refs []syncproto.ChunkRef) (*syncpb.CommitResponse, error) {
		return s.propose(ctx, sess, req, refs, pre)
	}
}

// batchLookups is what PrepareBatch found for a batch. They are hints
// taken before any item is decided: a head that changed since is caught
// by the commit (which decides again), a chunk not found is looked up
// again, and the commit checks every chunk's presence itself.
type batchLookups struct {
	root   manifest.RootID
	parsed map[*syncpb.ProposeRequest]*proposal // the items parsed for the lookups
	heads  map[string]*manifest.Head            // nil: no head
	chunks map[cas.ID]cas.ChunkInfo             // found chunks only
}

// lookUpBatch reads what items need; nil when it cannot (the item's own
// lookups then report why).
func (s *Server) lookUpBatch(ctx context.Context, sess *syncproto.Session, root string, items []syncproto.BatchItem) *batchLookups {
	st, err := sessionOf(sess)
	if err != nil {
		return nil
	}
	r, err := s.proposalRoot(ctx, st, root)
	if err != nil {
		return nil
	}
	parsed := make(map[*syncpb.ProposeRequest]*proposal, len(items))
	paths := make([]string, 0, len(items))
	var ids []cas.ID
	for _, it := range items {
		p, err := parseProposal(it.Request, it.Chunks, r.Chunking.Max)
		if err != nil {
			continue
		}
		parsed[it.Request] = p
		paths = append(paths, p.path)
		if p.oneChunk() {
			ids = append(ids, p.hash)
		}
	}
	heads, found, err := s.db.Heads(ctx, r.ID, paths)
	if err != nil {
		return nil
	}
	pre := &batchLookups{root: r.ID, parsed: parsed, heads: make(map[string]*manifest.Head, len(paths)), chunks: make(map[cas.ID]cas.ChunkInfo, len(ids))}
	for i, p := range paths {
		if found[i] {
			pre.heads[p] = &heads[i]
		} else {
			pre.heads[p] = nil
		}
	}
	if len(ids) > 0 {
		infos, present, err := s.store.StatMany(ctx, ids)
		if err == nil {
			for i, id := range ids {
				if present[i] {
					pre.chunks[id] = infos[i]
				}
			}
		}
	}
	return pre
}

// parse returns the proposal lookUpBatch parsed from req for root, else
// parses it.
func (pre *batchLookups) parse(req *syncpb.ProposeRequest, refs []syncproto.ChunkRef, root manifest.Root) (*proposal, error) {
	if pre != nil && pre.root == root.ID {
		if p, ok := pre.parsed[req]; ok {
			return p, nil
		}
	}
	return parseProposal(req, refs, root.Chunking.Max)
}

// head returns what pre found for path in root, else looks it up.
func (pre *batchLookups) head(ctx context.Context, s *Server, root manifest.RootID, path string) (*manifest.Head, error) {
	if pre != nil && pre.root == root {
		if h, ok := pre.heads[path]; ok {
			return h, nil
		}
	}
	return s.head(ctx, root, path)
}

// chunk returns what pre found for id, else looks it up.
func (pre *batchLookups) chunk(ctx context.Context, s *Server, id cas.ID) (cas.ChunkInfo, error) {
	if pre != nil {
		if info, ok := pre.chunks[id]; ok {
			return info, nil
		}
	}
	return s.store.Stat(ctx, id)
}

func (s *Server) propose(ctx context.Context, sess *syncproto.Session, req *syncpb.ProposeRequest, refs []syncproto.ChunkRef, pre *batchLookups) (*syncpb.CommitResponse, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	r, err := s.proposalRoot(ctx, st, req.GetRoot())
	if err != nil {
		return nil, err
	}
	p, err := pre.parse(req, refs, r)
	if err != nil {
		return nil, err
	}
	head, err := pre.head(ctx, s, r.ID, p.path)
	if err != nil {
		return nil, err
	}
	verified := false
	for round := 1; ; round++ {
		decision, err := s.decide(ctx, r.ID, p, head)
		if err != nil {
			return nil, err
		}
		if decision == conflict.Converged && head != nil {
			st.pins.Release(p.ids...)
			return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_CONVERGED, Head: fileHead(p.path, *head)}, nil
		}
		if decision == conflict.Superseded {
			st.pins.Release(p.ids...)
			s.log.Info("server: proposal superseded", "root", r.Name, "path", p.path, "client", st.client,
				"base_seq", p.baseSeq, "head_seq", head.Seq)
			return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_SUPERSEDED, Head: fileHead(p.path, *head)}, nil
		}
		if !verified {
			// Kept content is served to every member: make sure it is
			// what the proposal says it is, and that it is all here.
			st.pins.Add(p.ids...)
			if err := s.verifyContent(ctx, p, pre); err != nil {
				return nil, err
			}
			verified = true
		}
		if decision == conflict.Conflict {
			return nil, s.keepConflict(ctx, st, r, p, head)
		}
		v, err := s.commit(ctx, st, r, p, head)
		if hc, ok := errors.AsType[*manifest.HeadChangedError](err); ok && round < maxDecideRounds {
			head = nil
			if hc.Exists {
				head = &hc.Head
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		st.pins.Release(p.ids...)
		s.metrics.uploads.Add(1)
		s.metrics.committedBytes.Add(p.size)
		fh := fileHead(p.path, v.Head())
		s.broker.publish(r.ID, &syncpb.Notice{Kind: syncpb.Notice_KIND_MUST_SYNC, Root: r.Name, Head: fh, RootSeq: v.Seq})
		if s.views != nil {
			s.views.updateLatest(r.ID, r.Name, p.path)
		}
		s.pruneAfterCommit(ctx, r, p.path)
		return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_COMMITTED, Head: fh}, nil
	}
}

// decide asks package conflict about p against head. Only a proposal that
// would conflict costs a look at the file's history: if its content is a
// version committed after its base that is no longer the head, it was
// superseded (a resolution kept another side, or someone edited on top
// of it) and keeping it as a conflict again would ask a person the same
// question twice.
func (s *Server) decide(ctx context.Context, root manifest.RootID, p *proposal, head *manifest.Head) (conflict.Decision, error) {
	in := p.decisionInput()
	d := conflict.Decide(decisionHead(head), in)
	if d != conflict.Conflict || head == nil {
		return d, nil
	}
	later, err := s.db.VersionsAfter(ctx, root, p.path, p.baseSeq)
	if err != nil {
		return 0, fmt.Errorf("server: history of %q: %w", p.path, err)
	}
	for _, v := range later {
		if v.Seq == head.Seq {
			continue
		}
		if (p.deleted && v.Deleted) || (!p.deleted && !v.Deleted && v.Hash == p.hash) {
			in.LaterInHistory = true
			break
		}
	}
	return conflict.Decide(decisionHead(head), in), nil
}

// head returns the file's head, or nil if the path was never committed.
func (s *Server) head(ctx context.Context, root manifest.RootID, p string) (*manifest.Head, error) {
	h, err := s.db.Head(ctx, root, p)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("server: head of %q: %w", p, err)
	}
	return &h, nil
}

func decisionHead(h *manifest.Head) *conflict.Head {
	if h == nil {
		return nil
	}
	return &conflict.Head{Seq: h.Seq, Hash: h.Hash, Deleted: h.Deleted, Mode: h.Mode}
}

// commit writes p on top of head, the head it was decided against.
func (s *Server) commit(ctx context.Context, st *session, r manifest.Root, p *proposal, head *manifest.Head) (manifest.Version, error) {
	mp := manifest.Proposal{
		Root: r.ID, Path: p.path, Hash: p.hash, Size: p.size, Mode: p.mode, MTime: p.mtime,
		Deleted: p.deleted, Client: st.client, Chunks: p.chunks,
	}
	if head != nil {
		mp.BaseSeq, mp.BaseHash = head.Seq, head.Hash
	}
	if p.hasContent() {
		// Chunks another session uploaded but the store has not synced
		// yet are invisible to the check below; make them durable first.
		if err := s.store.SyncChunks(ctx, p.ids); err != nil {
			return manifest.Version{}, fmt.Errorf("server: sync chunks before committing %q: %w", p.path, err)
		}
		mp.Check = s.chunksPresent(p.ids, func(missing []cas.ID) error { return missingChunksError(p, missing) })
	}
	start := time.Now()
	v, err := s.db.Commit(ctx, mp)
	switch {
	case err == nil:
		s.metrics.commitDuration.Observe(time.Since(start).Seconds())
		s.log.Debug("server: committed", "root", r.Name, "path", p.path, "seq", v.Seq, "client", st.client,
			"size", p.size, "deleted", p.deleted, "latency", time.Since(start))
		return v, nil
	case errors.Is(err, manifest.ErrHeadChanged), errors.Is(err, syncproto.ErrMissingChunks):
		return v, err
	case errors.Is(err, manifest.ErrNotFound):
		return v, fmt.Errorf("%w: root %q", syncproto.ErrNotFound, r.Name)
	case errors.Is(err, manifest.ErrInvalid):
		return v, fmt.Errorf("%w: propose %q: %v", syncproto.ErrBadRequest, p.path, err)
	}
	return v, fmt.Errorf("server: commit %q in root %q: %w", p.path, r.Name, err)
}

func missingChunksError(p *proposal, missing []cas.ID) error {
	const show = 4
	names := make([]string, 0, show)
	for _, id := range missing[:min(len(missing), show)] {
		names = append(names, id.String())
	}
	more := ""
	if len(missing) > show {
		more = ", ..."
	}
	return fmt.Errorf("%w: %d of %d chunks of %q: %s%s", syncproto.ErrMissingChunks,
		len(missing), len(p.ids), p.path, strings.Join(names, ", "), more)
}

// verifyContent checks that every chunk of p is in the store and that the
// chunks are p's content. Chunk lists are shared by every root that holds
// the same content, so a client must not be able to store a wrong list
// for a hash, nor to claim a hash it only heard of and then download its
// content: the proposed list must equal the stored list of the hash, or
// hash to it.
func (s *Server) verifyContent(ctx context.Context, p *proposal, pre *batchLookups) error {
	if !p.hasContent() {
		return nil
	}
	if p.oneChunk() {
		// A one-chunk file: its content hash is its chunk's ID, which the
		// store verified when the chunk came in. Its presence and size are
		// all that is left: one lookup (the commit checks presence again).
		info, err := pre.chunk(ctx, s, p.hash)
		if errors.Is(err, cas.ErrNotFound) {
			return missingChunksError(p, p.ids)
		}
		if err != nil {
			return fmt.Errorf("server: look up chunk %s of %q: %w", p.hash.Short(), p.path, err)
		}
		if info.RawLen != p.chunks[0].Size {
			return fmt.Errorf("%w: propose %q: chunk %s has %d bytes, the list says %d",
				syncproto.ErrBadRequest, p.path, p.hash.Short(), info.RawLen, p.chunks[0].Size)
		}
		return nil
	}
	present, err := s.store.Has(ctx, p.ids)
	if err != nil {
		return fmt.Errorf("server: look up chunks of %q: %w", p.path, err)
	}
	var missing []cas.ID
	for i, ok := range present {
		if !ok {
			missing = append(missing, p.ids[i])
		}
	}
	if len(missing) > 0 {
		return missingChunksError(p, missing)
	}
	stored, err := s.db.ChunkList(ctx, p.hash)
	switch {
	case err == nil && slices.Equal(stored, p.chunks):
		return nil
	case err != nil && !errors.Is(err, manifest.ErrNotFound):
		return fmt.Errorf("server: chunk list %s: %w", p.hash, err)
	case s.proven.proves(p.hash, p.chunks):
		s.metrics.listsProvenOnUpload.Add(1)
		return nil
	}
	// Read ahead on several cores: for a large file this re-read is the
	// last step between its upload and its commit.
	err = s.writeChunks(ctx, p.hash, p.chunks, io.Discard, true)
	switch {
	case err == nil:
		s.metrics.listsReadBack.Add(1)
		return nil
	case errors.Is(err, cas.ErrNotFound):
		return missingChunksError(p, p.ids)
	case errors.Is(err, errListMismatch):
		return fmt.Errorf("%w: propose %q: %s", syncproto.ErrBadRequest, p.path, err)
	}
	return fmt.Errorf("server: read the chunks of %q: %w", p.path, err)
}

// keepConflict stores p as a candidate of the path's conflict, with the
// head as the server's side, tells the root's watchers, and returns the
// conflict error for the proposer.
func (s *Server) keepConflict(ctx context.Context, st *session, r manifest.Root, p *proposal, head *manifest.Head) error {
	if p.hasContent() {
		// A candidate points at content like a version does; its list
		// must be stored for it to be downloaded or materialized.
		if err := s.db.PutChunkList(ctx, p.hash, p.chunks); err != nil {
			return fmt.Errorf("server: store chunk list of candidate %q: %w", p.path, err)
		}
	}
	existing, err := s.db.Conflict(ctx, r.ID, p.path)
	if err != nil && !errors.Is(err, manifest.ErrNotFound) {
		return fmt.Errorf("server: conflict on %q: %w", p.path, err)
	}
	if head != nil && !hasServerSide(existing, *head) {
		server := manifest.Candidate{
			Kind: manifest.CandidateServer, Hash: head.Hash, Size: head.Size, Mode: head.Mode,
			MTime: head.MTime, Deleted: head.Deleted, BaseSeq: head.Seq,
		}
		if _, err := s.db.AddCandidate(ctx, r.ID, p.path, server); err != nil {
			return fmt.Errorf("server: keep server side of %q: %w", p.path, err)
		}
	}
	mine := manifest.Candidate{
		Kind: manifest.CandidateClient, Client: st.client, Hash: p.hash, Size: p.size, Mode: p.mode,
		MTime: p.mtime, Deleted: p.deleted, BaseSeq: p.baseSeq, LastUpdateTimestamp: p.lastUpdate,
	}
	if _, err := s.db.AddCandidate(ctx, r.ID, p.path, mine); err != nil {
		return fmt.Errorf("server: keep candidate of %s for %q: %w", st.client, p.path, err)
	}
	st.pins.Release(p.ids...)

	notice := &syncpb.Notice{Kind: syncpb.Notice_KIND_CONFLICT, Root: r.Name, Head: &syncpb.FileHead{Path: p.path}, RootSeq: r.Seq}
	headSeq := uint64(0)
	if head != nil {
		notice.Head = fileHead(p.path, *head)
		headSeq = head.Seq
		notice.RootSeq = max(notice.RootSeq, head.Seq)
	}
	s.broker.publish(r.ID, notice)
	if s.views != nil {
		s.views.updateConflict(r.ID, r.Name, p.path)
	}
	s.log.Info("server: conflict kept", "root", r.Name, "path", p.path, "client", st.client,
		"base_seq", p.baseSeq, "head_seq", headSeq)
	if head == nil {
		return fmt.Errorf("%w: %q has no version on the server, the proposal's base is seq %d", syncproto.ErrConflict, p.path, p.baseSeq)
	}
	return fmt.Errorf("%w: %q: the head is at seq %d, the proposal's base is seq %d", syncproto.ErrConflict, p.path, head.Seq, p.baseSeq)
}

func hasServerSide(c manifest.Conflict, head manifest.Head) bool {
	for _, cand := range c.Candidates {
		if cand.Kind == manifest.CandidateServer && cand.Deleted == head.Deleted && cand.Hash == head.Hash {
			return true
		}
	}
	return false
}

// fileHead is a head as the protocol carries it.
func fileHead(p string, h manifest.Head) *syncpb.FileHead {
	fh := &syncpb.FileHead{
		Path: p, Seq: h.Seq, Size: int64(h.Size), Mode: h.Mode, Mtime: unixNano(h.MTime), Deleted: h.Deleted,
	}
	if !h.Deleted {
		fh.Hash = slices.Clone(h.Hash[:])
	}
	if h.Client != uuid.Nil {
		fh.ClientId = h.Client.String()
	}
	return fh
}

// unixNano is t in Unix nanoseconds, 0 for the zero time.
func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

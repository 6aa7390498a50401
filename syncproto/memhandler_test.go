package syncproto

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// memHandler is the protocol's test double: a whole quics server in maps,
// small enough to read at a glance, so every transaction can round-trip
// through Client and Server without the storage packages.
type memHandler struct {
	serverPassword string
	// brokenHaveChunks makes HaveChunks answer one ID short: a Handler
	// bug the Server must catch.
	brokenHaveChunks bool
	// beforePropose, if set, runs at the start of every Propose, outside
	// the handler's lock.
	beforePropose func()

	mu       sync.Mutex
	tokens   map[string]string // client ID → token
	roots    map[string]*memRoot
	chunks   map[cas.ID][]byte // decoded chunks
	watchers map[chan *syncpb.Notice]bool
	shares   []*syncpb.CreateShareResponse // share links, oldest first

	// Observations for tests.
	proposed     [][]ChunkRef // chunk lists Propose received
	getBatches   int          // GetChunks calls
	watchStarted chan struct{}
	ended        chan *Session
}

type memRoot struct {
	password string
	owner    string
	members  map[string]bool
	seq      uint64
	heads    map[string]*syncpb.FileHead
	lists    map[cas.ID][]ChunkRef // content hash → chunk list
	// history holds every committed head per path, oldest first.
	history   map[string][]*syncpb.FileHead
	conflicts map[string]*syncpb.Conflict
	retention *syncpb.SetRetentionRequest
}

func newMemHandler(serverPassword string) *memHandler {
	return &memHandler{
		serverPassword: serverPassword,
		tokens:         make(map[string]string),
		roots:          make(map[string]*memRoot),
		chunks:         make(map[cas.ID][]byte),
		watchers:       make(map[chan *syncpb.Notice]bool),
		watchStarted:   make(chan struct{}, 16),
		ended:          make(chan *Session, 16),
	}
}

var _ Handler = (*memHandler)(nil)

func (h *memHandler) RegisterClient(_ context.Context, _ net.Addr, req *syncpb.RegisterClientRequest) (*syncpb.RegisterClientResponse, error) {
	if req.GetServerPassword() != h.serverPassword {
		return nil, fmt.Errorf("%w: wrong server password", ErrBadPassword)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.tokens[req.GetClientId()]; ok {
		return nil, fmt.Errorf("%w: client %s", ErrExists, req.GetClientId())
	}
	token := rand.Text()
	h.tokens[req.GetClientId()] = token
	return &syncpb.RegisterClientResponse{Token: token}, nil
}

func (h *memHandler) Authenticate(_ context.Context, remote net.Addr, req *syncpb.AuthRequest) (*Session, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if tok, ok := h.tokens[req.GetClientId()]; !ok || tok != req.GetToken() {
		return nil, fmt.Errorf("%w: unknown client or wrong token", ErrUnauthenticated)
	}
	return &Session{ClientID: req.GetClientId(), Remote: remote}, nil
}

func (h *memHandler) SessionEnded(s *Session) {
	select {
	case h.ended <- s:
	default:
	}
}

// member returns the root if the session's client belongs to it; h.mu is
// held.
func (h *memHandler) member(s *Session, name string) (*memRoot, error) {
	r, ok := h.roots[name]
	if !ok {
		return nil, fmt.Errorf("%w: root %q", ErrNotFound, name)
	}
	if !r.members[s.ClientID] {
		return nil, fmt.Errorf("%w: not a member of %q", ErrForbidden, name)
	}
	return r, nil
}

func (r *memRoot) info(name string) *syncpb.RootInfo {
	info := &syncpb.RootInfo{Name: name, Seq: r.seq, Owner: r.owner, Chunking: &syncpb.ChunkParams{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}}
	for m := range r.members {
		info.Members = append(info.Members, m)
	}
	sort.Strings(info.Members)
	return info
}

func (h *memHandler) RegisterRoot(_ context.Context, s *Session, req *syncpb.RegisterRootRequest) (*syncpb.RootInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.roots[req.GetName()]; ok {
		return nil, fmt.Errorf("%w: root %q", ErrExists, req.GetName())
	}
	r := &memRoot{password: req.GetRootPassword(), owner: s.ClientID, members: map[string]bool{s.ClientID: true},
		heads: make(map[string]*syncpb.FileHead), lists: make(map[cas.ID][]ChunkRef),
		history: make(map[string][]*syncpb.FileHead), conflicts: make(map[string]*syncpb.Conflict)}
	h.roots[req.GetName()] = r
	return r.info(req.GetName()), nil
}

func (h *memHandler) JoinRoot(_ context.Context, s *Session, req *syncpb.JoinRootRequest) (*syncpb.RootInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.roots[req.GetName()]
	if !ok {
		return nil, fmt.Errorf("%w: root %q", ErrNotFound, req.GetName())
	}
	if r.password != req.GetRootPassword() {
		return nil, fmt.Errorf("%w: root %q", ErrBadPassword, req.GetName())
	}
	r.members[s.ClientID] = true
	return r.info(req.GetName()), nil
}

func (h *memHandler) LeaveRoot(_ context.Context, s *Session, req *syncpb.LeaveRootRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.member(s, req.GetName())
	if err != nil {
		return err
	}
	delete(r.members, s.ClientID)
	return nil
}

func (h *memHandler) ListRoots(_ context.Context, s *Session, req *syncpb.ListRootsRequest) (*syncpb.ListRootsResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	resp := &syncpb.ListRootsResponse{}
	for name, r := range h.roots {
		switch {
		case r.members[s.ClientID]:
			resp.Roots = append(resp.Roots, r.info(name))
		case req.GetRemote():
			resp.Roots = append(resp.Roots, &syncpb.RootInfo{Name: name})
		}
	}
	sort.Slice(resp.Roots, func(i, j int) bool { return resp.Roots[i].Name < resp.Roots[j].Name })
	return resp, nil
}

func (h *memHandler) HaveChunks(_ context.Context, s *Session, root string, ids []cas.ID) ([]bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.member(s, root); err != nil {
		return nil, err
	}
	present := make([]bool, len(ids))
	for i, id := range ids {
		_, present[i] = h.chunks[id]
	}
	if h.brokenHaveChunks {
		present = present[1:]
	}
	return present, nil
}

func (h *memHandler) PutChunks(_ context.Context, s *Session, root string, next func() (Chunk, error)) error {
	h.mu.Lock()
	_, err := h.member(s, root)
	h.mu.Unlock()
	if err != nil {
		return err
	}
	got := make(map[cas.ID][]byte)
	for {
		c, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		data, err := h.decodeChunk(c)
		if errors.Is(err, cas.ErrHashMismatch) || errors.Is(err, ErrHashMismatch) {
			return fmt.Errorf("%w: chunk %s", ErrHashMismatch, c.ID)
		}
		if err != nil {
			return fmt.Errorf("%w: chunk %s does not decode", ErrBadRequest, c.ID)
		}
		got[c.ID] = bytes.Clone(data) // c.Data is only valid until the next call
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, data := range got {
		h.chunks[id] = data
	}
	return nil
}

func (h *memHandler) Propose(_ context.Context, s *Session, req *syncpb.ProposeRequest, chunks []ChunkRef) (*syncpb.CommitResponse, error) {
	if h.beforePropose != nil {
		h.beforePropose()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.proposed = append(h.proposed, chunks)
	r, err := h.member(s, req.GetRoot())
	if err != nil {
		return nil, err
	}
	for _, c := range chunks {
		if _, ok := h.chunks[c.ID]; !ok {
			return nil, fmt.Errorf("%w: %s", ErrMissingChunks, c.ID)
		}
	}
	head := r.heads[req.GetPath()]
	if head != nil && bytes.Equal(head.GetHash(), req.GetHash()) && head.GetDeleted() == req.GetDeleted() {
		return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_CONVERGED, Head: head}, nil
	}
	if head.GetSeq() != req.GetBaseSeq() {
		return nil, fmt.Errorf("%w: %q is at %d, base %d", ErrConflict, req.GetPath(), head.GetSeq(), req.GetBaseSeq())
	}
	r.seq++
	head = &syncpb.FileHead{Path: req.GetPath(), Seq: r.seq, Hash: req.GetHash(), Size: req.GetSize(), Mode: req.GetMode(),
		Mtime: req.GetMtime(), Deleted: req.GetDeleted(), ClientId: s.ClientID}
	r.heads[req.GetPath()] = head
	r.history[req.GetPath()] = append(r.history[req.GetPath()], head)
	if hash, err := cas.IDFromBytes(req.GetHash()); err == nil {
		r.lists[hash] = chunks
	}
	for w := range h.watchers {
		select {
		case w <- &syncpb.Notice{Kind: syncpb.Notice_KIND_MUST_SYNC, Root: req.GetRoot(), Head: head, RootSeq: r.seq}:
		default: // a watcher too slow for the test is a test failure elsewhere
		}
	}
	return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_COMMITTED, Head: head}, nil
}

func (h *memHandler) Heads(_ context.Context, s *Session, req *syncpb.HeadsRequest, emit func([]*syncpb.FileHead) error) (uint64, error) {
	h.mu.Lock()
	r, err := h.member(s, req.GetRoot())
	if err != nil {
		h.mu.Unlock()
		return 0, err
	}
	var heads []*syncpb.FileHead
	for _, hd := range r.heads {
		if hd.GetSeq() > req.GetAfterSeq() {
			heads = append(heads, hd)
		}
	}
	seq := r.seq
	h.mu.Unlock()
	sort.Slice(heads, func(i, j int) bool { return heads[i].GetSeq() < heads[j].GetSeq() })
	for len(heads) > 0 { // parts of two, so clients see several
		n := min(2, len(heads))
		if err := emit(heads[:n]); err != nil {
			return 0, err
		}
		heads = heads[n:]
	}
	return seq, nil
}

func (h *memHandler) ChunkList(_ context.Context, s *Session, req *syncpb.ChunkListRequest) (int64, []ChunkRef, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.member(s, req.GetRoot())
	if err != nil {
		return 0, nil, err
	}
	hash, err := cas.IDFromBytes(req.GetHash())
	if err != nil {
		return 0, nil, fmt.Errorf("%w: hash", ErrBadRequest)
	}
	list, ok := r.lists[hash]
	if !ok {
		return 0, nil, fmt.Errorf("%w: %q at %s", ErrNotFound, req.GetPath(), hash.Short())
	}
	var size int64
	for _, c := range list {
		size += int64(c.Size)
	}
	return size, list, nil
}

func (h *memHandler) GetChunks(_ context.Context, s *Session, root string, ids []cas.ID, emit func(Chunk) error) error {
	h.mu.Lock()
	h.getBatches++
	_, err := h.member(s, root)
	h.mu.Unlock()
	if err != nil {
		return err
	}
	for _, id := range ids {
		h.mu.Lock()
		data, ok := h.chunks[id]
		h.mu.Unlock()
		if !ok {
			return fmt.Errorf("%w: chunk %s", ErrNotFound, id)
		}
		st, err := cas.Compress(data)
		if err != nil {
			return err
		}
		if err := emit(Chunk{Codec: ChunkCodec(st.Codec), ID: id, RawLen: st.RawLen, Data: st.Data}); err != nil {
			return err
		}
	}
	return nil
}

func (h *memHandler) Watch(ctx context.Context, _ *Session, _ *syncpb.WatchRequest, push func(*syncpb.Notice) error) error {
	w := make(chan *syncpb.Notice, 16)
	h.mu.Lock()
	h.watchers[w] = true
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		delete(h.watchers, w)
		h.mu.Unlock()
	}()
	h.watchStarted <- struct{}{}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case n := <-w:
			if err := push(n); err != nil {
				return err
			}
		}
	}
}

func (h *memHandler) watcherCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.watchers)
}

func (h *memHandler) ListConflicts(_ context.Context, s *Session, req *syncpb.ListConflictsRequest) (*syncpb.ListConflictsResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.member(s, req.GetRoot())
	if err != nil {
		return nil, err
	}
	resp := &syncpb.ListConflictsResponse{}
	for p, c := range r.conflicts {
		if req.GetPath() == "" || req.GetPath() == p {
			resp.Conflicts = append(resp.Conflicts, c)
		}
	}
	return resp, nil
}

// ResolveConflict keeps the side whose client ID or name is keep ("client"
// is the caller) as a new head.
func (h *memHandler) ResolveConflict(_ context.Context, s *Session, req *syncpb.ResolveConflictRequest) (*syncpb.CommitResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.member(s, req.GetRoot())
	if err != nil {
		return nil, err
	}
	c := r.conflicts[req.GetPath()]
	if c == nil {
		return nil, fmt.Errorf("%w: no conflict on %q", ErrNotFound, req.GetPath())
	}
	keep := req.GetKeep()
	if keep == "client" {
		keep = s.ClientID
	}
	for _, cand := range c.GetCandidates() {
		if cand.GetClientId() == keep || cand.GetClientName() == keep {
			r.seq++
			head := &syncpb.FileHead{Path: req.GetPath(), Seq: r.seq, Hash: cand.GetHash(), Size: cand.GetSize(), ClientId: cand.GetClientId()}
			r.heads[req.GetPath()] = head
			r.history[req.GetPath()] = append(r.history[req.GetPath()], head)
			delete(r.conflicts, req.GetPath())
			return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_COMMITTED, Head: head}, nil
		}
	}
	return nil, fmt.Errorf("%w: no side %q", ErrNotFound, keep)
}

func (h *memHandler) History(_ context.Context, s *Session, req *syncpb.HistoryRequest) (*syncpb.HistoryResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.member(s, req.GetRoot())
	if err != nil {
		return nil, err
	}
	hist := r.history[req.GetPath()]
	if n := int(req.GetLimit()); n > 0 && n < len(hist) {
		hist = hist[len(hist)-n:]
	}
	resp := &syncpb.HistoryResponse{}
	for _, v := range hist {
		resp.Versions = append(resp.Versions, &syncpb.HistoryEntry{Seq: v.GetSeq(), Hash: v.GetHash(), Size: v.GetSize(), ClientId: v.GetClientId()})
	}
	return resp, nil
}

func (h *memHandler) Restore(_ context.Context, s *Session, req *syncpb.RestoreRequest) (*syncpb.CommitResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.member(s, req.GetRoot())
	if err != nil {
		return nil, err
	}
	for _, v := range r.history[req.GetPath()] {
		if strings.HasPrefix(fmt.Sprintf("%x", v.GetHash()), req.GetHashPrefix()) {
			r.seq++
			head := &syncpb.FileHead{Path: req.GetPath(), Seq: r.seq, Hash: v.GetHash(), Size: v.GetSize(), ClientId: s.ClientID}
			r.heads[req.GetPath()] = head
			r.history[req.GetPath()] = append(r.history[req.GetPath()], head)
			return &syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_COMMITTED, Head: head}, nil
		}
	}
	return nil, fmt.Errorf("%w: no version %s", ErrNotFound, req.GetHashPrefix())
}

func (h *memHandler) SetRetention(_ context.Context, s *Session, req *syncpb.SetRetentionRequest) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.member(s, req.GetRoot())
	if err != nil {
		return err
	}
	r.retention = req
	return nil
}

// addConflict plants a conflict for ListConflicts and ResolveConflict.
func (h *memHandler) addConflict(root string, c *syncpb.Conflict) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.roots[root].conflicts[c.GetPath()] = c
}

func (h *memHandler) retentionOf(root string) *syncpb.SetRetentionRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.roots[root].retention
}

func (h *memHandler) CreateShare(_ context.Context, s *Session, req *syncpb.CreateShareRequest) (*syncpb.CreateShareResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.member(s, req.GetRoot())
	if err != nil {
		return nil, err
	}
	head, ok := r.heads[req.GetPath()]
	if !ok || head.GetDeleted() {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, req.GetPath())
	}
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	resp := &syncpb.CreateShareResponse{
		Share: &syncpb.ShareInfo{
			Id: fmt.Sprintf("%x", id), Root: req.GetRoot(), Path: req.GetPath(), ClientId: s.ClientID,
			MaxDownloads: req.GetMaxDownloads(), State: "active",
		},
		Token: fmt.Sprintf("%x", token), Port: 6443,
	}
	h.shares = append(h.shares, resp)
	return resp, nil
}

func (h *memHandler) ListShares(_ context.Context, s *Session, _ *syncpb.ListSharesRequest) (*syncpb.ListSharesResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	resp := &syncpb.ListSharesResponse{}
	for _, sh := range h.shares {
		if sh.GetShare().GetClientId() == s.ClientID {
			resp.Shares = append(resp.Shares, sh.GetShare())
		}
	}
	return resp, nil
}

func (h *memHandler) StopShare(_ context.Context, s *Session, req *syncpb.StopShareRequest) (*syncpb.StopShareResponse, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, sh := range h.shares {
		if sh.GetShare().GetId() != req.GetId() && sh.GetToken() != req.GetToken() {
			continue
		}
		if sh.GetShare().GetClientId() != s.ClientID {
			return nil, fmt.Errorf("%w: not your link", ErrForbidden)
		}
		h.shares = append(h.shares[:i], h.shares[i+1:]...)
		return &syncpb.StopShareResponse{Share: sh.GetShare()}, nil
	}
	return nil, fmt.Errorf("%w: no such link", ErrNotFound)
}

var _ DeltaHandler = (*memHandler)(nil)

// versionList returns the chunk list of content hash if it is a version
// of path in root s belongs to.
func (h *memHandler) versionList(s *Session, root, path string, hash cas.ID) ([]ChunkRef, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, err := h.member(s, root)
	if err != nil {
		return nil, err
	}
	for _, v := range r.history[path] {
		if bytes.Equal(v.GetHash(), hash[:]) {
			return r.lists[hash], nil
		}
	}
	return nil, fmt.Errorf("%w: %q has no version %s", ErrNotFound, path, hash.Short())
}

func (h *memHandler) SourceChunkList(_ context.Context, s *Session, root, path string, hash cas.ID) ([]ChunkRef, error) {
	return h.versionList(s, root, path, hash)
}

func (h *memHandler) Signatures(_ context.Context, s *Session, req *syncpb.SignaturesRequest) ([][]byte, error) {
	var sigs [][]byte
	for _, src := range req.GetSources() {
		hash, err := cas.IDFromBytes(src.GetHash())
		if err != nil {
			return nil, fmt.Errorf("%w: hash", ErrBadRequest)
		}
		list, err := h.versionList(s, req.GetRoot(), src.GetPath(), hash)
		if err != nil {
			return nil, err
		}
		ids, err := ParseIDs(src.GetIds(), MaxSignatureChunks)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if !slices.ContainsFunc(list, func(r ChunkRef) bool { return r.ID == id }) {
				return nil, fmt.Errorf("%w: chunk %s not in version", ErrNotFound, id.Short())
			}
			h.mu.Lock()
			data := h.chunks[id]
			h.mu.Unlock()
			sigs = append(sigs, Sign(data, int(src.GetBlockSize())))
		}
	}
	return sigs, nil
}

func (h *memHandler) GetChunksDict(ctx context.Context, s *Session, root string, ids []cas.ID, dicts [][]cas.ID, emit func(Chunk) error) error {
	return h.GetChunks(ctx, s, root, ids, func(c Chunk) error {
		i := slices.Index(ids, c.ID)
		if i < 0 || len(dicts[i]) == 0 {
			return emit(c)
		}
		h.mu.Lock()
		data := h.chunks[c.ID]
		sources := make([][]byte, len(dicts[i]))
		for k, d := range dicts[i] {
			sources[k] = h.chunks[d]
		}
		h.mu.Unlock()
		if dc, ok := EncodeDeltaFrom(c.ID, data, dicts[i], sources, len(c.Data)); ok {
			return emit(dc)
		}
		return emit(c)
	})
}

// decodeChunk decodes an uploaded chunk, delta-encoded ones against the
// chunks the handler holds.
func (h *memHandler) decodeChunk(c Chunk) ([]byte, error) {
	if c.Codec != ChunkDelta {
		return cas.Stored{Codec: cas.Codec(c.Codec), Data: c.Data, RawLen: c.RawLen}.Decode(c.ID)
	}
	ids, err := DeltaSources(c)
	if err != nil {
		return nil, err
	}
	sources := make([][]byte, len(ids))
	h.mu.Lock()
	for i, id := range ids {
		sources[i] = h.chunks[id]
	}
	h.mu.Unlock()
	return DecodeDelta(c, sources)
}

// plainHandler hides a Handler's DeltaHandler methods: a server that
// knows nothing of deltas.
type plainHandler struct{ Handler }

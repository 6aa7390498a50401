package syncproto

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// ServerOptions tunes a Server. Zero fields take defaults.
type ServerOptions struct {
	// Logger receives failed transactions: internal errors at Error
	// level with their cause (the peer sees only "internal error"), the
	// peer's mistakes at Debug. Nil means slog.Default().
	Logger *slog.Logger
	// MaxChunkSize bounds the decoded size of an uploaded chunk and of a
	// chunk list entry. Default and ceiling: 16 MiB, the chunker's largest.
	MaxChunkSize int
	// MaxAuthFailures is how many failed AuthRequests a connection may
	// make before it is closed. Default 3.
	MaxAuthFailures int
	// Limits bound connections and chunk bytes in flight (see Limits).
	Limits Limits
}

// DefaultMaxChunkSize is the default and largest ServerOptions.MaxChunkSize.
const DefaultMaxChunkSize = cas.MaxChunkSizeLimit

// watchReadTimeout replaces the read timeout on a watch stream, where the
// client sends nothing after its request until it goes away. The
// connection's keep-alives and idle timeout catch a dead peer.
const watchReadTimeout = 365 * 24 * time.Hour

// maxHeadsPartBytes is the size past which a Heads part emitted by the
// Handler is split, well under any reader's frame limit.
const maxHeadsPartBytes = 1 << 20

// Server runs the quics protocol over a Listener: it authenticates
// connections, decodes each transaction and calls its Handler.
type Server struct {
	h       Handler
	opts    ServerOptions
	gate    *connGate
	pending *pendingGate
	uploads *uploadBudget

	mu    sync.Mutex
	conns map[*Conn]*connState
}

// connState is what a connection remembers between its streams.
type connState struct {
	mu       sync.Mutex
	session  *Session // nil until an AuthRequest succeeds
	authBusy bool     // an AuthRequest is being checked
	failures int      // failed AuthRequests

	ip        netip.Prefix // the pending slot is counted under it
	pending   bool         // holds a Server.pending slot
	authed    bool         // holds a Server.gate slot
	authTimer *time.Timer  // closes the connection if it stays unauthenticated

	// batchSlots bounds the batch items this connection has in decision
	// at once, across all its streams.
	batchSlots chan struct{}
}

func (cs *connState) current() *Session {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.session
}

// NewServer returns a server that calls h.
func NewServer(h Handler, opts ServerOptions) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxChunkSize <= 0 || opts.MaxChunkSize > DefaultMaxChunkSize {
		opts.MaxChunkSize = DefaultMaxChunkSize
	}
	if opts.MaxAuthFailures <= 0 {
		opts.MaxAuthFailures = 3
	}
	opts.Limits = opts.Limits.withDefaults(int64(opts.MaxChunkSize + ChunkHeaderMaxLen))
	return &Server{h: h, opts: opts, gate: &connGate{max: opts.Limits.MaxConns},
		pending: newPendingGate(opts.Limits), uploads: newUploadBudget(opts.Limits),
		conns: make(map[*Conn]*connState)}
}

// Serve serves connections from l until ctx is canceled; see the
// package-level Serve for shutdown. It takes ownership of l.
func (s *Server) Serve(ctx context.Context, l *Listener) error {
	return serve(ctx, l, s.handleStream, connHooks{admit: s.admit, ended: s.connEnded})
}

// admit gives a new connection a pending slot (see Limits) and a deadline
// for its AuthRequest, or refuses it; connEnded gives the slot back.
func (s *Server) admit(conn *Conn) error {
	ip := remoteIP(conn.RemoteAddr())
	if err := s.pending.admit(ip); err != nil {
		return err
	}
	cs := s.state(conn)
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.ip, cs.pending = ip, true
	timeout := s.opts.Limits.AuthTimeout
	cs.authTimer = time.AfterFunc(timeout, func() {
		cs.mu.Lock()
		defer cs.mu.Unlock()
		switch {
		case cs.session != nil:
		case cs.authBusy:
			cs.authTimer.Reset(timeout) // let a login being checked finish
		default:
			_ = conn.CloseWithError(CodeUnauthenticated, fmt.Sprintf("no successful AuthRequest within %v", timeout))
		}
	})
	return nil
}

// authenticated moves cs from its pending slot to the one taken for it
// from Server.gate.
func (s *Server) authenticated(cs *connState) {
	cs.authed = true
	cs.authTimer.Stop()
	if cs.pending {
		cs.pending = false
		s.pending.release(cs.ip)
	}
}

func (s *Server) state(conn *Conn) *connState {
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.conns[conn]
	if cs == nil {
		cs = &connState{batchSlots: make(chan struct{}, batchWorkers)}
		s.conns[conn] = cs
	}
	return cs
}

// connEnded runs once the connection and all its streams are done, so the
// Handler releases a session nobody uses any more.
func (s *Server) connEnded(conn *Conn) {
	s.mu.Lock()
	cs := s.conns[conn]
	delete(s.conns, conn)
	s.mu.Unlock()
	if cs == nil {
		return
	}
	cs.mu.Lock()
	cs.authTimer.Stop()
	if cs.pending {
		cs.pending = false
		s.pending.release(cs.ip)
	}
	if cs.authed {
		cs.authed = false
		s.gate.release()
	}
	cs.mu.Unlock()
	if cs.session == nil {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			s.opts.Logger.Error("syncproto: SessionEnded panicked", "client", cs.session.ClientID,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	s.h.SessionEnded(cs.session)
}

// tx is one transaction being served.
type tx struct {
	srv     *Server
	conn    *Conn
	cs      *connState
	st      *Stream
	session *Session // nil for the transactions allowed before auth
}

// transaction serves one kind of request whose first frame is payload.
type transaction struct {
	name string
	// public transactions run before authentication.
	public bool
	run    func(t *tx, ctx context.Context, payload []byte) error
}

// transactions routes a stream by the type of its first frame.
var transactions = map[FrameType]transaction{
	FrameRegisterClientRequest: {"register client", true, (*tx).registerClient},
	FrameAuthRequest:           {"auth", true, (*tx).auth},
	FramePing:                  {"ping", true, (*tx).ping},
	FrameRegisterRootRequest:   {"register root", false, (*tx).registerRoot},
	FrameJoinRootRequest:       {"join root", false, (*tx).joinRoot},
	FrameLeaveRootRequest:      {"leave root", false, (*tx).leaveRoot},
	FrameListRootsRequest:      {"list roots", false, (*tx).listRoots},
	FrameHaveChunksRequest:     {"have chunks", false, (*tx).haveChunks},
	FramePutChunksRequest:      {"put chunks", false, (*tx).putChunks},
	FrameProposeRequest:        {"propose", false, (*tx).propose},
	FrameProposeBatchRequest:   {"propose batch", false, (*tx).proposeBatch},
	FrameHeadsRequest:          {"heads", false, (*tx).heads},
	FrameChunkListRequest:      {"chunk list", false, (*tx).chunkList},
	FrameChunkListBatchRequest: {"chunk list batch", false, (*tx).chunkListBatch},
	FrameGetChunksRequest:      {"get chunks", false, (*tx).getChunks},
	FrameWatchRequest:          {"watch", false, (*tx).watch},
	FrameSignaturesRequest:     {"signatures", false, (*tx).signatures},

	FrameListConflictsRequest:   {"list conflicts", false, serveListConflicts},
	FrameResolveConflictRequest: {"resolve conflict", false, serveResolveConflict},
	FrameHistoryRequest:         {"history", false, serveHistory},
	FrameRestoreRequest:         {"restore", false, serveRestore},
	FrameSetRetentionRequest:    {"set retention", false, serveSetRetention},

	FrameCreateShareRequest: {"create share", false, serveCreateShare},
	FrameListSharesRequest:  {"list shares", false, serveListShares},
	FrameStopShareRequest:   {"stop share", false, serveStopShare},
}

func (s *Server) handleStream(ctx context.Context, conn *Conn, st *Stream) {
	t := &tx{srv: s, conn: conn, cs: s.state(conn), st: st}
	ft, payload, err := st.ReadFrame(ctx)
	if err == io.EOF {
		return // the client opened a stream and asked nothing
	}
	if err != nil {
		t.fail(ctx, "read request", err)
		return
	}
	route, known := transactions[ft]
	if !route.public {
		if t.session = t.cs.current(); t.session == nil {
			t.fail(ctx, frameName(ft), fmt.Errorf("%w: %s before AuthRequest", ErrUnauthenticated, frameName(ft)))
			return
		}
	}
	if !known {
		err := fmt.Errorf("%w: %s is not a request", ErrBadRequest, frameName(ft))
		if _, isMessage := messageOfType[ft]; !isMessage && ft != FrameChunk {
			err = fmt.Errorf("%w: frame %s", ErrUnsupported, ft)
		}
		t.fail(ctx, "route", err)
		return
	}
	if err := route.run(t, ctx, payload); err != nil {
		t.fail(ctx, route.name, err)
	}
}

// fail ends the transaction with err and logs it: internal errors with
// their cause, which the peer does not see, and the rest at debug level.
func (t *tx) fail(ctx context.Context, name string, err error) {
	t.logFailure(name, err)
	_ = t.st.Fail(ctx, storageErr(err))
}

// logFailure logs err, the failure of name: internal errors with their
// cause, which the peer does not see, and the rest at debug level.
func (t *tx) logFailure(name string, err error) {
	log := t.srv.opts.Logger
	attrs := []any{"tx", name, "remote", t.conn.RemoteAddr().String(), "stream", t.st.ID(), "err", err}
	if t.session != nil {
		attrs = append(attrs, "client", t.session.ClientID)
	}
	if CodeOf(err) == CodeInternal {
		log.Error("syncproto: transaction failed", attrs...)
	} else {
		log.Debug("syncproto: transaction refused", attrs...)
	}
}

// internalf reports a Handler that broke its contract. The error wraps no
// sentinel, so the client gets a bare internal error and the details stay
// in the server's log.
func internalf(format string, args ...any) error {
	return fmt.Errorf("syncproto: handler bug: "+format, args...)
}

func decodeRequest[M proto.Message](ft FrameType, payload []byte, m M) (M, error) {
	return m, DecodeMessage(ft, payload, m)
}

func (t *tx) registerClient(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameRegisterClientRequest, payload, &syncpb.RegisterClientRequest{})
	if err != nil {
		return err
	}
	resp, err := t.srv.h.RegisterClient(ctx, t.conn.RemoteAddr(), req)
	if err != nil {
		return err
	}
	if resp == nil {
		return internalf("RegisterClient returned no response")
	}
	return WriteMessage(ctx, t.st, resp)
}

func (t *tx) auth(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameAuthRequest, payload, &syncpb.AuthRequest{})
	if err != nil {
		return err
	}
	cs := t.cs
	cs.mu.Lock()
	switch {
	case cs.session != nil:
		cs.mu.Unlock()
		return fmt.Errorf("%w: connection already authenticated", ErrBadRequest)
	case cs.authBusy:
		cs.mu.Unlock()
		return fmt.Errorf("%w: another AuthRequest is in progress", ErrBadRequest)
	}
	// The connection slot is taken before the password is checked, so a
	// full server refuses without the cost of a hash.
	if err := t.srv.gate.admit(); err != nil {
		cs.mu.Unlock()
		return err
	}
	cs.authBusy = true
	cs.mu.Unlock()

	sess, err := t.srv.h.Authenticate(ctx, t.conn.RemoteAddr(), req)
	if err == nil && sess == nil {
		err = internalf("Authenticate returned no session")
	}
	cs.mu.Lock()
	cs.authBusy = false
	if err != nil {
		t.srv.gate.release()
		cs.failures++
		tooMany := cs.failures >= t.srv.opts.MaxAuthFailures
		cs.mu.Unlock()
		if tooMany {
			_ = t.st.Fail(ctx, err)
			_ = t.conn.CloseWithError(CodeUnauthenticated, "too many failed authentications")
		}
		return err
	}
	cs.session = sess
	t.srv.authenticated(cs)
	cs.mu.Unlock()
	t.session = sess
	return WriteMessage(ctx, t.st, &syncpb.AuthResponse{ServerTime: time.Now().UnixNano()})
}

func (t *tx) ping(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FramePing, payload, &syncpb.Ping{})
	if err != nil {
		return err
	}
	return WriteMessage(ctx, t.st, &syncpb.Pong{Sent: req.GetSent(), ServerTime: time.Now().UnixNano()})
}

func (t *tx) registerRoot(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameRegisterRootRequest, payload, &syncpb.RegisterRootRequest{})
	if err != nil {
		return err
	}
	info, err := t.srv.h.RegisterRoot(ctx, t.session, req)
	if err != nil {
		return err
	}
	if info == nil {
		return internalf("RegisterRoot returned no root")
	}
	return WriteMessage(ctx, t.st, info)
}

func (t *tx) joinRoot(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameJoinRootRequest, payload, &syncpb.JoinRootRequest{})
	if err != nil {
		return err
	}
	info, err := t.srv.h.JoinRoot(ctx, t.session, req)
	if err != nil {
		return err
	}
	if info == nil {
		return internalf("JoinRoot returned no root")
	}
	return WriteMessage(ctx, t.st, info)
}

func (t *tx) leaveRoot(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameLeaveRootRequest, payload, &syncpb.LeaveRootRequest{})
	if err != nil {
		return err
	}
	if err := t.srv.h.LeaveRoot(ctx, t.session, req); err != nil {
		return err
	}
	return WriteMessage(ctx, t.st, &syncpb.Ack{})
}

func (t *tx) listRoots(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameListRootsRequest, payload, &syncpb.ListRootsRequest{})
	if err != nil {
		return err
	}
	resp, err := t.srv.h.ListRoots(ctx, t.session, req)
	if err != nil {
		return err
	}
	if resp == nil {
		resp = &syncpb.ListRootsResponse{}
	}
	return WriteMessage(ctx, t.st, resp)
}

func (t *tx) haveChunks(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameHaveChunksRequest, payload, &syncpb.HaveChunksRequest{})
	if err != nil {
		return err
	}
	ids, err := ParseIDs(req.GetIds(), MaxHaveChunksIDs)
	if err != nil {
		return fmt.Errorf("have chunks: %w", err)
	}
	present, err := t.srv.h.HaveChunks(ctx, t.session, req.GetRoot(), ids)
	if err != nil {
		return err
	}
	if len(present) != len(ids) {
		return internalf("HaveChunks answered %d of %d ids", len(present), len(ids))
	}
	return WriteMessage(ctx, t.st, &syncpb.HaveChunksResponse{Present: AppendBitmap(nil, present)})
}

// putChunks hands the Handler the chunk frames that follow the request
// until the client ends its direction, and acknowledges them once the
// Handler has made them durable.
func (t *tx) putChunks(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FramePutChunksRequest, payload, &syncpb.PutChunksRequest{})
	if err != nil {
		return err
	}
	runs, err := wholeRunsFromPB(req.GetWholes())
	if err != nil {
		return err
	}
	maxChunk := t.srv.opts.MaxChunkSize
	t.st.SetMaxFramePayload(maxChunk + ChunkHeaderMaxLen)
	budget := t.srv.uploads.begin(t.session.ClientID)
	defer budget.end()
	_, deltas := t.srv.h.(DeltaHandler)
	var (
		readErr error
		ended   bool
		count   int
	)
	next := func() (Chunk, error) {
		if readErr != nil {
			return Chunk{}, readErr
		}
		if ended {
			return Chunk{}, io.EOF
		}
		// The previous chunk is the Handler's business now; this
		// frame's bytes are reserved before they are read.
		n, err := t.st.peekFrameLen(ctx)
		if err == nil {
			err = budget.reserve(ctx, n)
		}
		if err != nil && err != io.EOF {
			readErr = fmt.Errorf("put chunks: after %d chunks: %w", count, err)
			return Chunk{}, readErr
		}
		ft, p, err := t.st.ReadFrame(ctx)
		switch {
		case err == io.EOF:
			ended = true
			return Chunk{}, io.EOF
		case err != nil:
			readErr = fmt.Errorf("put chunks: after %d chunks: %w", count, err)
		case ft != FrameChunk:
			readErr = fmt.Errorf("%w: put chunks: %s frame after %d chunks", ErrBadRequest, frameName(ft), count)
		default:
			c, err := DecodeChunkFrame(p, maxChunk)
			if err == nil && c.Codec == ChunkDelta && !deltas {
				err = fmt.Errorf("%w: this server takes no delta-encoded chunks", ErrUnsupported)
			}
			if err == nil {
				count++
				return c, nil
			}
			readErr = fmt.Errorf("put chunks: chunk %d: %w", count, err)
		}
		return Chunk{}, readErr
	}
	if wr, ok := t.srv.h.(WholeRunner); ok && len(runs) > 0 {
		err = wr.PutChunkRuns(ctx, t.session, req.GetRoot(), runs, next)
	} else {
		err = t.srv.h.PutChunks(ctx, t.session, req.GetRoot(), next)
	}
	switch {
	case readErr != nil:
		return readErr // the precise reason, however the Handler wrapped it
	case err != nil:
		return err
	case !ended:
		return internalf("PutChunks returned after %d chunks, before the end of the upload", count)
	}
	return WriteMessage(ctx, t.st, &syncpb.Ack{})
}

// propose reads the proposal and its chunk list, refusing counts that do
// not add up, then asks the Handler to commit.
func (t *tx) propose(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameProposeRequest, payload, &syncpb.ProposeRequest{})
	if err != nil {
		return err
	}
	if err := checkProposeRequest(req); err != nil {
		return err
	}
	var refs []ChunkRef
	if req.GetDelta() {
		refs, err = t.readDeltaList(ctx, req)
	} else {
		refs, err = readChunkList(ctx, t.st, uint64(req.GetChunkCount()), t.srv.opts.MaxChunkSize)
	}
	if err != nil {
		return fmt.Errorf("propose %q: %w", req.GetPath(), err)
	}
	// The client ends its direction after the list: anything more means
	// the count was wrong.
	if err := expectEnd(ctx, t.st); err != nil {
		return fmt.Errorf("propose %q: after %d chunk list entries: %w", req.GetPath(), len(refs), err)
	}
	if err := checkListSize(req, refs); err != nil {
		return err
	}
	resp, err := t.srv.h.Propose(ctx, t.session, req, refs)
	if err != nil {
		return err
	}
	if resp == nil {
		return internalf("Propose returned no response")
	}
	return WriteMessage(ctx, t.st, resp)
}

// checkProposeRequest checks the fields of a proposal that need no list.
func checkProposeRequest(req *syncpb.ProposeRequest) error {
	if err := checkHash("propose: base_hash", req.GetBaseHash()); err != nil {
		return err
	}
	if err := checkHash("propose: hash", req.GetHash()); err != nil {
		return err
	}
	if req.GetSize() < 0 {
		return fmt.Errorf("%w: propose %q: size %d", ErrBadRequest, req.GetPath(), req.GetSize())
	}
	return nil
}

// checkListSize refuses a chunk list that does not add up to the file.
func checkListSize(req *syncpb.ProposeRequest, refs []ChunkRef) error {
	if len(refs) == 0 {
		return nil
	}
	var total int64
	for _, r := range refs {
		total += int64(r.Size)
	}
	if total != req.GetSize() {
		return fmt.Errorf("%w: propose %q: chunks add up to %d bytes, file size %d", ErrBadRequest, req.GetPath(), total, req.GetSize())
	}
	return nil
}

// readDeltaList reads the ChunkListDelta of a delta proposal and builds
// the list it makes from its source, which the Handler resolves.
func (t *tx) readDeltaList(ctx context.Context, req *syncpb.ProposeRequest) ([]ChunkRef, error) {
	dh, ok := t.srv.h.(DeltaHandler)
	if !ok {
		return nil, fmt.Errorf("%w: this server takes no delta proposals", ErrUnsupported)
	}
	var m syncpb.ChunkListDelta
	if err := ReadMessage(ctx, t.st, &m); err != nil {
		return nil, fmt.Errorf("chunk list delta: %w", err)
	}
	d, err := DecodeListDelta(&m)
	if err != nil {
		return nil, err
	}
	// Checked before the source is looked up: a delta that cannot make
	// the announced list costs the server nothing.
	if d.Len() != uint64(req.GetChunkCount()) {
		return nil, fmt.Errorf("%w: chunk list delta makes %d entries, chunk_count is %d", ErrBadRequest, d.Len(), req.GetChunkCount())
	}
	if d.SourceHash.IsZero() {
		return nil, fmt.Errorf("%w: chunk list delta names no source", ErrBadRequest)
	}
	path := d.SourcePath
	if path == "" {
		path = req.GetPath()
	}
	source, err := dh.SourceChunkList(ctx, t.session, req.GetRoot(), path, d.SourceHash)
	if err != nil {
		return nil, fmt.Errorf("delta source %q: %w", path, err)
	}
	return ApplyListDelta(source, d, uint64(req.GetChunkCount()), t.srv.opts.MaxChunkSize)
}

// expectEnd reads the end of the peer's direction; a further frame is
// ErrBadRequest.
func expectEnd(ctx context.Context, st *Stream) error {
	ft, _, err := st.ReadFrame(ctx)
	switch {
	case err == io.EOF:
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("%w: unexpected %s frame", ErrBadRequest, frameName(ft))
}

func (t *tx) heads(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameHeadsRequest, payload, &syncpb.HeadsRequest{})
	if err != nil {
		return err
	}
	emit := func(heads []*syncpb.FileHead) error {
		for len(heads) > 0 {
			part := &syncpb.HeadsPart{Heads: heads}
			for len(part.Heads) > 1 && proto.Size(part) > maxHeadsPartBytes {
				part.Heads = part.Heads[:len(part.Heads)/2]
			}
			if err := WriteMessage(ctx, t.st, part); err != nil {
				return err
			}
			heads = heads[len(part.Heads):]
		}
		return nil
	}
	if hp, ok := t.srv.h.(HeadsPager); ok && req.GetLimit() > 0 {
		resume, more, err := hp.HeadsPage(ctx, t.session, req, emit)
		if err != nil {
			return err
		}
		return WriteMessage(ctx, t.st, &syncpb.HeadsPart{Done: true, RootSeq: resume, More: more})
	}
	rootSeq, err := t.srv.h.Heads(ctx, t.session, req, emit)
	if err != nil {
		return err
	}
	return WriteMessage(ctx, t.st, &syncpb.HeadsPart{Done: true, RootSeq: rootSeq})
}

// HeadsPager is a Handler that answers a HeadsRequest's limit: it emits
// at most Limit heads, in the order of their last change, and reports
// whether it stopped there (more) and the sequence to ask the next page
// after. Without it a limit is ignored and every head is answered.
type HeadsPager interface {
	HeadsPage(ctx context.Context, s *Session, req *syncpb.HeadsRequest, emit func([]*syncpb.FileHead) error) (resume uint64, more bool, err error)
}

func (t *tx) chunkList(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameChunkListRequest, payload, &syncpb.ChunkListRequest{})
	if err != nil {
		return err
	}
	if len(req.GetHash()) != cas.IDSize {
		return fmt.Errorf("%w: chunk list %q: hash of %d bytes, want %d", ErrBadRequest, req.GetPath(), len(req.GetHash()), cas.IDSize)
	}
	size, refs, err := t.srv.h.ChunkList(ctx, t.session, req)
	if err != nil {
		return err
	}
	if len(refs) > MaxChunkList {
		return internalf("ChunkList of %q has %d entries, limit %d", req.GetPath(), len(refs), MaxChunkList)
	}
	hdr := &syncpb.ChunkListHeader{Hash: req.GetHash(), Size: size, ChunkCount: uint32(len(refs))}
	if d := t.listDelta(ctx, req, refs); d != nil {
		hdr.Delta = true
		if err := WriteMessage(ctx, t.st, hdr); err != nil {
			return err
		}
		return WriteMessage(ctx, t.st, EncodeListDelta(d))
	}
	if err := WriteMessage(ctx, t.st, hdr); err != nil {
		return err
	}
	return writeChunkList(ctx, t.st, refs)
}

// listDelta is the delta of refs against the request's base when the
// Handler can resolve the base and the delta is smaller; nil otherwise, and
// the list goes whole. A base the client cannot reach is not an error: the
// client may hold content the server has forgotten.
func (t *tx) listDelta(ctx context.Context, req *syncpb.ChunkListRequest, refs []ChunkRef) *ListDelta {
	dh, ok := t.srv.h.(DeltaHandler)
	if !ok || len(req.GetBaseHash()) != cas.IDSize || len(refs) == 0 {
		return nil
	}
	base, _ := cas.IDFromBytes(req.GetBaseHash())
	path := req.GetBasePath()
	if path == "" {
		path = req.GetPath()
	}
	source, err := dh.SourceChunkList(ctx, t.session, req.GetRoot(), path, base)
	if err != nil || len(source) == 0 {
		return nil
	}
	d := DiffChunkLists(source, refs)
	if !ListDeltaFits(d, len(refs)) {
		return nil
	}
	return d
}

func (t *tx) getChunks(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameGetChunksRequest, payload, &syncpb.GetChunksRequest{})
	if err != nil {
		return err
	}
	ids, err := ParseIDs(req.GetIds(), MaxGetChunksIDs)
	if err != nil {
		return fmt.Errorf("get chunks: %w", err)
	}
	sent := 0
	emit := func(c Chunk) error {
		if sent >= len(ids) || c.ID != ids[sent] {
			return internalf("GetChunks emitted chunk %s as answer %d of %d", c.ID.Short(), sent, len(ids))
		}
		if err := checkChunk(c, MaxFramePayloadLimit-ChunkHeaderMaxLen); err != nil {
			return internalf("GetChunks emitted a bad chunk: %w", err)
		}
		if err := t.st.WriteChunk(ctx, c); err != nil {
			return err
		}
		sent++
		return nil
	}
	dicts, err := parseDicts(req, len(ids))
	if err != nil {
		return fmt.Errorf("get chunks: %w", err)
	}
	if dh, ok := t.srv.h.(DeltaHandler); ok && dicts != nil {
		err = dh.GetChunksDict(ctx, t.session, req.GetRoot(), ids, dicts, emit)
	} else {
		err = t.srv.h.GetChunks(ctx, t.session, req.GetRoot(), ids, emit)
	}
	if err != nil {
		return err
	}
	if sent != len(ids) {
		return internalf("GetChunks emitted %d of %d chunks", sent, len(ids))
	}
	return nil
}

// parseDicts reads the dictionaries of a GetChunksRequest: none, or for
// each of n ids at most MaxDeltaSources. A chunk without any gets nil.
func parseDicts(req *syncpb.GetChunksRequest, n int) ([][]cas.ID, error) {
	counts := req.GetDictCounts()
	if len(counts) == 0 {
		if len(req.GetDictIds()) != 0 {
			return nil, fmt.Errorf("%w: dictionary ids without counts", ErrBadRequest)
		}
		return nil, nil
	}
	if len(counts) != n {
		return nil, fmt.Errorf("%w: %d dictionary counts for %d ids", ErrBadRequest, len(counts), n)
	}
	ids, err := ParseIDs(req.GetDictIds(), n*MaxDeltaSources)
	if err != nil {
		return nil, fmt.Errorf("dictionaries: %w", err)
	}
	dicts := make([][]cas.ID, n)
	next := 0
	for i, c := range counts {
		if c > MaxDeltaSources || uint64(c) > uint64(len(ids)-next) {
			return nil, fmt.Errorf("%w: chunk %d has %d dictionaries, %d ids left, at most %d each", ErrBadRequest, i, c, len(ids)-next, MaxDeltaSources)
		}
		if c > 0 {
			dicts[i] = ids[next : next+int(c)]
			next += int(c)
		}
	}
	if next != len(ids) {
		return nil, fmt.Errorf("%w: %d dictionary ids, the counts name %d", ErrBadRequest, len(ids), next)
	}
	return dicts, nil
}

// signatures answers a SignaturesRequest through the DeltaHandler,
// checking the request's bounds first and the answer's shape after.
func (t *tx) signatures(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameSignaturesRequest, payload, &syncpb.SignaturesRequest{})
	if err != nil {
		return err
	}
	dh, ok := t.srv.h.(DeltaHandler)
	if !ok {
		return fmt.Errorf("%w: this server gives no signatures", ErrUnsupported)
	}
	n, err := CheckSignaturesRequest(req)
	if err != nil {
		return err
	}
	sigs, err := dh.Signatures(ctx, t.session, req)
	if err != nil {
		return err
	}
	if len(sigs) != n {
		return internalf("Signatures answered %d of %d chunks", len(sigs), n)
	}
	return WriteMessage(ctx, t.st, &syncpb.SignaturesResponse{Signatures: sigs})
}

// CheckSignaturesRequest checks a SignaturesRequest's bounds (at most
// MaxSignatureChunks chunks, block sizes within MinSignatureBlock and
// MaxSignatureBlock, 32-byte hashes) and returns its number of chunks.
func CheckSignaturesRequest(req *syncpb.SignaturesRequest) (int, error) {
	n := 0
	for i, src := range req.GetSources() {
		if len(src.GetHash()) != cas.IDSize {
			return 0, fmt.Errorf("%w: signatures source %d: hash of %d bytes", ErrBadRequest, i, len(src.GetHash()))
		}
		if bs := src.GetBlockSize(); bs < MinSignatureBlock || bs > MaxSignatureBlock {
			return 0, fmt.Errorf("%w: signatures source %d: block size %d, want %d to %d", ErrBadRequest, i, bs, MinSignatureBlock, MaxSignatureBlock)
		}
		if len(src.GetIds())%cas.IDSize != 0 {
			return 0, fmt.Errorf("%w: signatures source %d: ids field of %d bytes", ErrBadRequest, i, len(src.GetIds()))
		}
		n += len(src.GetIds()) / cas.IDSize
		if n > MaxSignatureChunks {
			return 0, fmt.Errorf("%w: signatures for more than %d chunks", ErrBadRequest, MaxSignatureChunks)
		}
	}
	return n, nil
}

// watch pushes the Handler's notices until the connection ends or the
// client abandons the stream; a reader notices the latter.
func (t *tx) watch(ctx context.Context, payload []byte) error {
	req, err := decodeRequest(FrameWatchRequest, payload, &syncpb.WatchRequest{})
	if err != nil {
		return err
	}
	if n := len(req.GetCursors()); n > MaxWatchCursors {
		return fmt.Errorf("%w: watch with %d cursors, limit %d", ErrBadRequest, n, MaxWatchCursors)
	}
	t.st.SetTimeouts(watchReadTimeout, 0)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var reader sync.WaitGroup
	reader.Go(func() {
		defer cancel()
		_, _, _ = t.st.ReadFrame(wctx) // the client says nothing more: any outcome ends the watch
	})
	push := func(n *syncpb.Notice) error { return WriteMessage(wctx, t.st, n) }
	err = t.srv.h.Watch(wctx, t.session, req, push)
	abandoned := wctx.Err() != nil
	cancel()
	reader.Wait()
	if abandoned {
		return nil // the client left or the connection ended: nobody to tell
	}
	return err
}

package syncproto

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// errorFrameWait bounds how long a client whose write failed waits for the
// server's error frame, which explains the failure better than a reset.
const errorFrameWait = 2 * time.Second

// Register registers a new device: a one-shot connection carrying one
// RegisterClientRequest. It returns the server's answer and the
// fingerprint of the certificate the server presented, which a client
// dialing with an empty pin (trust on first use) stores; the fingerprint is
// returned whenever the handshake completed, even if registration failed.
// Bytes on the wire go to cfg.Wire when it is set.
func Register(ctx context.Context, addr string, tlsConf *tls.Config, cfg Config, req *syncpb.RegisterClientRequest) (*syncpb.RegisterClientResponse, string, error) {
	conn, err := Dial(ctx, addr, tlsConf, cfg)
	if err != nil {
		return nil, "", err
	}
	defer conn.Close()
	fingerprint := tlsutil.PeerFingerprint(conn.TLS())
	var resp syncpb.RegisterClientResponse
	if err := transact(ctx, conn, req, &resp); err != nil {
		return nil, fingerprint, fmt.Errorf("register client %q at %s: %w", req.GetClientId(), addr, err)
	}
	return &resp, fingerprint, nil
}

// Client is an authenticated connection to a quics server. Its methods
// are transactions, each on its own stream, and are safe for concurrent
// use: run several PutChunks or GetChunks at once for parallel transfers.
// Every frame read or written has the deadline of the Config it was
// dialed with (ReadTimeout, WriteTimeout), and ctx cancels any call.
type Client struct {
	conn       *Conn
	clientID   string
	serverTime time.Time
}

// DialSession connects to the server at addr and authenticates as
// clientID with token. A wrong token or unknown client is
// ErrUnauthenticated.
func DialSession(ctx context.Context, addr string, tlsConf *tls.Config, cfg Config, clientID, token string) (*Client, error) {
	conn, err := Dial(ctx, addr, tlsConf, cfg)
	if err != nil {
		return nil, err
	}
	var resp syncpb.AuthResponse
	if err := transact(ctx, conn, &syncpb.AuthRequest{ClientId: clientID, Token: token}, &resp); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("authenticate %q at %s: %w", clientID, addr, err)
	}
	return &Client{conn: conn, clientID: clientID, serverTime: time.Unix(0, resp.GetServerTime())}, nil
}

// ClientID returns the ID the session authenticated as.
func (c *Client) ClientID() string { return c.clientID }

// ServerTime returns the server's clock when the session was
// authenticated, to show clock skew.
func (c *Client) ServerTime() time.Time { return c.serverTime }

// Fingerprint returns the fingerprint of the server's certificate.
func (c *Client) Fingerprint() string { return tlsutil.PeerFingerprint(c.conn.TLS()) }

// WireStats returns the UDP payload bytes the session's socket has sent
// and received (see Conn.WireStats).
func (c *Client) WireStats() (sent, received uint64) { return c.conn.WireStats() }

// Close ends the session; transactions in flight fail.
func (c *Client) Close() error { return c.conn.Close() }

// Done is closed when the connection has ended, for whatever reason.
func (c *Client) Done() <-chan struct{} { return c.conn.Context().Done() }

// openStream starts a transaction, waiting at most the write timeout for
// the server to allow another stream.
func openStream(ctx context.Context, conn *Conn) (*Stream, error) {
	octx, cancel := context.WithTimeout(ctx, conn.conf.WriteTimeout)
	defer cancel()
	st, err := conn.OpenStream(octx)
	if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("%w: no stream available within %v: %w", ErrTimeout, conn.conf.WriteTimeout, err)
	}
	return st, err
}

// abort gives up a transaction: both directions are reset so the server
// stops at once.
func abort(st *Stream, err error) error {
	st.Reset(CodeCanceled)
	return err
}

// writeFailed explains a failed write: a server that refused the request
// sent an error frame before resetting, and that frame says why.
func writeFailed(ctx context.Context, st *Stream, err error) error {
	rctx, cancel := context.WithTimeout(ctx, errorFrameWait)
	defer cancel()
	if _, _, rerr := st.ReadFrame(rctx); rerr != nil {
		if e, ok := rerr.(*Error); ok { // an error frame, not a reset
			return abort(st, e)
		}
	}
	return abort(st, err)
}

// finish reads the server's end of the stream after its last answer, so
// the stream is closed on both sides.
func finish(ctx context.Context, st *Stream) error {
	if err := expectEnd(ctx, st); err != nil {
		return abort(st, err)
	}
	return nil
}

// endRequest ends the client's direction. It cannot fail in a way that
// matters: a server that already answered may have stopped reading (and
// the close then fails), and a server that failed says so in the answer
// read next.
func endRequest(st *Stream) { _ = st.CloseWrite() }

// transact runs a transaction of one request and one answer.
func transact(ctx context.Context, conn *Conn, req, resp proto.Message) error {
	st, err := openStream(ctx, conn)
	if err != nil {
		return err
	}
	if err := WriteMessage(ctx, st, req); err != nil {
		return writeFailed(ctx, st, err)
	}
	endRequest(st)
	if err := ReadMessage(ctx, st, resp); err != nil {
		return abort(st, err)
	}
	return finish(ctx, st)
}

// RegisterRoot creates a root named name, protected by password, with this
// client as its owner and first member.
func (c *Client) RegisterRoot(ctx context.Context, name, password string) (*syncpb.RootInfo, error) {
	var info syncpb.RootInfo
	if err := transact(ctx, c.conn, &syncpb.RegisterRootRequest{Name: name, RootPassword: password}, &info); err != nil {
		return nil, fmt.Errorf("register root %q: %w", name, err)
	}
	return &info, nil
}

// JoinRoot makes this client a member of the root named name.
func (c *Client) JoinRoot(ctx context.Context, name, password string) (*syncpb.RootInfo, error) {
	var info syncpb.RootInfo
	if err := transact(ctx, c.conn, &syncpb.JoinRootRequest{Name: name, RootPassword: password}, &info); err != nil {
		return nil, fmt.Errorf("join root %q: %w", name, err)
	}
	return &info, nil
}

// LeaveRoot ends this client's membership of the root named name.
func (c *Client) LeaveRoot(ctx context.Context, name string) error {
	if err := transact(ctx, c.conn, &syncpb.LeaveRootRequest{Name: name}, &syncpb.Ack{}); err != nil {
		return fmt.Errorf("leave root %q: %w", name, err)
	}
	return nil
}

// ListRoots lists the roots this client belongs to, or with remote every
// root on the server.
func (c *Client) ListRoots(ctx context.Context, remote bool) ([]*syncpb.RootInfo, error) {
	var resp syncpb.ListRootsResponse
	if err := transact(ctx, c.conn, &syncpb.ListRootsRequest{Remote: remote}, &resp); err != nil {
		return nil, fmt.Errorf("list roots: %w", err)
	}
	return resp.GetRoots(), nil
}

// Ping measures the round trip to the server.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	var pong syncpb.Pong
	if err := transact(ctx, c.conn, &syncpb.Ping{Sent: start.UnixNano()}, &pong); err != nil {
		return 0, fmt.Errorf("ping: %w", err)
	}
	if pong.GetSent() != start.UnixNano() {
		return 0, fmt.Errorf("%w: ping: pong echoes %d, sent %d", ErrBadRequest, pong.GetSent(), start.UnixNano())
	}
	return time.Since(start), nil
}

// HaveChunks reports for each of ids whether the server holds it in root;
// the server pins those it has for this session. Requests go in batches
// of MaxHaveChunksIDs.
func (c *Client) HaveChunks(ctx context.Context, root string, ids []cas.ID) ([]bool, error) {
	present := make([]bool, 0, len(ids))
	for start := 0; start < len(ids); start += MaxHaveChunksIDs {
		batch := ids[start:min(start+MaxHaveChunksIDs, len(ids))]
		var resp syncpb.HaveChunksResponse
		req := &syncpb.HaveChunksRequest{Root: root, Ids: AppendIDs(nil, batch)}
		if err := transact(ctx, c.conn, req, &resp); err != nil {
			return nil, fmt.Errorf("have chunks in %q (ids %d..%d): %w", root, start, start+len(batch), err)
		}
		bits, err := ParseBitmap(resp.GetPresent(), len(batch))
		if err != nil {
			return nil, fmt.Errorf("have chunks in %q: answer: %w", root, err)
		}
		present = append(present, bits...)
	}
	return present, nil
}

// PutChunks uploads chunks to root on one stream and returns once the
// server has verified them and made them durable. A chunk whose bytes do
// not hash to its ID fails the upload with ErrHashMismatch.
func (c *Client) PutChunks(ctx context.Context, root string, chunks []Chunk) error {
	i := 0
	return c.PutChunkStream(ctx, root, func() (Chunk, error) {
		if i == len(chunks) {
			return Chunk{}, io.EOF
		}
		i++
		return chunks[i-1], nil
	})
}

// PutChunkStream is PutChunks for the chunks next returns until io.EOF:
// each is sent before the next is asked for, so its Data may be reused by
// then, and a batch of any size costs one chunk of memory. No stream is
// opened when there is no chunk; an error from next ends the upload with
// it, and nothing of the batch is acknowledged.
func (c *Client) PutChunkStream(ctx context.Context, root string, next func() (Chunk, error)) error {
	return c.PutChunkRuns(ctx, root, nil, next)
}

// PutChunkRuns is PutChunkStream telling the server which runs of the
// chunks next yields are whole contents (at most MaxWholeRuns; see
// WholeRun), so that it can check those contents as they arrive. A server
// that does not know runs ignores them.
func (c *Client) PutChunkRuns(ctx context.Context, root string, runs []WholeRun, next func() (Chunk, error)) error {
	if len(runs) > MaxWholeRuns {
		return fmt.Errorf("%w: put chunks to %q: %d whole runs, limit %d", ErrBadRequest, root, len(runs), MaxWholeRuns)
	}
	ch, err := next()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return fmt.Errorf("put chunks to %q: %w", root, err)
	}
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return fmt.Errorf("put chunks to %q: %w", root, err)
	}
	if err := WriteMessage(ctx, st, &syncpb.PutChunksRequest{Root: root, Wholes: wholeRunsToPB(runs)}); err != nil {
		return fmt.Errorf("put chunks to %q: %w", root, writeFailed(ctx, st, err))
	}
	for i := 0; ; i++ {
		if err := checkChunk(ch, MaxFramePayloadLimit-ChunkHeaderMaxLen); err != nil {
			return fmt.Errorf("put chunks to %q: chunk %d: %w", root, i, abort(st, err))
		}
		if err := st.WriteChunk(ctx, ch); err != nil {
			return fmt.Errorf("put chunks to %q: chunk %d (%s): %w", root, i, ch.ID.Short(), writeFailed(ctx, st, err))
		}
		ch, err = next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("put chunks to %q: %w", root, abort(st, err))
		}
	}
	endRequest(st)
	if err := ReadMessage(ctx, st, &syncpb.Ack{}); err != nil {
		return fmt.Errorf("put chunks to %q: %w", root, abort(st, err))
	}
	if err := finish(ctx, st); err != nil {
		return fmt.Errorf("put chunks to %q: %w", root, err)
	}
	return nil
}

// Propose asks the server to commit a new version of a file (please-sync)
// whose content is chunks, in order. It sets req.ChunkCount. A head that
// moved since req's base is ErrConflict; chunks the server lacks are
// ErrMissingChunks.
func (c *Client) Propose(ctx context.Context, req *syncpb.ProposeRequest, chunks []ChunkRef) (*syncpb.CommitResponse, error) {
	if len(chunks) > MaxChunkList {
		return nil, fmt.Errorf("%w: propose %q: %d chunks, limit %d", ErrBadRequest, req.GetPath(), len(chunks), MaxChunkList)
	}
	req.ChunkCount = uint32(len(chunks))
	req.Delta = false
	return c.propose(ctx, req, func(st *Stream) error { return writeChunkList(ctx, st, chunks) })
}

// ProposeDelta is Propose with the chunk list written as a delta against
// a version the server has (a delta manifest, see ListDelta); it sets
// req.ChunkCount and req.Delta. A source that is not a version the client
// can reach is ErrNotFound, and a server without deltas answers
// ErrUnsupported: propose the whole list then.
func (c *Client) ProposeDelta(ctx context.Context, req *syncpb.ProposeRequest, d *ListDelta) (*syncpb.CommitResponse, error) {
	n := d.Len()
	if n > MaxChunkList || len(d.Runs) > MaxDeltaRuns || len(d.New) > MaxDeltaEntries || d.SourceHash.IsZero() {
		return nil, fmt.Errorf("%w: propose %q: delta of %d runs and %d new entries for %d chunks from %s",
			ErrBadRequest, req.GetPath(), len(d.Runs), len(d.New), n, d.SourceHash.Short())
	}
	req.ChunkCount = uint32(n)
	req.Delta = true
	return c.propose(ctx, req, func(st *Stream) error { return WriteMessage(ctx, st, EncodeListDelta(d)) })
}

func (c *Client) propose(ctx context.Context, req *syncpb.ProposeRequest, writeList func(*Stream) error) (*syncpb.CommitResponse, error) {
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return nil, fmt.Errorf("propose %q: %w", req.GetPath(), err)
	}
	if err := WriteMessage(ctx, st, req); err != nil {
		return nil, fmt.Errorf("propose %q: %w", req.GetPath(), writeFailed(ctx, st, err))
	}
	if err := writeList(st); err != nil {
		return nil, fmt.Errorf("propose %q: chunk list: %w", req.GetPath(), writeFailed(ctx, st, err))
	}
	endRequest(st)
	var resp syncpb.CommitResponse
	if err := ReadMessage(ctx, st, &resp); err != nil {
		return nil, fmt.Errorf("propose %q: %w", req.GetPath(), abort(st, err))
	}
	if err := finish(ctx, st); err != nil {
		return nil, fmt.Errorf("propose %q: %w", req.GetPath(), err)
	}
	return &resp, nil
}

// SignatureSource names chunks of a version of a file whose block
// signatures a client asks for (see Client.Signatures).
type SignatureSource struct {
	Path      string
	Hash      cas.ID
	IDs       []cas.ID
	BlockSize int
}

// Signatures returns the block signatures (see Sign) of the chunks srcs
// name, in order, in requests of at most MaxSignatureChunks chunks. A
// signature's length is checked by whoever uses it (EncodeDelta).
func (c *Client) Signatures(ctx context.Context, root string, srcs []SignatureSource) ([][]byte, error) {
	var out [][]byte
	req := &syncpb.SignaturesRequest{Root: root}
	n := 0
	flush := func() error {
		if n == 0 {
			return nil
		}
		var resp syncpb.SignaturesResponse
		if err := transact(ctx, c.conn, req, &resp); err != nil {
			return fmt.Errorf("signatures in %q: %w", root, err)
		}
		if len(resp.GetSignatures()) != n {
			return fmt.Errorf("%w: signatures in %q: %d answers for %d chunks", ErrBadRequest, root, len(resp.GetSignatures()), n)
		}
		out = append(out, resp.GetSignatures()...)
		req, n = &syncpb.SignaturesRequest{Root: root}, 0
		return nil
	}
	for _, s := range srcs {
		ids := s.IDs
		for len(ids) > 0 {
			if n == MaxSignatureChunks {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			take := ids[:min(len(ids), MaxSignatureChunks-n)]
			req.Sources = append(req.Sources, &syncpb.SignaturesRequest_Source{
				Path: s.Path, Hash: s.Hash[:], Ids: AppendIDs(nil, take), BlockSize: uint32(s.BlockSize),
			})
			n += len(take)
			ids = ids[len(take):]
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}

// Heads returns the heads of root changed after afterSeq (0: all of them,
// a full scan) and the root sequence to resume from.
func (c *Client) Heads(ctx context.Context, root string, afterSeq uint64) ([]*syncpb.FileHead, uint64, error) {
	heads, resume, _, err := c.HeadsPage(ctx, root, afterSeq, 0)
	return heads, resume, err
}

// HeadsPage is Heads asking at most limit heads (0: all). When more is
// true the server stopped at the limit: ask the next page after resume.
// A server that does not page answers every head, with more false.
func (c *Client) HeadsPage(ctx context.Context, root string, afterSeq uint64, limit int) (heads []*syncpb.FileHead, resume uint64, more bool, err error) {
	if limit < 0 || limit > MaxHeadsPage {
		return nil, 0, false, fmt.Errorf("%w: heads page of %d", ErrBadRequest, limit)
	}
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return nil, 0, false, fmt.Errorf("heads of %q: %w", root, err)
	}
	if err := WriteMessage(ctx, st, &syncpb.HeadsRequest{Root: root, AfterSeq: afterSeq, Limit: uint32(limit)}); err != nil {
		return nil, 0, false, fmt.Errorf("heads of %q: %w", root, writeFailed(ctx, st, err))
	}
	endRequest(st)
	for {
		var part syncpb.HeadsPart
		if err := ReadMessage(ctx, st, &part); err != nil {
			return nil, 0, false, fmt.Errorf("heads of %q after %d: %w", root, len(heads), abort(st, err))
		}
		heads = append(heads, part.GetHeads()...)
		if part.GetDone() {
			if err := finish(ctx, st); err != nil {
				return nil, 0, false, fmt.Errorf("heads of %q: %w", root, err)
			}
			return heads, part.GetRootSeq(), part.GetMore(), nil
		}
	}
}

// ChunkList returns the size and chunk list of the version of path in
// root whose content hash is hash.
func (c *Client) ChunkList(ctx context.Context, root, path string, hash cas.ID) (int64, []ChunkRef, error) {
	return c.chunkList(ctx, &syncpb.ChunkListRequest{Root: root, Path: path, Hash: hash[:]}, nil)
}

// ChunkListFrom is ChunkList for a client that holds another version of
// the file: the version of basePath ("" for path) whose content hash is
// baseHash and chunk list base. The server may answer with a delta
// against it, applied here, and the base's chunks become dictionaries for
// GetChunksDict.
func (c *Client) ChunkListFrom(ctx context.Context, root, path string, hash cas.ID, basePath string, baseHash cas.ID, base []ChunkRef) (int64, []ChunkRef, error) {
	req := &syncpb.ChunkListRequest{Root: root, Path: path, Hash: hash[:], BasePath: basePath, BaseHash: baseHash[:]}
	return c.chunkList(ctx, req, base)
}

func (c *Client) chunkList(ctx context.Context, req *syncpb.ChunkListRequest, base []ChunkRef) (int64, []ChunkRef, error) {
	fail := func(err error) (int64, []ChunkRef, error) {
		return 0, nil, fmt.Errorf("chunk list of %q in %q: %w", req.GetPath(), req.GetRoot(), err)
	}
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return fail(err)
	}
	if err := WriteMessage(ctx, st, req); err != nil {
		return fail(writeFailed(ctx, st, err))
	}
	endRequest(st)
	var hdr syncpb.ChunkListHeader
	if err := ReadMessage(ctx, st, &hdr); err != nil {
		return fail(abort(st, err))
	}
	if string(hdr.GetHash()) != string(req.GetHash()) || hdr.GetSize() < 0 {
		return fail(abort(st, fmt.Errorf("%w: header for hash %x, size %d", ErrBadRequest, hdr.GetHash(), hdr.GetSize())))
	}
	var refs []ChunkRef
	if hdr.GetDelta() {
		refs, err = readListDelta(ctx, st, req, base, uint64(hdr.GetChunkCount()))
	} else {
		refs, err = readChunkList(ctx, st, uint64(hdr.GetChunkCount()), DefaultMaxChunkSize)
	}
	if err != nil {
		return fail(abort(st, err))
	}
	var total int64
	for _, r := range refs {
		total += int64(r.Size)
	}
	if total != hdr.GetSize() {
		return fail(abort(st, fmt.Errorf("%w: chunks add up to %d bytes, file size %d", ErrBadRequest, total, hdr.GetSize())))
	}
	if err := finish(ctx, st); err != nil {
		return fail(err)
	}
	return hdr.GetSize(), refs, nil
}

// readListDelta reads a ChunkList answer's delta and applies it to base,
// the list of the request's base.
func readListDelta(ctx context.Context, st *Stream, req *syncpb.ChunkListRequest, base []ChunkRef, count uint64) ([]ChunkRef, error) {
	if len(req.GetBaseHash()) == 0 || base == nil {
		return nil, fmt.Errorf("%w: a chunk list delta answers a request without a base", ErrBadRequest)
	}
	var m syncpb.ChunkListDelta
	if err := ReadMessage(ctx, st, &m); err != nil {
		return nil, fmt.Errorf("chunk list delta: %w", err)
	}
	d, err := DecodeListDelta(&m)
	if err != nil {
		return nil, err
	}
	return ApplyListDelta(base, d, count, DefaultMaxChunkSize)
}

// GetChunks downloads the chunks ids of root, in batches of
// MaxGetChunksIDs, calling fn for each in order. A chunk arrives in the
// form the server stores it (see Chunk) and is not verified here: decode it
// with its ID (cas.Stored.Decode checks the hash). Its Data is valid only
// until fn returns. An error from fn stops the download and is returned.
func (c *Client) GetChunks(ctx context.Context, root string, ids []cas.ID, fn func(Chunk) error) error {
	return c.GetChunksDict(ctx, root, ids, nil, fn)
}

// GetChunksDict is GetChunks where chunk i may arrive delta-encoded
// (ChunkDelta) against the chunks dicts[i], which the caller holds and
// which a ChunkListFrom answer on this connection named; decode such a
// chunk with DecodeDelta and their bytes. dicts is nil or has one entry
// per id, each at most MaxDeltaSources chunks.
func (c *Client) GetChunksDict(ctx context.Context, root string, ids []cas.ID, dicts [][]cas.ID, fn func(Chunk) error) error {
	if dicts != nil && len(dicts) != len(ids) {
		return fmt.Errorf("syncproto: get chunks: %d dictionaries for %d ids", len(dicts), len(ids))
	}
	for start := 0; start < len(ids); start += MaxGetChunksIDs {
		end := min(start+MaxGetChunksIDs, len(ids))
		req := &syncpb.GetChunksRequest{Root: root, Ids: AppendIDs(nil, ids[start:end])}
		var batchDicts [][]cas.ID
		if dicts != nil {
			batchDicts = dicts[start:end]
			setDicts(req, batchDicts)
		}
		if err := c.getChunks(ctx, req, ids[start:end], batchDicts, fn); err != nil {
			return fmt.Errorf("get chunks from %q (batch at %d): %w", root, start, err)
		}
	}
	return nil
}

// setDicts writes the dictionaries of a request, none when no chunk has
// any.
func setDicts(req *syncpb.GetChunksRequest, dicts [][]cas.ID) {
	counts := make([]uint32, len(dicts))
	var ids []cas.ID
	for i, d := range dicts {
		d = d[:min(len(d), MaxDeltaSources)]
		counts[i] = uint32(len(d))
		ids = append(ids, d...)
	}
	if len(ids) > 0 {
		req.DictCounts, req.DictIds = counts, AppendIDs(nil, ids)
	}
}

func (c *Client) getChunks(ctx context.Context, req *syncpb.GetChunksRequest, ids []cas.ID, dicts [][]cas.ID, fn func(Chunk) error) error {
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return err
	}
	st.SetMaxFramePayload(DefaultMaxChunkSize + ChunkHeaderMaxLen)
	if err := WriteMessage(ctx, st, req); err != nil {
		return writeFailed(ctx, st, err)
	}
	endRequest(st)
	for i, id := range ids {
		ft, payload, err := st.ReadFrame(ctx)
		switch {
		case err == io.EOF:
			return abort(st, fmt.Errorf("%w: stream ended after %d of %d chunks", ErrTruncated, i, len(ids)))
		case err != nil:
			return abort(st, fmt.Errorf("chunk %d of %d: %w", i, len(ids), err))
		case ft != FrameChunk:
			return abort(st, fmt.Errorf("%w: %s frame where chunk %d was due", ErrBadRequest, frameName(ft), i))
		}
		ch, err := DecodeChunkFrame(payload, DefaultMaxChunkSize)
		if err != nil {
			return abort(st, fmt.Errorf("chunk %d: %w", i, err))
		}
		if ch.ID != id {
			return abort(st, fmt.Errorf("%w: got chunk %s where %s was due", ErrBadRequest, ch.ID.Short(), id.Short()))
		}
		if err := checkDictAnswer(ch, dicts, i); err != nil {
			return abort(st, err)
		}
		if err := fn(ch); err != nil {
			return abort(st, err)
		}
	}
	return finish(ctx, st)
}

// checkDictAnswer refuses a delta-encoded chunk that is not encoded
// against exactly the dictionaries asked for it.
func checkDictAnswer(ch Chunk, dicts [][]cas.ID, i int) error {
	switch ch.Codec {
	case ChunkRaw, ChunkZstd:
		return nil
	case ChunkDelta:
		var asked []cas.ID
		if dicts != nil {
			asked = dicts[i][:min(len(dicts[i]), MaxDeltaSources)]
		}
		got, err := DeltaSources(ch)
		if err != nil {
			return err
		}
		if len(asked) == 0 || !slices.Equal(got, asked) {
			return fmt.Errorf("%w: chunk %s encoded against dictionaries not asked for", ErrBadRequest, ch.ID.Short())
		}
		return nil
	}
	return fmt.Errorf("%w: chunk %s arrived as %s", ErrBadRequest, ch.ID.Short(), ch.Codec)
}

// Watch opens the watch stream for the roots in cursors and calls fn for
// each notice the server pushes, until ctx ends (returning ctx's error),
// the connection fails, or fn returns an error (returned as is).
func (c *Client) Watch(ctx context.Context, cursors []*syncpb.WatchRequest_Cursor, fn func(*syncpb.Notice) error) error {
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return fmt.Errorf("watch: %w", err)
	}
	// The request stays open: the client ends the watch by resetting the
	// stream, and between notices there may be long silence.
	st.SetTimeouts(watchReadTimeout, 0)
	if err := WriteMessage(ctx, st, &syncpb.WatchRequest{Cursors: cursors}); err != nil {
		return fmt.Errorf("watch: %w", writeFailed(ctx, st, err))
	}
	for {
		var n syncpb.Notice
		if err := ReadMessage(ctx, st, &n); err != nil {
			st.Reset(CodeCanceled)
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			return fmt.Errorf("watch: %w", err)
		}
		if err := fn(&n); err != nil {
			return abort(st, err)
		}
	}
}

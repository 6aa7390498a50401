package syncproto

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
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
	if len(chunks) == 0 {
		return nil
	}
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return fmt.Errorf("put chunks to %q: %w", root, err)
	}
	if err := WriteMessage(ctx, st, &syncpb.PutChunksRequest{Root: root}); err != nil {
		return fmt.Errorf("put chunks to %q: %w", root, writeFailed(ctx, st, err))
	}
	var buf []byte
	for i, ch := range chunks {
		if buf, err = EncodeChunkFrame(buf[:0], ch); err != nil {
			return fmt.Errorf("put chunks to %q: chunk %d: %w", root, i, abort(st, err))
		}
		if err := st.WriteFrame(ctx, FrameChunk, buf); err != nil {
			return fmt.Errorf("put chunks to %q: chunk %d (%s): %w", root, i, ch.ID.Short(), writeFailed(ctx, st, err))
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
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return nil, fmt.Errorf("propose %q: %w", req.GetPath(), err)
	}
	if err := WriteMessage(ctx, st, req); err != nil {
		return nil, fmt.Errorf("propose %q: %w", req.GetPath(), writeFailed(ctx, st, err))
	}
	if err := writeChunkList(ctx, st, chunks); err != nil {
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

// Heads returns the heads of root changed after afterSeq (0: all of them,
// a full scan) and the root sequence to resume from.
func (c *Client) Heads(ctx context.Context, root string, afterSeq uint64) ([]*syncpb.FileHead, uint64, error) {
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return nil, 0, fmt.Errorf("heads of %q: %w", root, err)
	}
	if err := WriteMessage(ctx, st, &syncpb.HeadsRequest{Root: root, AfterSeq: afterSeq}); err != nil {
		return nil, 0, fmt.Errorf("heads of %q: %w", root, writeFailed(ctx, st, err))
	}
	endRequest(st)
	var heads []*syncpb.FileHead
	for {
		var part syncpb.HeadsPart
		if err := ReadMessage(ctx, st, &part); err != nil {
			return nil, 0, fmt.Errorf("heads of %q after %d: %w", root, len(heads), abort(st, err))
		}
		heads = append(heads, part.GetHeads()...)
		if part.GetDone() {
			if err := finish(ctx, st); err != nil {
				return nil, 0, fmt.Errorf("heads of %q: %w", root, err)
			}
			return heads, part.GetRootSeq(), nil
		}
	}
}

// ChunkList returns the size and chunk list of the version of path in
// root whose content hash is hash.
func (c *Client) ChunkList(ctx context.Context, root, path string, hash cas.ID) (int64, []ChunkRef, error) {
	fail := func(err error) (int64, []ChunkRef, error) {
		return 0, nil, fmt.Errorf("chunk list of %q in %q: %w", path, root, err)
	}
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return fail(err)
	}
	if err := WriteMessage(ctx, st, &syncpb.ChunkListRequest{Root: root, Path: path, Hash: hash[:]}); err != nil {
		return fail(writeFailed(ctx, st, err))
	}
	endRequest(st)
	var hdr syncpb.ChunkListHeader
	if err := ReadMessage(ctx, st, &hdr); err != nil {
		return fail(abort(st, err))
	}
	if string(hdr.GetHash()) != string(hash[:]) || hdr.GetSize() < 0 {
		return fail(abort(st, fmt.Errorf("%w: header for hash %x, size %d", ErrBadRequest, hdr.GetHash(), hdr.GetSize())))
	}
	refs, err := readChunkList(ctx, st, uint64(hdr.GetChunkCount()), DefaultMaxChunkSize)
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

// GetChunks downloads the chunks ids of root, in batches of
// MaxGetChunksIDs, calling fn for each in order. A chunk arrives in the
// form the server stores it (see Chunk) and is not verified here: decode it
// with its ID (cas.Stored.Decode checks the hash). Its Data is valid only
// until fn returns. An error from fn stops the download and is returned.
func (c *Client) GetChunks(ctx context.Context, root string, ids []cas.ID, fn func(Chunk) error) error {
	for start := 0; start < len(ids); start += MaxGetChunksIDs {
		batch := ids[start:min(start+MaxGetChunksIDs, len(ids))]
		if err := c.getChunks(ctx, root, batch, fn); err != nil {
			return fmt.Errorf("get chunks from %q (batch at %d): %w", root, start, err)
		}
	}
	return nil
}

func (c *Client) getChunks(ctx context.Context, root string, ids []cas.ID, fn func(Chunk) error) error {
	st, err := openStream(ctx, c.conn)
	if err != nil {
		return err
	}
	st.SetMaxFramePayload(DefaultMaxChunkSize + ChunkHeaderMaxLen)
	if err := WriteMessage(ctx, st, &syncpb.GetChunksRequest{Root: root, Ids: AppendIDs(nil, ids)}); err != nil {
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
		if err := fn(ch); err != nil {
			return abort(st, err)
		}
	}
	return finish(ctx, st)
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

package syncproto

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/syncbuf"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto/syncpb"
)

const testServerPassword = "server secret"

type syncServer struct {
	addr        string
	fingerprint string
	h           *memHandler
	log         *syncbuf.Buffer
	stop        func() error
}

// startSyncServer runs a Server over h on 127.0.0.1. Cleanup stops it and
// checks that Serve returned nil.
func startSyncServer(t testing.TB, h *memHandler, cfg Config) *syncServer {
	t.Helper()
	return startServerOf(t, h, h, cfg)
}

// startServerOf is startSyncServer serving handler, which wraps h.
func startServerOf(t testing.TB, handler Handler, h *memHandler, cfg Config) *syncServer {
	t.Helper()
	cert, err := tlsutil.LoadOrCreate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &syncServer{fingerprint: tlsutil.Fingerprint(cert.Certificate[0]), h: h, log: &syncbuf.Buffer{}}
	logger := slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Logger = logger
	ctx, cancel := context.WithCancel(context.Background())
	l, err := Listen(ctx, "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	done := make(chan error, 1)
	srv := NewServer(handler, ServerOptions{Logger: logger})
	go func() { done <- srv.Serve(ctx, l) }()
	s.stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("Serve did not return after cancel")
		}
	})
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func (s *syncServer) tls() *tls.Config { return tlsutil.PinnedClientConfig(s.fingerprint, ALPN) }

// register registers a new client ID and returns it with its token.
func (s *syncServer) register(t testing.TB, cfg Config) (id, token string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id = rand.Text()
	resp, fp, err := Register(ctx, s.addr, s.tls(), cfg, &syncpb.RegisterClientRequest{ClientId: id, Name: "dev", ServerPassword: testServerPassword})
	if err != nil {
		t.Fatal(err)
	}
	if fp != s.fingerprint {
		t.Errorf("Register saw fingerprint %s, want %s", fp, s.fingerprint)
	}
	return id, resp.GetToken()
}

// client registers a new device and opens its session.
func (s *syncServer) client(t testing.TB) *Client {
	t.Helper()
	id, token := s.register(t, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := DialSession(ctx, s.addr, s.tls(), Config{}, id, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawConn dials without authenticating, for requests a Client never sends.
func (s *syncServer) rawConn(t testing.TB) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := Dial(ctx, s.addr, s.tls(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// storedChunk returns data as a chunk in the form the store keeps it.
func storedChunk(t testing.TB, data []byte) Chunk {
	t.Helper()
	st, err := cas.Compress(data)
	if err != nil {
		t.Fatal(err)
	}
	return Chunk{Codec: ChunkCodec(st.Codec), ID: cas.Sum(data), RawLen: st.RawLen, Data: st.Data}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustRoot(ctx context.Context, t *testing.T, c *Client, name string) {
	t.Helper()
	if _, err := c.RegisterRoot(ctx, name, "root secret"); err != nil {
		t.Fatal(err)
	}
}

// upload puts chunks and proposes path with them as content.
func upload(ctx context.Context, c *Client, root, path string, baseSeq uint64, chunks ...Chunk) (*syncpb.CommitResponse, []ChunkRef, error) {
	if err := c.PutChunks(ctx, root, chunks); err != nil {
		return nil, nil, err
	}
	var refs []ChunkRef
	var whole []byte
	for _, ch := range chunks {
		data, err := cas.Stored{Codec: cas.Codec(ch.Codec), Data: ch.Data, RawLen: ch.RawLen}.Decode(ch.ID)
		if err != nil {
			return nil, nil, err
		}
		whole = append(whole, data...)
		refs = append(refs, ChunkRef{ID: ch.ID, Size: uint32(ch.RawLen)})
	}
	hash := cas.Sum(whole)
	resp, err := c.Propose(ctx, &syncpb.ProposeRequest{Root: root, Path: path, BaseSeq: baseSeq, Hash: hash[:], Size: int64(len(whole)), Mode: 0o644}, refs)
	return resp, refs, err
}

func TestTransactionsRoundTrip(t *testing.T) {
	s := startSyncServer(t, newMemHandler(testServerPassword), Config{})
	ctx := testCtx(t)
	a, b := s.client(t), s.client(t)

	// Roots: register, join (wrong password first), list.
	info, err := a.RegisterRoot(ctx, "docs", "root secret")
	if err != nil {
		t.Fatal(err)
	}
	if info.GetName() != "docs" || info.GetOwner() != a.ClientID() {
		t.Errorf("RegisterRoot = %v", info)
	}
	if _, err := a.RegisterRoot(ctx, "docs", "x"); !errors.Is(err, ErrExists) {
		t.Errorf("second RegisterRoot: %v, want ErrExists", err)
	}
	if _, err := b.JoinRoot(ctx, "docs", "wrong"); !errors.Is(err, ErrBadPassword) {
		t.Errorf("JoinRoot with the wrong password: %v, want ErrBadPassword", err)
	}
	if _, err := b.ListRoots(ctx, false); err != nil {
		t.Fatal(err)
	}
	if info, err := b.JoinRoot(ctx, "docs", "root secret"); err != nil || len(info.GetMembers()) != 2 {
		t.Fatalf("JoinRoot = %v, %v; want two members", info, err)
	}
	mustRoot(ctx, t, a, "private")
	roots, err := b.ListRoots(ctx, false)
	if err != nil || len(roots) != 1 || roots[0].GetName() != "docs" {
		t.Fatalf("b's roots = %v, %v; want docs", roots, err)
	}
	if roots, err = b.ListRoots(ctx, true); err != nil || len(roots) != 2 {
		t.Fatalf("remote roots = %v, %v; want docs and private", roots, err)
	}

	// Upload: HaveChunks before and after PutChunks, then Propose.
	chunks := []Chunk{storedChunk(t, randomBytes(1000)), storedChunk(t, bytes.Repeat([]byte("compressible "), 500))}
	if chunks[0].Codec != ChunkRaw || chunks[1].Codec != ChunkZstd {
		t.Fatalf("want one raw and one zstd chunk, got %s and %s", chunks[0].Codec, chunks[1].Codec)
	}
	ids := []cas.ID{chunks[0].ID, chunks[1].ID}
	if have, err := a.HaveChunks(ctx, "docs", ids); err != nil || !cmp.Equal(have, []bool{false, false}) {
		t.Fatalf("HaveChunks before upload = %v, %v", have, err)
	}
	resp, refs, err := upload(ctx, a, "docs", "dir/file.txt", 0, chunks...)
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED || resp.GetHead().GetSeq() != 1 {
		t.Fatalf("Propose = %v", resp)
	}
	if have, err := b.HaveChunks(ctx, "docs", append(ids, cas.Sum([]byte("absent")))); err != nil || !cmp.Equal(have, []bool{true, true, false}) {
		t.Fatalf("HaveChunks after upload = %v, %v", have, err)
	}
	if _, err := b.HaveChunks(ctx, "private", ids); !errors.Is(err, ErrForbidden) {
		t.Errorf("HaveChunks in a root b did not join: %v, want ErrForbidden", err)
	}
	// Same content again converges; a stale base conflicts.
	if resp, _, err := upload(ctx, b, "docs", "dir/file.txt", 1, chunks...); err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_CONVERGED {
		t.Fatalf("Propose of the head's content = %v, %v; want converged", resp, err)
	}
	if _, _, err := upload(ctx, b, "docs", "dir/file.txt", 0, chunks[0]); !errors.Is(err, ErrConflict) {
		t.Fatalf("Propose on a stale base: %v, want ErrConflict", err)
	}
	// Proposing chunks the server lacks is MissingChunks.
	missing := cas.Sum([]byte("never uploaded"))
	if _, err := a.Propose(ctx, &syncpb.ProposeRequest{Root: "docs", Path: "m", Hash: missing[:], Size: 14}, []ChunkRef{{ID: missing, Size: 14}}); !errors.Is(err, ErrMissingChunks) {
		t.Errorf("Propose with a chunk never uploaded: %v, want ErrMissingChunks", err)
	}
	// An empty file has no chunk list.
	empty := cas.Sum(nil)
	if resp, err := a.Propose(ctx, &syncpb.ProposeRequest{Root: "docs", Path: "empty", Hash: empty[:]}, nil); err != nil || resp.GetHead().GetSeq() != 2 {
		t.Fatalf("Propose of an empty file = %v, %v", resp, err)
	}

	// Download side: Heads, ChunkList, GetChunks.
	heads, seq, err := b.Heads(ctx, "docs", 0)
	if err != nil {
		t.Fatal(err)
	}
	if seq != 2 || len(heads) != 2 || heads[0].GetPath() != "dir/file.txt" || heads[1].GetPath() != "empty" {
		t.Fatalf("Heads = %v, seq %d", heads, seq)
	}
	if heads, seq, err := b.Heads(ctx, "docs", 1); err != nil || seq != 2 || len(heads) != 1 || heads[0].GetPath() != "empty" {
		t.Fatalf("Heads after 1 = %v, %d, %v", heads, seq, err)
	}
	hash, _ := cas.IDFromBytes(heads[0].GetHash())
	size, list, err := b.ChunkList(ctx, "docs", "dir/file.txt", hash)
	if err != nil {
		t.Fatal(err)
	}
	if size != heads[0].GetSize() || !slices.Equal(list, refs) {
		t.Errorf("ChunkList = %d, %v; want %d, %v", size, list, heads[0].GetSize(), refs)
	}
	if _, _, err := b.ChunkList(ctx, "docs", "dir/file.txt", cas.Sum([]byte("other"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("ChunkList of an unknown version: %v, want ErrNotFound", err)
	}
	var got [][]byte
	err = b.GetChunks(ctx, "docs", ids, func(c Chunk) error {
		data, err := cas.Stored{Codec: cas.Codec(c.Codec), Data: c.Data, RawLen: c.RawLen}.Decode(c.ID)
		got = append(got, bytes.Clone(data)) // raw data aliases the frame buffer
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || cas.Sum(got[0]) != ids[0] || cas.Sum(got[1]) != ids[1] {
		t.Errorf("GetChunks returned %d chunks, not the uploaded ones", len(got))
	}
	if err := b.GetChunks(ctx, "docs", []cas.ID{missing}, func(Chunk) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("GetChunks of an absent chunk: %v, want ErrNotFound", err)
	}
	stop := errors.New("enough")
	if err := b.GetChunks(ctx, "docs", ids, func(Chunk) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("GetChunks whose callback fails: %v, want its error", err)
	}

	if rtt, err := a.Ping(ctx); err != nil || rtt <= 0 {
		t.Errorf("Ping = %v, %v", rtt, err)
	}
	if err := b.LeaveRoot(ctx, "docs"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Heads(ctx, "docs", 0); !errors.Is(err, ErrForbidden) {
		t.Errorf("Heads after leaving: %v, want ErrForbidden", err)
	}
	// The session survives every refused transaction above.
	if _, err := b.ListRoots(ctx, false); err != nil {
		t.Errorf("session unusable after refusals: %v", err)
	}
	if log := s.log.String(); strings.Contains(log, "level=ERROR") {
		t.Errorf("refusals logged as internal errors:\n%s", log)
	}
}

func TestHandlerBugIsInternalError(t *testing.T) {
	h := newMemHandler(testServerPassword)
	h.brokenHaveChunks = true
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")
	_, err := c.HaveChunks(ctx, "r", []cas.ID{cas.Sum([]byte("a")), cas.Sum([]byte("b"))})
	if !errors.Is(err, ErrInternal) {
		t.Fatalf("HaveChunks with a broken handler: %v, want ErrInternal", err)
	}
	if strings.Contains(err.Error(), "answered") {
		t.Errorf("the client sees the server's internals: %v", err)
	}
	if log := s.log.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "HaveChunks answered 1 of 2 ids") {
		t.Errorf("the cause is not in the server log:\n%s", log)
	}
}

func TestRegisterRefusals(t *testing.T) {
	s := startSyncServer(t, newMemHandler(testServerPassword), Config{})
	ctx := testCtx(t)
	id, _ := s.register(t, Config{})
	tests := []struct {
		name string
		req  *syncpb.RegisterClientRequest
		want error
	}{
		{"wrong server password", &syncpb.RegisterClientRequest{ClientId: "new", ServerPassword: "guess"}, ErrBadPassword},
		{"client ID taken", &syncpb.RegisterClientRequest{ClientId: id, ServerPassword: testServerPassword}, ErrExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, fp, err := Register(ctx, s.addr, s.tls(), Config{}, tt.req)
			if !errors.Is(err, tt.want) || resp != nil {
				t.Errorf("Register = %v, %v; want %v", resp, err, tt.want)
			}
			if fp != s.fingerprint {
				t.Errorf("fingerprint %q after a refused registration, want the server's", fp)
			}
		})
	}
}

func TestAuthRequired(t *testing.T) {
	s := startSyncServer(t, newMemHandler(testServerPassword), Config{})
	ctx := testCtx(t)
	id, token := s.register(t, Config{})
	conn := s.rawConn(t)

	// Ping is allowed before authentication.
	var pong syncpb.Pong
	if err := transact(ctx, conn, &syncpb.Ping{Sent: 42}, &pong); err != nil || pong.GetSent() != 42 {
		t.Fatalf("Ping before auth = %v, %v", &pong, err)
	}
	// Everything else is refused, whatever it is.
	for _, req := range []proto.Message{
		&syncpb.ListRootsRequest{},
		&syncpb.RegisterRootRequest{Name: "r", RootPassword: "p"},
		&syncpb.WatchRequest{},
		&syncpb.Ack{}, // not even a request
	} {
		if err := transact(ctx, conn, req, &syncpb.ListRootsResponse{}); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("%s before auth: %v, want ErrUnauthenticated", messageName(req), err)
		}
	}
	// Authentication on the same connection opens it up.
	if err := transact(ctx, conn, &syncpb.AuthRequest{ClientId: id, Token: token}, &syncpb.AuthResponse{}); err != nil {
		t.Fatal(err)
	}
	if err := transact(ctx, conn, &syncpb.ListRootsRequest{}, &syncpb.ListRootsResponse{}); err != nil {
		t.Errorf("ListRoots after auth: %v", err)
	}
	if err := transact(ctx, conn, &syncpb.AuthRequest{ClientId: id, Token: token}, &syncpb.AuthResponse{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("second AuthRequest: %v, want ErrBadRequest", err)
	}
}

func TestWrongTokenRefused(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	id, token := s.register(t, Config{})
	for _, tt := range []struct{ name, id, token string }{
		{"wrong token", id, token + "x"},
		{"unknown client", "nobody", token},
		{"empty", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := DialSession(ctx, s.addr, s.tls(), Config{}, tt.id, tt.token)
			if !errors.Is(err, ErrUnauthenticated) {
				if c != nil {
					c.Close()
				}
				t.Fatalf("DialSession = %v, want ErrUnauthenticated", err)
			}
		})
	}
	// A connection that keeps guessing is closed.
	conn := s.rawConn(t)
	for i := range 3 {
		err := transact(ctx, conn, &syncpb.AuthRequest{ClientId: id, Token: fmt.Sprint("guess", i)}, &syncpb.AuthResponse{})
		if !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("guess %d: %v, want ErrUnauthenticated", i, err)
		}
	}
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
		t.Fatal("connection still open after three failed authentications")
	}
	if _, err := conn.OpenStream(ctx); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("open after the close: %v, want ErrUnauthenticated", err)
	}
}

func TestProposeLargeChunkList(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "big")
	// 70000 entries need two ChunkListParts. The chunks are not uploaded,
	// so the handler refuses the commit, after receiving the whole list.
	refs := make([]ChunkRef, 70000)
	var size int64
	for i := range refs {
		refs[i] = ChunkRef{ID: cas.Sum(fmt.Appendf(nil, "chunk %d", i)), Size: uint32(1 + i%5000)}
		size += int64(refs[i].Size)
	}
	hash := cas.Sum([]byte("big file"))
	_, err := c.Propose(ctx, &syncpb.ProposeRequest{Root: "big", Path: "big.bin", Hash: hash[:], Size: size}, refs)
	if !errors.Is(err, ErrMissingChunks) {
		t.Fatalf("Propose = %v, want ErrMissingChunks from the handler", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.proposed) != 1 || !slices.Equal(h.proposed[0], refs) {
		t.Fatalf("handler received %d proposals; the chunk list did not arrive intact", len(h.proposed))
	}
}

// rawPropose sends a proposal with arbitrary parts and returns the
// server's answer.
func rawPropose(ctx context.Context, conn *Conn, req *syncpb.ProposeRequest, parts []*syncpb.ChunkListPart) error {
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return err
	}
	if err := WriteMessage(ctx, st, req); err != nil {
		return err
	}
	for _, p := range parts {
		if err := WriteMessage(ctx, st, p); err != nil {
			return writeFailed(ctx, st, err)
		}
	}
	endRequest(st)
	if err := ReadMessage(ctx, st, &syncpb.CommitResponse{}); err != nil {
		return abort(st, err)
	}
	return finish(ctx, st)
}

func TestProposeCountsMustAddUp(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")
	conn := c.conn // raw frames over the authenticated connection

	ref := func(i, size int) ChunkRef { return ChunkRef{ID: cas.Sum([]byte{byte(i)}), Size: uint32(size)} }
	part := func(refs ...ChunkRef) *syncpb.ChunkListPart { return EncodeChunkListPart(refs) }
	hash := cas.Sum([]byte("h"))
	req := func(count uint32, size int64) *syncpb.ProposeRequest {
		return &syncpb.ProposeRequest{Root: "r", Path: "f", Hash: hash[:], Size: size, ChunkCount: count}
	}
	tests := []struct {
		name  string
		req   *syncpb.ProposeRequest
		parts []*syncpb.ChunkListPart
	}{
		{"fewer entries than announced", req(3, 30), []*syncpb.ChunkListPart{part(ref(1, 10), ref(2, 10))}},
		{"part overshoots the count", req(2, 30), []*syncpb.ChunkListPart{part(ref(1, 10), ref(2, 10), ref(3, 10))}},
		{"extra part after the count", req(2, 20), []*syncpb.ChunkListPart{part(ref(1, 10), ref(2, 10)), part(ref(3, 10))}},
		{"parts without a count", req(0, 0), []*syncpb.ChunkListPart{part(ref(1, 10))}},
		{"count over the limit", req(MaxChunkList+1, 0), nil},
		{"more sizes than ids", req(1, 10), []*syncpb.ChunkListPart{{Ids: AppendIDs(nil, []cas.ID{ref(1, 0).ID}), Sizes: []uint32{5, 5}}}},
		{"ids not a multiple of 32", req(1, 10), []*syncpb.ChunkListPart{{Ids: make([]byte, 33), Sizes: []uint32{10}}}},
		{"empty part", req(1, 10), []*syncpb.ChunkListPart{{}, part(ref(1, 10))}},
		{"zero-sized chunk", req(1, 0), []*syncpb.ChunkListPart{part(ref(1, 0))}},
		{"chunk over the maximum", req(1, DefaultMaxChunkSize+1), []*syncpb.ChunkListPart{part(ref(1, DefaultMaxChunkSize+1))}},
		{"sizes do not add up to the file", req(2, 25), []*syncpb.ChunkListPart{part(ref(1, 10), ref(2, 10))}},
		{"hash of 31 bytes", &syncpb.ProposeRequest{Root: "r", Path: "f", Hash: hash[:31]}, nil},
		{"negative size", req(0, -1), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := rawPropose(ctx, conn, tt.req, tt.parts); !errors.Is(err, ErrBadRequest) {
				t.Errorf("got %v, want ErrBadRequest", err)
			}
		})
	}
	h.mu.Lock()
	calls := len(h.proposed)
	h.mu.Unlock()
	if calls != 0 {
		t.Errorf("the handler saw %d malformed proposals", calls)
	}
	// The server, and this very connection, keep serving.
	chunk := storedChunk(t, []byte("fine"))
	if resp, _, err := upload(ctx, c, "r", "f", 0, chunk); err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Fatalf("valid Propose after malformed ones = %v, %v", resp, err)
	}
}

func TestPutChunksHashMismatch(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")
	good := storedChunk(t, randomBytes(4096))
	bad := storedChunk(t, randomBytes(4096))
	bad.ID = cas.Sum([]byte("something else"))
	err := c.PutChunks(ctx, "r", []Chunk{good, bad})
	if !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("PutChunks with a wrong ID: %v, want ErrHashMismatch", err)
	}
	if !strings.Contains(err.Error(), bad.ID.String()) {
		t.Errorf("error %q does not name the chunk", err)
	}
	if have, err := c.HaveChunks(ctx, "r", []cas.ID{good.ID, bad.ID}); err != nil || have[1] {
		t.Errorf("HaveChunks after a failed upload = %v, %v; the bad chunk must not be stored", have, err)
	}
	// A chunk frame that breaks the codec rules never reaches the handler.
	st, err := c.conn.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteMessage(ctx, st, &syncpb.PutChunksRequest{Root: "r"}); err != nil {
		t.Fatal(err)
	}
	malformed := append([]byte{byte(ChunkRaw)}, good.ID[:]...)
	malformed = append(malformed, 0x05, 'a', 'b') // claims 5 raw bytes, carries 2
	if err := st.WriteFrame(ctx, FrameChunk, malformed); err != nil {
		t.Fatal(err)
	}
	if err := ReadMessage(ctx, st, &syncpb.Ack{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("malformed chunk frame: %v, want ErrBadRequest", err)
	}
	st.Reset(CodeCanceled)
}

// TestPutChunkStream: chunks produced one at a time in a reused buffer all
// arrive intact; no chunk opens no stream; an error of the producer ends
// the upload with it and the connection keeps serving.
func TestPutChunkStream(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")
	var ids []cas.ID
	datas := make([][]byte, 40)
	for i := range datas {
		datas[i] = randomBytes(3000 + i)
		ids = append(ids, cas.Sum(datas[i]))
	}
	buf := make([]byte, 0, 8192)
	i := 0
	err := c.PutChunkStream(ctx, "r", func() (Chunk, error) {
		if i == len(datas) {
			return Chunk{}, io.EOF
		}
		buf = append(buf[:0], datas[i]...) // the previous chunk's bytes are gone
		i++
		return Chunk{Codec: ChunkRaw, ID: cas.Sum(buf), RawLen: len(buf), Data: buf}, nil
	})
	if err != nil {
		t.Fatalf("PutChunkStream: %v", err)
	}
	have, err := c.HaveChunks(ctx, "r", ids)
	if err != nil || slices.Contains(have, false) {
		t.Fatalf("HaveChunks after the stream = %v, %v; want all", have, err)
	}
	if err := c.PutChunkStream(ctx, "r", func() (Chunk, error) { return Chunk{}, io.EOF }); err != nil {
		t.Errorf("an empty stream: %v", err)
	}
	failed := errors.New("disk gone")
	sent := false
	other := storedChunk(t, randomBytes(5000))
	err = c.PutChunkStream(ctx, "r", func() (Chunk, error) {
		if !sent {
			sent = true
			return other, nil
		}
		return Chunk{}, failed
	})
	if !errors.Is(err, failed) {
		t.Fatalf("a producer's error: %v, want it back", err)
	}
	if resp, _, err := upload(ctx, c, "r", "f", 0, storedChunk(t, []byte("after"))); err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Fatalf("a commit after the failed stream = %v, %v", resp, err)
	}
}

func TestGetChunksBatches(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")
	const n = 5000
	chunks := make([]Chunk, n)
	ids := make([]cas.ID, n)
	for i := range chunks {
		chunks[i] = storedChunk(t, fmt.Appendf(nil, "chunk number %d", i))
		ids[i] = chunks[i].ID
	}
	if err := c.PutChunks(ctx, "r", chunks); err != nil {
		t.Fatal(err)
	}
	have, err := c.HaveChunks(ctx, "r", ids)
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range have {
		if !ok {
			t.Fatalf("chunk %d missing after upload", i)
		}
	}
	i := 0
	err = c.GetChunks(ctx, "r", ids, func(ch Chunk) error {
		data, err := cas.Stored{Codec: cas.Codec(ch.Codec), Data: ch.Data, RawLen: ch.RawLen}.Decode(ch.ID)
		if err != nil {
			return err
		}
		if want := fmt.Sprintf("chunk number %d", i); string(data) != want {
			return fmt.Errorf("chunk %d is %q, want %q", i, data, want)
		}
		i++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if i != n {
		t.Errorf("got %d chunks, want %d", i, n)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.getBatches != 2 {
		t.Errorf("%d GetChunks transactions, want 2 batches", h.getBatches)
	}
}

func TestWatchPushesUntilCanceled(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	a, b := s.client(t), s.client(t)
	mustRoot(ctx, t, a, "shared")
	if _, err := b.JoinRoot(ctx, "shared", "root secret"); err != nil {
		t.Fatal(err)
	}

	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	notices := make(chan *syncpb.Notice, 4)
	watchErr := make(chan error, 1)
	go func() {
		watchErr <- b.Watch(wctx, []*syncpb.WatchRequest_Cursor{{Root: "shared"}}, func(n *syncpb.Notice) error {
			notices <- n
			return nil
		})
	}()
	select {
	case <-h.watchStarted:
	case <-ctx.Done():
		t.Fatal("watch never reached the handler")
	}
	for i := range 2 {
		if _, _, err := upload(ctx, a, "shared", fmt.Sprint("file", i), 0, storedChunk(t, fmt.Appendf(nil, "v%d", i))); err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-notices:
			if n.GetKind() != syncpb.Notice_KIND_MUST_SYNC || n.GetHead().GetPath() != fmt.Sprint("file", i) || n.GetRootSeq() != uint64(i+1) {
				t.Errorf("notice %d = %v", i, n)
			}
		case <-ctx.Done():
			t.Fatalf("notice %d never arrived", i)
		}
	}
	cancel()
	select {
	case err := <-watchErr:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Watch returned %v, want context.Canceled", err)
		}
	case <-ctx.Done():
		t.Fatal("Watch did not return after cancel")
	}
	// The server notices the abandoned stream and ends the Handler's watch,
	// while the connection stays up.
	for h.watcherCount() != 0 {
		select {
		case <-ctx.Done():
			t.Fatal("server-side watch still running after the client left")
		case <-time.After(5 * time.Millisecond):
		}
	}
	if _, err := b.Ping(ctx); err != nil {
		t.Errorf("connection unusable after the watch ended: %v", err)
	}
}

func TestWatchErrorFromCallback(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")
	stop := errors.New("stop watching")
	errc := make(chan error, 1)
	go func() {
		errc <- c.Watch(ctx, nil, func(*syncpb.Notice) error { return stop })
	}()
	<-h.watchStarted
	if _, _, err := upload(ctx, c, "r", "f", 0, storedChunk(t, []byte("x"))); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, stop) {
		t.Errorf("Watch = %v, want the callback's error", err)
	}
}

func TestWireStatsCountPayload(t *testing.T) {
	s := startSyncServer(t, newMemHandler(testServerPassword), Config{})
	ctx := testCtx(t)
	var total WireCounter
	id, token := s.register(t, Config{Wire: &total})
	regSent, regRecv := total.Stats()
	if regSent == 0 || regRecv == 0 {
		t.Fatalf("Register counted %d sent, %d received", regSent, regRecv)
	}
	c, err := DialSession(ctx, s.addr, s.tls(), Config{Wire: &total}, id, token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustRoot(ctx, t, c, "r")
	sent0, recv0 := c.WireStats()
	if sent0 == 0 || recv0 == 0 {
		t.Fatalf("handshake counted %d sent, %d received", sent0, recv0)
	}
	const payload = 1 << 20
	var chunks []Chunk
	for range 4 {
		chunks = append(chunks, storedChunk(t, randomBytes(payload/4))) // random: sent raw
	}
	if err := c.PutChunks(ctx, "r", chunks); err != nil {
		t.Fatal(err)
	}
	sent1, recv1 := c.WireStats()
	if sent1-sent0 < payload {
		t.Errorf("PutChunks of %d bytes counted %d bytes sent", payload, sent1-sent0)
	}
	if recv1 <= recv0 {
		t.Errorf("no bytes received during the upload (acknowledgements): %d then %d", recv0, recv1)
	}
	if sent1-sent0 > 2*payload {
		t.Errorf("PutChunks of %d bytes counted %d bytes sent: more than QUIC overhead", payload, sent1-sent0)
	}
	// The shared counter holds both connections (plus what they sent since
	// the snapshots above: the registration's close, acknowledgements).
	allSent, _ := total.Stats()
	if allSent < regSent+sent1 || allSent > regSent+sent1+16<<10 {
		t.Errorf("shared counter %d, want registration %d + session %d", allSent, regSent, sent1)
	}
}

func TestSessionEndedOnDisconnect(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	id, token := s.register(t, Config{})
	c, err := DialSession(ctx, s.addr, s.tls(), Config{}, id, token)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case sess := <-h.ended:
		t.Fatalf("session %s ended while connected", sess.ClientID)
	default:
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case sess := <-h.ended:
		if sess.ClientID != id {
			t.Errorf("SessionEnded(%s), want %s", sess.ClientID, id)
		}
	case <-ctx.Done():
		t.Fatal("SessionEnded not called after the client disconnected")
	}
	// Registration's one-shot connection never authenticated: no session.
	select {
	case sess := <-h.ended:
		t.Errorf("SessionEnded(%v) for a connection without a session", sess)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestUnexpectedFirstFrames(t *testing.T) {
	s := startSyncServer(t, newMemHandler(testServerPassword), Config{})
	ctx := testCtx(t)
	c := s.client(t)
	conn := c.conn
	tests := []struct {
		name    string
		t       FrameType
		payload []byte
		want    error
	}{
		{"response as a request", FrameAck, nil, ErrBadRequest},
		{"chunk frame first", FrameChunk, make([]byte, 40), ErrBadRequest},
		{"type outside the schema", 0x70, nil, ErrUnsupported},
		{"extension type", 0x1000, nil, ErrUnsupported},
		{"garbage protobuf", FrameListRootsRequest, []byte{0xff, 0xff, 0xff}, ErrBadRequest},
		{"too many have-chunks ids", FrameHaveChunksRequest, mustMarshal(t, &syncpb.HaveChunksRequest{Root: "r", Ids: make([]byte, (MaxHaveChunksIDs+1)*32)}), ErrBadRequest},
		{"too many get-chunks ids", FrameGetChunksRequest, mustMarshal(t, &syncpb.GetChunksRequest{Root: "r", Ids: make([]byte, (MaxGetChunksIDs+1)*32)}), ErrBadRequest},
		{"chunk list hash too short", FrameChunkListRequest, mustMarshal(t, &syncpb.ChunkListRequest{Root: "r", Hash: []byte{1}}), ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := conn.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Reset(CodeCanceled)
			if err := st.WriteFrame(ctx, tt.t, tt.payload); err != nil {
				t.Fatal(err)
			}
			if _, _, err := st.ReadFrame(ctx); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Errorf("connection unusable after bad requests: %v", err)
	}
}

func mustMarshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestHeadsSplitsLargeParts(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	mustRoot(ctx, t, c, "r")
	// Heads whose one emitted part would exceed a frame: the server splits.
	want := make([]*syncpb.FileHead, 0, 3000)
	h.mu.Lock()
	for i := range cap(want) {
		hd := &syncpb.FileHead{Path: fmt.Sprintf("%04d/%s", i, strings.Repeat("n", 2000)), Seq: uint64(i + 1)}
		h.roots["r"].heads[hd.Path] = hd
		want = append(want, hd)
	}
	h.roots["r"].seq = uint64(len(want))
	h.mu.Unlock()
	heads, seq, err := c.Heads(ctx, "r", 0)
	if err != nil {
		t.Fatal(err)
	}
	if seq != uint64(len(want)) {
		t.Errorf("root seq %d, want %d", seq, len(want))
	}
	if diff := cmp.Diff(want, heads, protocmp.Transform()); diff != "" {
		t.Errorf("heads differ (-want +got):\n%s", diff)
	}
}

func TestServerShutdownEndsWatch(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	c := s.client(t)
	errc := make(chan error, 1)
	go func() { errc <- c.Watch(ctx, nil, func(*syncpb.Notice) error { return nil }) }()
	<-h.watchStarted
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("Watch during shutdown = %v, want ErrUnavailable", err)
		}
	case <-ctx.Done():
		t.Fatal("Watch still running after the server stopped")
	}
	select {
	case <-h.ended:
	case <-ctx.Done():
		t.Fatal("SessionEnded not called on shutdown")
	}
}

package syncproto

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/quic-s/quics/internal/syncbuf"
	"github.com/quic-s/quics/internal/tlsutil"
)

func TestMain(m *testing.M) {
	// Test hosts often cap UDP buffers; quic-go's warning about it is noise.
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	goleak.VerifyTestMain(m)
}

type server struct {
	addr        string
	fingerprint string
	log         *syncbuf.Buffer
	cancel      context.CancelFunc
	done        chan error
}

// startServer runs Serve on 127.0.0.1 with a fresh certificate. Cleanup
// stops it and checks that Serve returned nil.
func startServer(t testing.TB, cfg Config, handle func(context.Context, *Conn, *Stream)) *server {
	t.Helper()
	cert, err := tlsutil.LoadOrCreate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{fingerprint: tlsutil.Fingerprint(cert.Certificate[0]), log: &syncbuf.Buffer{}, done: make(chan error, 1)}
	cfg.Logger = slog.New(slog.NewTextHandler(s.log, nil))
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	l, err := Listen(ctx, "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	go func() { s.done <- Serve(ctx, l, handle) }()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s
}

func (s *server) stop() error {
	s.cancel()
	select {
	case err := <-s.done:
		s.done <- err // let a second stop see it too
		return err
	case <-time.After(10 * time.Second):
		return errors.New("Serve did not return after cancel")
	}
}

func dial(t *testing.T, s *server) *Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := Dial(ctx, s.addr, tlsutil.PinnedClientConfig(s.fingerprint, ALPN), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// echo sends every frame back until the client ends its side; a bad frame
// fails the stream with its error. A first frame "panic" panics.
func echo(ctx context.Context, _ *Conn, s *Stream) {
	for {
		t, p, err := s.ReadFrame(ctx)
		if err == io.EOF {
			return
		}
		if err != nil {
			_ = s.Fail(ctx, err)
			return
		}
		if string(p) == "panic" {
			panic("handler asked to panic")
		}
		if err := s.WriteFrame(ctx, t, p); err != nil {
			return
		}
	}
}

// roundTrip runs one echo transaction and reports what went wrong, so it
// can run in goroutines other than the test's.
func roundTrip(ctx context.Context, conn *Conn, frames []frame) error {
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return err
	}
	for _, f := range frames {
		if err := st.WriteFrame(ctx, f.t, f.payload); err != nil {
			return err
		}
	}
	if err := st.CloseWrite(); err != nil {
		return err
	}
	for i, f := range frames {
		ft, p, err := st.ReadFrame(ctx)
		if err != nil {
			return fmt.Errorf("frame %d: %w", i, err)
		}
		if ft != f.t || !bytes.Equal(p, f.payload) {
			return fmt.Errorf("frame %d: got %s/%d bytes, want %s/%d", i, ft, len(p), f.t, len(f.payload))
		}
	}
	if _, _, err := st.ReadFrame(ctx); err != io.EOF {
		return fmt.Errorf("after echo: %v, want io.EOF", err)
	}
	return nil
}

func mustRoundTrip(ctx context.Context, t *testing.T, conn *Conn, frames []frame) {
	t.Helper()
	if err := roundTrip(ctx, conn, frames); err != nil {
		t.Fatal(err)
	}
}

func TestEchoOverQUIC(t *testing.T) {
	s := startServer(t, Config{}, echo)
	conn := dial(t, s)
	ctx := testCtx(t)
	if got := tlsutil.PeerFingerprint(conn.TLS()); got != s.fingerprint {
		t.Errorf("peer fingerprint %s, want %s", got, s.fingerprint)
	}
	chunk, err := EncodeChunkFrame(nil, Chunk{Codec: ChunkRaw, RawLen: 256 << 10, Data: bytes.Repeat([]byte{3}, 256<<10)})
	if err != nil {
		t.Fatal(err)
	}
	frames := []frame{
		{FrameMessage, []byte("hello")},
		{FrameChunk, chunk},
		{FrameMessage + 5, nil},
	}
	// Several concurrent transactions on one connection.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := roundTrip(ctx, conn, frames); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestOversizedFrameFailsOnlyItsStream(t *testing.T) {
	s := startServer(t, Config{MaxFramePayload: 1 << 20}, echo)
	conn := dial(t, s)
	ctx := testCtx(t)

	st, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Write a raw header claiming 2^62 bytes, bypassing FrameWriter's check.
	if _, err := st.qs.Write(header(FrameMessage, 1<<62)); err != nil {
		t.Fatal(err)
	}
	ft, _, err := st.ReadFrame(ctx)
	if ft != FrameError || !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("got %s, %v; want an error frame with ErrFrameTooLarge", ft, err)
	}
	if !strings.Contains(err.Error(), "4611686018427387904") {
		t.Errorf("error %q does not name the claimed size", err)
	}

	mustRoundTrip(ctx, t, conn, []frame{{FrameMessage, []byte("still serving")}})
}

func TestHandlerPanicResetsOnlyItsStream(t *testing.T) {
	s := startServer(t, Config{}, echo)
	conn := dial(t, s)
	ctx := testCtx(t)

	st, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteFrame(ctx, FrameMessage, []byte("panic")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ReadFrame(ctx); !errors.Is(err, ErrInternal) {
		t.Fatalf("read after handler panic: %v, want ErrInternal", err)
	}
	mustRoundTrip(ctx, t, conn, []frame{{FrameMessage, []byte("after panic")}})
	// A new connection works too: the listener survived.
	mustRoundTrip(ctx, t, dial(t, s), []frame{{FrameMessage, []byte("new conn")}})
	if log := s.log.String(); !strings.Contains(log, "handler asked to panic") || !strings.Contains(log, "stack=") {
		t.Errorf("panic not logged with its stack: %q", log)
	}
}

func TestWrongALPNRefused(t *testing.T) {
	var handled atomic.Bool
	s := startServer(t, Config{}, func(ctx context.Context, c *Conn, st *Stream) { handled.Store(true); echo(ctx, c, st) })
	ctx := testCtx(t)
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	raddr, err := net.ResolveUDPAddr("udp4", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	// A plain quic-go client offering only h3, not through Dial (which
	// always offers quics/1).
	qc, err := quic.Dial(ctx, pc, raddr, tlsutil.PinnedClientConfig(s.fingerprint, "h3"), nil)
	if err == nil {
		_ = qc.CloseWithError(0, "")
		t.Fatal("a client offering only h3 connected")
	}
	var te *quic.TransportError
	const noApplicationProtocol = 0x100 + 120 // TLS alert 120 as a QUIC crypto error
	if !errors.As(err, &te) || te.ErrorCode != noApplicationProtocol {
		t.Errorf("err = %v, want no_application_protocol", err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if handled.Load() {
		t.Error("handler ran for a refused connection")
	}
}

func TestWrongFingerprintRefused(t *testing.T) {
	s := startServer(t, Config{}, echo)
	other, err := tlsutil.LoadOrCreate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	_, err = Dial(ctx, s.addr, tlsutil.PinnedClientConfig(tlsutil.Fingerprint(other.Certificate[0]), ALPN), Config{})
	if !errors.Is(err, tlsutil.ErrFingerprintMismatch) {
		t.Fatalf("dial with the wrong pin: %v, want ErrFingerprintMismatch", err)
	}
	if !strings.Contains(err.Error(), s.fingerprint) {
		t.Errorf("error %q does not show the server's fingerprint", err)
	}
	// Trust on first use accepts it and reports what it saw.
	conn, err := Dial(ctx, s.addr, tlsutil.PinnedClientConfig("", ALPN), Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := tlsutil.PeerFingerprint(conn.TLS()); got != s.fingerprint {
		t.Errorf("first use saw %s, want %s", got, s.fingerprint)
	}
}

func TestStalledPeerHitsReadDeadline(t *testing.T) {
	serverErr := make(chan error, 1)
	s := startServer(t, Config{ReadTimeout: 300 * time.Millisecond}, func(ctx context.Context, _ *Conn, st *Stream) {
		_, _, err := st.ReadFrame(ctx)
		serverErr <- err
		_ = st.Fail(ctx, err)
	})
	conn := dial(t, s)
	ctx := testCtx(t)
	st, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Half a frame, then silence.
	if _, err := st.qs.Write(append(header(FrameMessage, 100), "only ten b"...)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-serverErr:
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("server read: %v, want ErrTimeout", err)
		}
	case <-ctx.Done():
		t.Fatal("server read never timed out")
	}
	if _, _, err := st.ReadFrame(ctx); !errors.Is(err, ErrTimeout) {
		t.Fatalf("client got %v, want the server's timeout error frame", err)
	}
}

func TestContextCancelInterruptsRead(t *testing.T) {
	release := make(chan struct{})
	s := startServer(t, Config{}, func(ctx context.Context, _ *Conn, st *Stream) {
		select {
		case <-release:
		case <-ctx.Done():
		}
	})
	defer close(release)
	conn := dial(t, s)
	st, err := conn.OpenStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteFrame(testCtx(t), FrameMessage, []byte("wake")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, _, err = st.ReadFrame(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("read: %v, want context.Canceled", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancel took %v to interrupt the read", time.Since(start))
	}
	if _, _, err := st.ReadFrame(context.Background()); err == nil {
		t.Error("stream readable after an interrupted frame")
	}
}

func TestServeStopsOnCancel(t *testing.T) {
	entered := make(chan struct{}, 1)
	s := startServer(t, Config{}, func(ctx context.Context, c *Conn, st *Stream) {
		_, p, err := st.ReadFrame(ctx)
		if err != nil || string(p) != "block" {
			_ = st.WriteFrame(ctx, FrameMessage, p)
			// Read to the client's end of request: returning earlier
			// sends STOP_SENDING, which can cancel the client's write
			// side before its CloseWrite.
			for err == nil {
				_, _, err = st.ReadFrame(ctx)
			}
			return
		}
		entered <- struct{}{}
		_, _, _ = st.ReadFrame(ctx) // blocks until shutdown
	})
	conn := dial(t, s)
	ctx := testCtx(t)
	st, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteFrame(ctx, FrameMessage, []byte("block")); err != nil {
		t.Fatal(err)
	}
	<-entered
	// A second connection, accepted (one transaction done) and then idle,
	// must be closed too.
	idle := dial(t, s)
	mustRoundTrip(ctx, t, idle, []frame{{FrameMessage, []byte("ping")}})
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ReadFrame(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("client read after shutdown: %v, want ErrUnavailable", err)
	}
	select {
	case <-idle.Context().Done():
	case <-ctx.Done():
		t.Fatal("idle connection still open after Serve returned")
	}
	if _, err := idle.OpenStream(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("open on closed connection: %v, want ErrUnavailable", err)
	}
}

func TestDialAddressForms(t *testing.T) {
	ctx := testCtx(t)
	tests := []struct {
		in, want string
	}{
		{"127.0.0.1:7000", "127.0.0.1:7000"},
		{"127.0.0.1", "127.0.0.1:6122"},
		{"[::1]:7000", "[::1]:7000"},
		{"::1", "[::1]:6122"},
		{"[::1]", "[::1]:6122"},
		{"localhost:7000", ""}, // resolved; either family
	}
	for _, tt := range tests {
		got, err := resolve(ctx, tt.in)
		if err != nil {
			t.Errorf("resolve(%q): %v", tt.in, err)
			continue
		}
		if tt.want != "" && got.String() != tt.want {
			t.Errorf("resolve(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if tt.want == "" && (!got.Addr().IsLoopback() || got.Port() != 7000) {
			t.Errorf("resolve(%q) = %s", tt.in, got)
		}
	}
	if _, err := resolve(ctx, "127.0.0.1:http"); err == nil {
		t.Error("a named port was accepted")
	}
	if _, err := Listen(ctx, "127.0.0.1:0", &tls.Config{}, Config{}); err == nil {
		t.Error("Listen without a certificate succeeded")
	}
}

func TestHandlerContextEndsWithConnection(t *testing.T) {
	ended := make(chan error, 1)
	s := startServer(t, Config{}, func(ctx context.Context, _ *Conn, st *Stream) {
		_ = st.WriteFrame(ctx, FrameMessage, []byte("ready"))
		<-ctx.Done()
		ended <- ctx.Err()
	})
	conn := dial(t, s)
	ctx := testCtx(t)
	st, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteFrame(ctx, FrameMessage, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.ReadFrame(ctx); err != nil {
		t.Fatal(err)
	}
	if err := conn.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("handler context ended with %v", err)
		}
	case <-ctx.Done():
		t.Fatal("handler context still live after the client closed the connection")
	}
}

// ticketCache is a client session cache that records the tickets it gets.
type ticketCache struct {
	mu  sync.Mutex
	put int
}

func (c *ticketCache) Get(string) (*tls.ClientSessionState, bool) { return nil, false }

func (c *ticketCache) Put(_ string, cs *tls.ClientSessionState) {
	if cs == nil {
		return
	}
	c.mu.Lock()
	c.put++
	c.mu.Unlock()
}

// A listener sends no session ticket: clients keep none, and one would
// cost every handshake about 170 bytes. A client that would keep one gets
// none, even after a round trip that follows the ticket's place in the
// handshake.
func TestListenSendsNoSessionTicket(t *testing.T) {
	s := startServer(t, Config{}, echo)
	ctx := testCtx(t)
	cache := &ticketCache{}
	tc := tlsutil.PinnedClientConfig(s.fingerprint, ALPN)
	tc.ClientSessionCache = cache
	conn, err := Dial(ctx, s.addr, tc, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for range 2 {
		if err := roundTrip(ctx, conn, []frame{{FrameMessage, []byte("hello")}}); err != nil {
			t.Fatal(err)
		}
	}
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.put != 0 {
		t.Fatalf("the client got %d session tickets", cache.put)
	}
}

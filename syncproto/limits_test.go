package syncproto

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quic-s/quics/internal/syncbuf"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// startLimitedServer is startSyncServer with server options.
func startLimitedServer(t testing.TB, h Handler, cfg Config, opts ServerOptions) *syncServer {
	t.Helper()
	cert, err := tlsutil.LoadOrCreate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &syncServer{fingerprint: tlsutil.Fingerprint(cert.Certificate[0]), log: &syncbuf.Buffer{}}
	logger := slog.New(slog.NewTextHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Logger, opts.Logger = logger, logger
	ctx, cancel := context.WithCancel(context.Background())
	l, err := Listen(ctx, "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}}, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	s.addr = l.Addr().String()
	done := make(chan error, 1)
	go func() { done <- NewServer(h, opts).Serve(ctx, l) }()
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

// sessionAs opens another session of a registered client.
func (s *syncServer) sessionAs(t *testing.T, id, token string) *Client {
	t.Helper()
	c, err := DialSession(testCtx(t), s.addr, s.tls(), Config{}, id, token)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// openFDs counts this process's file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(entries)
}

// settles waits until goroutines and descriptors are back to what they
// were (goroutines within a small slack for quic-go's timers), and fails
// with the counts otherwise.
func settles(t *testing.T, goroutines, fds int, what string) {
	t.Helper()
	var g, f int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		g, f = runtime.NumGoroutine(), openFDs(t)
		if g <= goroutines+2 && f <= fds {
			return
		}
	}
	t.Fatalf("after %s: %d goroutines (before %d), %d file descriptors (before %d)", what, g, goroutines, f, fds)
}

func TestConnectionLimit(t *testing.T) {
	s := startLimitedServer(t, newMemHandler(testServerPassword), Config{}, ServerOptions{Limits: Limits{MaxConns: 2}})
	ctx := testCtx(t)
	id, token := s.register(t, Config{})
	a := s.sessionAs(t, id, token)
	b := s.sessionAs(t, id, token)

	_, err := DialSession(ctx, s.addr, s.tls(), Config{}, id, token)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "connection limit (2)") {
		t.Fatalf("a third connection: %v, want ErrUnavailable naming the limit", err)
	}
	// The admitted ones are unaffected.
	if _, err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// A slot comes back when a connection ends.
	_ = b.Close()
	for {
		c, err := DialSession(ctx, s.addr, s.tls(), Config{}, id, token)
		if err == nil {
			_ = c.Close()
			break
		}
		if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("after one closed: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPendingConnectionLimits: connections without a session have their
// own slots, per address and in all, and a deadline; they cannot take the
// slots of clients that log in.
func TestPendingConnectionLimits(t *testing.T) {
	const authTimeout = 2 * time.Second
	s := startLimitedServer(t, newMemHandler(testServerPassword), Config{}, ServerOptions{Limits: Limits{
		MaxConns: 2, MaxPendingConns: 3, MaxPendingConnsPerIP: 2, AuthTimeout: authTimeout}})
	ctx := testCtx(t)
	id, token := s.register(t, Config{})
	ping := func(conn *Conn) error {
		return transact(ctx, conn, &syncpb.Ping{Sent: 1}, &syncpb.Pong{})
	}
	// Until its registration connection has ended, the server may still
	// count it as pending; wait for a free slot.
	var a *Client
	for {
		c, err := DialSession(ctx, s.addr, s.tls(), Config{}, id, token)
		if err == nil {
			a = c
			break
		}
		if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("log in: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer a.Close()

	// Two anonymous connections from 127.0.0.1 fill that address's share;
	// the session above holds none of it.
	p1, p2 := s.rawConn(t), s.rawConn(t)
	for i, p := range []*Conn{p1, p2} {
		if err := ping(p); err != nil {
			t.Fatalf("pending connection %d: %v", i+1, err)
		}
	}
	p3 := s.rawConn(t)
	if err := ping(p3); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "already waiting to authenticate") {
		t.Fatalf("a third pending connection from one address: %v, want ErrUnavailable naming the per-address limit", err)
	}
	if _, err := a.Ping(ctx); err != nil {
		t.Fatalf("the logged-in client while the pending slots are full: %v", err)
	}

	// Connections that never authenticate are closed after AuthTimeout.
	for i, p := range []*Conn{p1, p2} {
		select {
		case <-p.Context().Done():
		case <-ctx.Done():
			t.Fatalf("pending connection %d still open after the auth timeout", i+1)
		}
		if _, err := p.OpenStream(ctx); !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("pending connection %d after the auth timeout: %v, want ErrUnauthenticated", i+1, err)
		}
	}
	// Their slots come back: a second session logs in, and then the
	// connection limit (2 sessions) is what refuses a third.
	var b *Client
	for {
		c, err := DialSession(ctx, s.addr, s.tls(), Config{}, id, token)
		if err == nil {
			b = c
			break
		}
		if !errors.Is(err, ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("log in after the timeout: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer b.Close()
	_, err := DialSession(ctx, s.addr, s.tls(), Config{}, id, token)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "connection limit (2)") {
		t.Fatalf("a third session: %v, want ErrUnavailable naming the connection limit", err)
	}
	// Sessions stay past the auth timeout.
	time.Sleep(authTimeout + 500*time.Millisecond)
	if _, err := a.Ping(ctx); err != nil {
		t.Errorf("a session after the auth timeout: %v", err)
	}
}

// stallingPut holds the first PutChunks after its first chunk until
// release is closed; every other upload goes to the memHandler.
type stallingPut struct {
	*memHandler
	stalled atomic.Bool
	got     chan struct{}
	release chan struct{}
}

func (h *stallingPut) PutChunks(ctx context.Context, s *Session, root string, next func() (Chunk, error)) error {
	if !h.stalled.CompareAndSwap(false, true) {
		return h.memHandler.PutChunks(ctx, s, root, next)
	}
	if _, err := next(); err != nil {
		return err
	}
	close(h.got)
	select {
	case <-h.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		if _, err := next(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

func TestUploadBytesPerClient(t *testing.T) {
	h := &stallingPut{memHandler: newMemHandler(testServerPassword), got: make(chan struct{}), release: make(chan struct{})}
	const chunkSize = 60 << 10
	s := startLimitedServer(t, h, Config{}, ServerOptions{MaxChunkSize: 64 << 10,
		Limits: Limits{MaxUploadBytesPerClient: 100 << 10, UploadWait: 300 * time.Millisecond}})
	ctx := testCtx(t)
	id, token := s.register(t, Config{})
	a1, a2 := s.sessionAs(t, id, token), s.sessionAs(t, id, token)
	mustRoot(ctx, t, a1, "r")
	other := s.client(t)
	if _, err := other.JoinRoot(ctx, "r", "root secret"); err != nil {
		t.Fatal(err)
	}

	// a1's upload holds one chunk frame (60 KiB of a 100 KiB budget).
	first := make(chan error, 1)
	go func() {
		first <- a1.PutChunks(ctx, "r", []Chunk{storedChunk(t, randomBytes(chunkSize)), storedChunk(t, randomBytes(chunkSize))})
	}()
	select {
	case <-h.got:
	case <-ctx.Done():
		t.Fatal("the first upload never reached the handler")
	}
	// The same client on another connection finds no room.
	err := a2.PutChunks(ctx, "r", []Chunk{storedChunk(t, randomBytes(chunkSize))})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "upload limit") {
		t.Fatalf("a second upload over the client's budget: %v, want ErrUnavailable (upload limit)", err)
	}
	// Another client has its own budget.
	if err := other.PutChunks(ctx, "r", []Chunk{storedChunk(t, randomBytes(chunkSize))}); err != nil {
		t.Fatalf("another client's upload: %v", err)
	}
	close(h.release)
	if err := <-first; err != nil {
		t.Fatalf("the stalled upload: %v", err)
	}
	// The budget was given back.
	if err := a2.PutChunks(ctx, "r", []Chunk{storedChunk(t, randomBytes(chunkSize)), storedChunk(t, randomBytes(chunkSize))}); err != nil {
		t.Fatalf("an upload once the first ended: %v", err)
	}
	srv := h.memHandler
	srv.mu.Lock()
	stored := len(srv.chunks)
	srv.mu.Unlock()
	if stored != 3 {
		t.Errorf("%d chunks stored, want 3 (the refused upload stored nothing)", stored)
	}
}

func TestSlowlorisCutByReadTimeout(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	s := startLimitedServer(t, newMemHandler(testServerPassword), Config{ReadTimeout: readTimeout}, ServerOptions{})
	good := s.client(t)
	ctx := testCtx(t)
	if _, err := good.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)

	conn, err := Dial(ctx, s.addr, s.tls(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	const streams = 8
	start := time.Now()
	var wg sync.WaitGroup
	answers := make(chan error, streams)
	for range streams {
		st, err := conn.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// A Ping frame announced as 1000 bytes, sent one byte every
		// 50 ms: each byte is progress, but the frame never completes.
		if _, err := st.qs.Write(header(FramePing, 1000)); err != nil {
			t.Fatal(err)
		}
		stop := make(chan struct{})
		wg.Go(func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := st.qs.Write([]byte{'x'}); err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			defer close(stop)
			_, _, err := st.ReadFrame(ctx)
			answers <- err
		})
	}
	// Meanwhile another client is served at once.
	for range 5 {
		if _, err := good.Ping(ctx); err != nil {
			t.Fatalf("ping during the slowloris: %v", err)
		}
	}
	for range streams {
		if err := <-answers; !errors.Is(err, ErrTimeout) {
			t.Fatalf("slowloris stream: %v, want the server's timeout", err)
		}
	}
	if took := time.Since(start); took > 20*readTimeout {
		t.Errorf("the slow streams were cut after %v, read timeout %v", took, readTimeout)
	}
	wg.Wait()
	_ = conn.Close()
	if _, err := good.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	settles(t, goroutines, fds, "the slowloris")
}

func TestStreamStormIsBounded(t *testing.T) {
	s := startLimitedServer(t, newMemHandler(testServerPassword), Config{}, ServerOptions{})
	good := s.client(t)
	ctx := testCtx(t)
	if _, err := good.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)

	const conns = 3
	for range conns {
		conn, err := Dial(ctx, s.addr, s.tls(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		// Thousands of streams at once: the peer's limit stops the
		// opener at MaxIncomingStreams, without waiting.
		var open []*quic.Stream
		for range 5000 {
			qs, err := conn.qc.OpenStream()
			if err != nil {
				if _, ok := errors.AsType[*quic.StreamLimitReachedError](err); !ok {
					t.Fatalf("open stream %d: %v", len(open), err)
				}
				break
			}
			open = append(open, qs)
		}
		if want := int(DefaultConfig.MaxIncomingStreams); len(open) != want {
			t.Fatalf("opened %d streams at once, the limit is %d", len(open), want)
		}
		// Each carries garbage; the server answers or resets every one
		// and frees the slot.
		for _, qs := range open {
			_, _ = qs.Write([]byte{0xff, 0xff, 0xff})
			_ = qs.Close()
		}
		for _, qs := range open {
			_ = qs.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, _ = io.Copy(io.Discard, qs)
		}
		// 2000 more, opened as slots free up, each one request.
		var wg sync.WaitGroup
		var served atomic.Int64
		for range 2000 {
			st, err := conn.OpenStream(ctx)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			wg.Go(func() {
				if err := WriteMessage(ctx, st, &syncpb.Ping{Sent: 1}); err != nil {
					return
				}
				_ = st.CloseWrite()
				if _, _, err := st.ReadFrame(ctx); errors.Is(err, ErrUnauthenticated) || err == nil {
					served.Add(1)
				}
			})
		}
		wg.Wait()
		if served.Load() != 2000 {
			t.Errorf("%d of 2000 pings answered", served.Load())
		}
		if _, err := good.Ping(ctx); err != nil {
			t.Fatalf("the other client during the storm: %v", err)
		}
		_ = conn.Close()
	}
	settles(t, goroutines, fds, "the stream storms")
}

// Pending slots are counted per IPv4 address and per IPv6 /64: one IPv6
// host picks its source addresses from its whole /64.
func TestPendingKey(t *testing.T) {
	key := func(s string) netip.Prefix {
		return remoteIP(net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s)))
	}
	tests := []struct {
		a, b string
		same bool
	}{
		{"[2001:db8:1:2::1]:443", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:5000", true},
		{"[2001:db8:1:2::1]:443", "[2001:db8:1:3::1]:443", false},
		{"[fe80::1%eth0]:443", "[fe80::2%eth1]:443", true},
		{"192.0.2.1:443", "192.0.2.1:9", true},
		{"192.0.2.1:443", "192.0.2.2:443", false},
		{"[::ffff:192.0.2.1]:443", "192.0.2.1:443", true},
	}
	for _, tt := range tests {
		ka, kb := key(tt.a), key(tt.b)
		if !ka.IsValid() || (ka == kb) != tt.same {
			t.Errorf("%s → %s, %s → %s: same %v, want %v", tt.a, ka, tt.b, kb, ka == kb, tt.same)
		}
	}
	if k := remoteIP(&net.TCPAddr{}); k.IsValid() {
		t.Errorf("a non-UDP address counts under %s", k)
	}
}

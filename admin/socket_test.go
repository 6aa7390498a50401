package admin

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/internal/syncbuf"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/server"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// shortTempDir is a temporary directory with a short path: t.TempDir()
// holds the test's name and can push a socket path past its limit.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// serveInBackground runs l until the test ends or the returned stop is
// called; stop returns Serve's error.
func serveInBackground(t *testing.T, l *Listener) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Error("Serve did not return within 30s of cancel")
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop
}

// onlineServer is a server on a data directory with one root, "docs",
// holding big.bin, and the admin handler over it.
type onlineServer struct {
	srv     *server.Server
	dir     string
	token   string
	handler http.Handler
	data    []byte
	hash    cas.ID
}

func newOnlineServer(t *testing.T) *onlineServer {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(shortTempDir(t), "data")
	cheap := secret.Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}
	srv, err := server.Open(ctx, server.Options{
		DataDir: dir, Password: "pw", PasswordParams: cheap, TokenParams: cheap, SmallFootprint: true, RetentionInterval: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	o := &onlineServer{srv: srv, dir: dir}
	o.data = make([]byte, 3<<20)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range o.data {
		o.data[i] = byte(rng.Uint32())
	}
	o.hash = cas.Sum(o.data)
	o.commit(t, "docs", "big.bin", o.data)

	if o.token, err = LoadOrCreateToken(dir); err != nil {
		t.Fatal(err)
	}
	backend := &Backend{Server: srv, DataDir: dir, Online: true, Started: time.Now()}
	o.handler = NewHandler(backend, HandlerOptions{Token: o.token, Metrics: prometheus.NewRegistry()})
	return o
}

// commit writes a file the way a device does: register, upload the
// chunks, propose.
func (o *onlineServer) commit(t *testing.T, root, path string, data []byte) {
	t.Helper()
	ctx := context.Background()
	addr := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
	id := uuid.NewString()
	reg, err := o.srv.RegisterClient(ctx, addr, &syncpb.RegisterClientRequest{ClientId: id, Name: "laptop", ServerPassword: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := o.srv.Authenticate(ctx, addr, &syncpb.AuthRequest{ClientId: id, Token: reg.GetToken()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.srv.RegisterRoot(ctx, sess, &syncpb.RegisterRootRequest{Name: root, RootPassword: "root-pw"}); err != nil {
		t.Fatal(err)
	}
	ch, err := chunker.New(bytes.NewReader(data), chunker.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	var chunks []syncproto.Chunk
	var refs []syncproto.ChunkRef
	for {
		c, err := ch.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		cid := cas.Sum(c.Data)
		chunks = append(chunks, syncproto.Chunk{Codec: syncproto.ChunkRaw, ID: cid, RawLen: c.Length, Data: bytes.Clone(c.Data)})
		refs = append(refs, syncproto.ChunkRef{ID: cid, Size: uint32(c.Length)})
	}
	next := 0
	err = o.srv.PutChunks(ctx, sess, root, func() (syncproto.Chunk, error) {
		if next == len(chunks) {
			return syncproto.Chunk{}, io.EOF
		}
		next++
		return chunks[next-1], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h := cas.Sum(data)
	resp, err := o.srv.Propose(ctx, sess, &syncpb.ProposeRequest{
		Root: root, Path: path, Hash: h[:], Size: int64(len(data)), Mode: 0o640, ChunkCount: uint32(len(refs)),
	}, refs)
	if err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Fatalf("propose %s: %v, %v", path, resp, err)
	}
}

// socketClient is a bare HTTP client on the socket at path, for requests
// the admin client would never send.
func socketClient(path string) *http.Client {
	return &http.Client{Transport: unixTransport(path)}
}

// listenOnSocket starts an online server and a listener on the admin
// socket of its data directory only.
func listenOnSocket(ctx context.Context, t *testing.T) (o *onlineServer, sock string, l *Listener) {
	t.Helper()
	o = newOnlineServer(t)
	sock = filepath.Join(o.dir, SocketFile)
	l, err := Listen(ctx, ServeOptions{Socket: sock, Handler: o.handler})
	if err != nil {
		t.Fatal(err)
	}
	return o, sock, l
}

func TestSocketServesTheAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, sock, l := listenOnSocket(ctx, t)
	if l.SocketPath() != sock || l.Addr() != nil || l.H3Addr() != nil {
		t.Fatalf("bound socket %q, tcp %v, udp %v; want only the socket %s", l.SocketPath(), l.Addr(), l.H3Addr(), sock)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket file mode %v, want a socket with 0600", fi.Mode())
	}
	if err := publish(o.dir, SocketAddrFile, l.SocketPath()); err != nil {
		t.Fatal(err)
	}
	stop := serveInBackground(t, l)

	// The server holds the data directory's lock and publishes only the
	// socket: Connect must take it.
	c, err := Connect(ctx, ConnectOptions{DataDir: o.dir})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Online() || c.remote.where != "unix:"+sock {
		t.Fatalf("Connect reached %+v, want the socket", c.remote)
	}
	if err := c.Health(ctx); err != nil {
		t.Errorf("health over the socket: %v", err)
	}
	roots, err := Call(ctx, c, OpListRoots, NoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].Name != "docs" || roots[0].Files != 1 || roots[0].Bytes != uint64(len(o.data)) {
		t.Errorf("roots over the socket: %+v", roots)
	}
	if _, err := Call(ctx, c, OpListFiles, RootRequest{Root: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("files of a missing root: %v, want ErrNotFound", err)
	}

	// The streaming endpoint: the bytes, their hash and mode arrive whole.
	var got bytes.Buffer
	content, err := Fetch(ctx, c, OpContent, VersionRequest{Root: "docs", Path: "big.bin", Hash: o.hash.String()[:12]}, &got)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), o.data) {
		t.Errorf("content over the socket: %d bytes, not the %d committed", got.Len(), len(o.data))
	}
	if content.Hash != o.hash.String() || content.Size != uint64(len(o.data)) || content.Mode != 0o640 {
		t.Errorf("content header %+v, want hash %s, %d bytes, mode 0640", content, o.hash, len(o.data))
	}
	// Its errors are still JSON errors with their meaning.
	got.Reset()
	if _, err := Fetch(ctx, c, OpContent, VersionRequest{Root: "docs", Path: "big.bin", Hash: "00000000"}, &got); !errors.Is(err, ErrNotFound) || got.Len() != 0 {
		t.Errorf("content of a missing version: %v (%d bytes written), want ErrNotFound", err, got.Len())
	}

	c.Close()
	if err := stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the socket file outlives Serve: %v", err)
	}
	if err := NewSocket(sock, o.token).Health(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("health after stop: %v, want ErrUnavailable", err)
	}
}

func TestSocketNeedsToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, sock, l := listenOnSocket(ctx, t)
	serveInBackground(t, l)

	hc := socketClient(sock)
	defer hc.CloseIdleConnections()
	get := func(path, auth string) (int, ErrorBody) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, socketURL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var eb ErrorBody
		body, _ := io.ReadAll(resp.Body)
		_ = json.Unmarshal(body, &eb)
		return resp.StatusCode, eb
	}
	// A socket peer is not a loopback address: /metrics too needs the
	// token.
	for _, path := range []string{"/v1/clients", "/metrics", "/debug/pprof/", "/debug/pprof/trace"} {
		for _, auth := range []string{"", "Bearer wrong", o.token} {
			status, eb := get(path, auth)
			if status != http.StatusUnauthorized || eb.Error.Code != "unauthorized" {
				t.Errorf("GET %s with Authorization %q: HTTP %d %+v, want 401 unauthorized", path, auth, status, eb)
			}
		}
	}
	if status, _ := get("/v1/clients", "Bearer "+o.token); status != http.StatusOK {
		t.Errorf("GET /v1/clients with the token: HTTP %d", status)
	}
	if status, _ := get("/debug/pprof/trace?seconds=0.05", "Bearer "+o.token); status != http.StatusOK {
		t.Errorf("GET /debug/pprof/trace with the token: HTTP %d", status)
	}
	if status, _ := get("/healthz", ""); status != http.StatusOK {
		t.Errorf("GET /healthz: HTTP %d", status)
	}
	if _, err := Call(ctx, NewSocket(sock, "wrong"), OpListClients, NoRequest{}); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("a Conn with a wrong token: %v, want ErrUnauthorized", err)
	}
	var sink bytes.Buffer
	if _, err := Fetch(ctx, NewSocket(sock, "wrong"), OpContent, VersionRequest{Root: "docs", Path: "big.bin", Hash: o.hash.String()}, &sink); !errors.Is(err, ErrUnauthorized) || sink.Len() != 0 {
		t.Errorf("a stream with a wrong token: %v (%d bytes), want ErrUnauthorized", err, sink.Len())
	}
}

func TestSocketReplacesOnlyStaleSockets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := shortTempDir(t)
	handler := NewHandler(&Backend{}, HandlerOptions{Token: "tok"})

	// A killed server's socket: the file stays, nobody accepts.
	stale := filepath.Join(dir, "stale.sock")
	dead, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	dead.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := dead.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(stale); err != nil {
		t.Fatalf("the dead listener left no file: %v", err)
	}
	l, err := Listen(ctx, ServeOptions{Socket: stale, Handler: handler})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	stop := serveInBackground(t, l)
	if err := NewSocket(stale, "tok").Health(ctx); err != nil {
		t.Errorf("health on the replaced socket: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}

	// Anything that is not a socket is left alone, and Listen fails.
	file := filepath.Join(dir, "file.sock")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	subdir := filepath.Join(dir, "dir.sock")
	if err := os.Mkdir(subdir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{file, subdir} {
		if l, err := Listen(ctx, ServeOptions{Socket: path, Handler: handler}); err == nil || !strings.Contains(err.Error(), "not a socket") {
			if l != nil {
				_ = l.Close()
			}
			t.Errorf("Listen on %s: %v, want a refusal", path, err)
		}
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep me" {
		t.Errorf("the regular file was touched: %q, %v", b, err)
	}
	if fi, err := os.Lstat(subdir); err != nil || !fi.IsDir() {
		t.Errorf("the directory was touched: %v", err)
	}

	// A socket somebody serves is not stale.
	live := filepath.Join(dir, "live.sock")
	other, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if l, err := Listen(ctx, ServeOptions{Socket: live, Handler: handler}); err == nil {
		_ = l.Close()
		t.Error("Listen took over a live socket")
	}
	if conn, err := net.Dial("unix", live); err != nil {
		t.Errorf("the live socket is gone: %v", err)
	} else {
		_ = conn.Close()
	}
}

func TestSocketPathTooLongFallsBackToTCP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := shortTempDir(t)
	cert, err := tlsutil.LoadOrCreate(filepath.Join(dir, server.TLSDir), nil)
	if err != nil {
		t.Fatal(err)
	}
	token, err := LoadOrCreateToken(dir)
	if err != nil {
		t.Fatal(err)
	}
	long := filepath.Join(dir, strings.Repeat("d", 60), strings.Repeat("e", 60), SocketFile)
	logs := &syncbuf.Buffer{}
	l, err := Listen(ctx, ServeOptions{
		Addr: "127.0.0.1:0", Socket: long,
		TLS:     &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		Handler: NewHandler(&Backend{}, HandlerOptions{Token: token}),
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		t.Fatalf("Listen with a socket path of %d bytes: %v", len(long), err)
	}
	if l.SocketPath() != "" || l.Addr() == nil {
		t.Fatalf("socket %q, tcp %v: want TCP only", l.SocketPath(), l.Addr())
	}
	if !strings.Contains(logs.String(), "too long") || !strings.Contains(logs.String(), long) {
		t.Errorf("no warning naming the path:\n%s", logs.String())
	}
	serveInBackground(t, l)

	// A published socket that refuses connections (a dead server's) is
	// passed over for TCP.
	stale := filepath.Join(dir, SocketFile)
	dead, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	dead.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = dead.Close()
	if err := publish(dir, SocketAddrFile, stale); err != nil {
		t.Fatal(err)
	}
	if err := publish(dir, AddrFile, l.URL()); err != nil {
		t.Fatal(err)
	}
	c, err := dialRemote(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.remote.where != l.URL() {
		t.Errorf("dialed %s, want the TCP API %s", c.remote.where, l.URL())
	}
	if err := c.Health(ctx); err != nil {
		t.Errorf("health over TCP: %v", err)
	}

	// Without the TCP address, a dead socket is an error that says so.
	if err := withdraw(dir, AddrFile); err != nil {
		t.Fatal(err)
	}
	if _, err := dialRemote(ctx, dir); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "does not answer") {
		t.Errorf("a dead socket and no TCP API: %v", err)
	}
	if err := withdraw(dir, SocketAddrFile); err != nil {
		t.Fatal(err)
	}
	if _, err := dialRemote(ctx, dir); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "publishes no admin API") {
		t.Errorf("nothing published: %v", err)
	}
}

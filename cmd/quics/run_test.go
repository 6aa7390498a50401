package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/admin"
	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/internal/syncbuf"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/server"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func cheap(o *server.Options) {
	p := secret.Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}
	o.PasswordParams, o.TokenParams, o.SmallFootprint = p, p, true
}

// startServer runs runServer in a goroutine and returns its address, a
// stop function that cancels it and returns its error, and its stdout.
func startServer(t *testing.T, dir, password string) (net.Addr, func() error, *syncbuf.Buffer) {
	t.Helper()
	return startServerWith(t, runOptions{DataDir: dir, Listen: "127.0.0.1:0", Password: password, Views: true})
}

// startServerWith is startServer with more settings (the admin API's are
// all off unless o turns them on).
func startServerWith(t *testing.T, o runOptions) (net.Addr, func() error, *syncbuf.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	o.LogFormat, o.LogLevel, o.Stdout, o.Stderr, o.tune = "json", "debug", stdout, stderr, cheap
	o.ready = func(a net.Addr) { ready <- a }
	go func() { done <- runServer(ctx, o) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("runServer ended before listening: %v\nstderr:\n%s", err, stderr.String())
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("runServer did not start listening in 30s")
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("runServer did not stop within 30s of cancel")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return addr, stop, stdout
}

func TestRunServer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	addr, stop, stdout := startServer(t, dir, "")

	for _, p := range []string{"db", "cas", filepath.Join("tls", "cert.pem"), filepath.Join("tls", "key.pem")} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("data dir lacks %s: %v", p, err)
		}
	}
	pwFile := filepath.Join(dir, "initial-password")
	fi, err := os.Stat(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("initial-password mode %v, want 0600", fi.Mode().Perm())
	}
	raw, err := os.ReadFile(pwFile)
	if err != nil {
		t.Fatal(err)
	}
	password := strings.TrimSpace(string(raw))
	out := stdout.String()
	if !strings.Contains(out, password) || !strings.Contains(out, pwFile) {
		t.Errorf("stdout does not show the generated password and its file:\n%s", out)
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tlsutil.LoadOrCreate(filepath.Join(dir, "tls"), nil)
	if err != nil || len(certPEM) == 0 {
		t.Fatal(err)
	}
	fp := tlsutil.Fingerprint(cert.Certificate[0])
	if !strings.Contains(out, fp) {
		t.Errorf("stdout does not show the fingerprint %s:\n%s", fp, out)
	}

	// A device registers over real QUIC, pinning the printed fingerprint,
	// and opens a session.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tlsConf := tlsutil.PinnedClientConfig(fp, syncproto.ALPN)
	id := uuid.NewString()
	if _, _, err := syncproto.Register(ctx, addr.String(), tlsConf, syncproto.Config{}, &syncpb.RegisterClientRequest{ClientId: id, Name: "t", ServerPassword: "wrong"}); !errors.Is(err, syncproto.ErrBadPassword) {
		t.Errorf("register with a wrong password: err = %v", err)
	}
	resp, _, err := syncproto.Register(ctx, addr.String(), tlsConf, syncproto.Config{}, &syncpb.RegisterClientRequest{ClientId: id, Name: "t", ServerPassword: password})
	if err != nil {
		t.Fatal(err)
	}
	c, err := syncproto.DialSession(ctx, addr.String(), tlsConf, syncproto.Config{}, id, resp.GetToken())
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.RegisterRoot(ctx, "docs", "root-pw")
	if err != nil || info.GetName() != "docs" {
		t.Fatalf("register root over QUIC: %v, %v", info, err)
	}
	roundTrip(ctx, t, c)
	c.Close()
	// The view of the committed file appears under the data dir.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, err := os.ReadFile(filepath.Join(dir, "sync", "docs", "latest", "hello.txt")); err == nil && string(got) == "hello, quics\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("view of hello.txt not written")
		}
		time.Sleep(10 * time.Millisecond)
	}

	if err := stop(); err != nil {
		t.Fatalf("runServer returned %v after cancel", err)
	}

	// The second start keeps the password (shown no more) and the
	// certificate.
	_, stop, stdout = startServer(t, dir, "")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if out := stdout.String(); strings.Contains(out, password) || !strings.Contains(out, fp) {
		t.Errorf("second start output:\n%s", out)
	}
}

func TestRunServerRefusesBadFlags(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, o := range []runOptions{
		{DataDir: "", Listen: "127.0.0.1:0", LogFormat: "text", LogLevel: "info"},
		{DataDir: dir, Listen: "127.0.0.1:0", LogFormat: "xml", LogLevel: "info"},
		{DataDir: dir, Listen: "127.0.0.1:0", LogFormat: "text", LogLevel: "loud"},
		{DataDir: dir, Listen: "not an address", LogFormat: "text", LogLevel: "info", tune: cheap},
	} {
		if err := runServer(ctx, o); err == nil {
			t.Errorf("runServer(%+v) succeeded", o)
		}
	}
}

func TestRunCommandFlags(t *testing.T) {
	t.Setenv(envData, "/env/data")
	t.Setenv(envListen, "127.0.0.1:7000")
	t.Setenv(envPassword, "from-env")
	t.Setenv(envAdmin, "127.0.0.1:7001")
	t.Setenv(envAdminH3, "")
	t.Setenv(envAdminSocket, "/run/quics/admin.sock")
	cmd := newRunCmd()
	for flag, want := range map[string]string{
		"data": "/env/data", "listen": "127.0.0.1:7000", "password": "from-env", "views": "true", "log-format": "text",
		"admin": "127.0.0.1:7001", "admin-h3": "", "admin-socket": "/run/quics/admin.sock",
		"max-conns": "1024", "max-upload-bytes-per-client": "67108864", "max-upload-bytes": "536870912",
	} {
		if got := cmd.Flags().Lookup(flag).DefValue; got != want {
			t.Errorf("--%s defaults to %q, want %q", flag, got, want)
		}
	}
	t.Setenv(envData, "")
	t.Setenv(envListen, "")
	cmd = newRunCmd()
	if got := cmd.Flags().Lookup("listen").DefValue; got != ":6122" {
		t.Errorf("--listen defaults to %q without env", got)
	}
	t.Setenv(envAdminSocket, "")
	if got := newRunCmd().Flags().Lookup("admin-socket").DefValue; got != "" {
		t.Errorf("--admin-socket defaults to %q with %s set but empty", got, envAdminSocket)
	}
	os.Unsetenv(envAdmin)
	os.Unsetenv(envAdminH3)
	os.Unsetenv(envAdminSocket)
	cmd = newRunCmd()
	if a, h3 := cmd.Flags().Lookup("admin").DefValue, cmd.Flags().Lookup("admin-h3").DefValue; a != "127.0.0.1:6120" || h3 != "127.0.0.1:6121" {
		t.Errorf("--admin, --admin-h3 default to %q, %q without env", a, h3)
	}
	if got := cmd.Flags().Lookup("admin-socket").DefValue; got != adminSocketAuto {
		t.Errorf("--admin-socket defaults to %q without env, want %q", got, adminSocketAuto)
	}
	if home, err := os.UserHomeDir(); err == nil {
		if got := cmd.Flags().Lookup("data").DefValue; got != filepath.Join(home, ".quics") {
			t.Errorf("--data defaults to %q without env", got)
		}
	}
}

// roundTrip uploads one file and downloads it again over QUIC.
func roundTrip(ctx context.Context, t *testing.T, c *syncproto.Client) {
	t.Helper()
	data := []byte("hello, quics\n")
	id := cas.Sum(data)
	present, err := c.HaveChunks(ctx, "docs", []cas.ID{id})
	if err != nil || len(present) != 1 || present[0] {
		t.Fatalf("have chunks: %v, %v", present, err)
	}
	if err := c.PutChunks(ctx, "docs", []syncproto.Chunk{{Codec: syncproto.ChunkRaw, ID: id, RawLen: len(data), Data: data}}); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Propose(ctx, &syncpb.ProposeRequest{Root: "docs", Path: "hello.txt", Hash: id[:], Size: int64(len(data)), Mode: 0o644, ChunkCount: 1},
		[]syncproto.ChunkRef{{ID: id, Size: uint32(len(data))}})
	if err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Fatalf("propose: %v, %v", resp, err)
	}
	heads, seq, err := c.Heads(ctx, "docs", 0)
	if err != nil || seq != 1 || len(heads) != 1 || heads[0].GetPath() != "hello.txt" {
		t.Fatalf("heads: %v at %d, %v", heads, seq, err)
	}
	_, refs, err := c.ChunkList(ctx, "docs", "hello.txt", id)
	if err != nil || len(refs) != 1 {
		t.Fatalf("chunk list: %v, %v", refs, err)
	}
	var got []byte
	err = c.GetChunks(ctx, "docs", []cas.ID{refs[0].ID}, func(ch syncproto.Chunk) error {
		b, err := cas.Stored{Codec: cas.Codec(ch.Codec), Data: ch.Data, RawLen: ch.RawLen}.Decode(ch.ID)
		got = append(got, b...)
		return err
	})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %q, %v", got, err)
	}
}

// shortDataDir is a data directory whose socket path stays well within the
// limit of a socket address, wherever TMPDIR points.
func shortDataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "qa")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return filepath.Join(dir, "data")
}

// quics runs the quics command line and returns its stdout.
func quics(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(ctx)
	return out.String(), err
}

// TestAdminCommandsUseTheSocket: with the TCP and HTTP/3 APIs off, the
// admin commands still reach the running server, so they went through
// DATA/admin.sock.
func TestAdminCommandsUseTheSocket(t *testing.T) {
	dir := shortDataDir(t)
	_, stop, stdout := startServerWith(t, runOptions{DataDir: dir, Listen: "127.0.0.1:0", Password: "pw", AdminSocket: adminSocketAuto})
	sock := filepath.Join(dir, admin.SocketFile)
	if out := stdout.String(); !strings.Contains(out, "admin API on unix:"+sock+"\n") || strings.Contains(out, "(tcp)") {
		t.Errorf("stdout does not announce the socket alone:\n%s", out)
	}
	fi, err := os.Lstat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want a 0600 socket", sock, fi.Mode())
	}
	if _, err := os.Stat(filepath.Join(dir, admin.AddrFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin-addr published without a TCP API: %v", err)
	}

	if out, err := quics(t, "health", "--data", dir); err != nil || out != "ok\n" {
		t.Fatalf("quics health: %q, %v", out, err)
	}
	out, err := quics(t, "show", "clients", "--json", "--data", dir)
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("quics show clients: %q, %v", out, err)
	}
	// Answers and errors are the same as over TCP.
	out, err = quics(t, "show", "roots", "--data", dir, "--json")
	if err != nil || strings.TrimSpace(out) != "[]" {
		t.Fatalf("quics show roots: %q, %v", out, err)
	}
	if _, err := quics(t, "show", "files", "nope", "--data", dir); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("quics show files of a missing root: %v", err)
	}

	// quics stop goes through the socket too; the server withdraws it.
	if out, err := quics(t, "stop", "--data", dir); err != nil {
		t.Fatalf("quics stop: %q, %v", out, err)
	}
	if err := stop(); err != nil {
		t.Fatalf("runServer: %v", err)
	}
	for _, name := range []string{admin.SocketFile, admin.SocketAddrFile} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s outlives the server: %v", name, err)
		}
	}
}

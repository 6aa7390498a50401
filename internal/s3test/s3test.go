package s3test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// InstallHint is the message of a test that cannot find versitygw.
const InstallHint = "versitygw not found: run `make versitygw` (installs bin/tools/versitygw), " +
	"set QUICS_VERSITYGW to its path, or put it on $PATH"

const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
	// launchTries bounds the retries when another process takes the free
	// port between our probe and versitygw's bind.
	launchTries = 5
)

// Server is a running versitygw. Its fields are what a client needs; they
// stay the same across Restart.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	Addr      string // 127.0.0.1:PORT, for proxies
	AccessKey string
	SecretKey string
	Region    string
	Dir       string // posix backend root: one directory per bucket

	bin  string
	logs *tailBuffer

	mu   sync.Mutex
	proc *process
}

type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd.Wait returned
	err  error         // cmd.Wait's result, set before done closes
}

// Start runs versitygw for the rest of the test. It skips the test (or
// fails it under QUICS_REQUIRE_S3=1) when versitygw is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := findBinary(os.Getenv, "")
	switch {
	case errors.Is(err, errNotInstalled) && os.Getenv("QUICS_REQUIRE_S3") != "1":
		t.Skip(InstallHint)
	case errors.Is(err, errNotInstalled):
		t.Fatalf("%s (QUICS_REQUIRE_S3=1 forbids skipping)", InstallHint)
	case err != nil:
		t.Fatalf("s3test: %v", err)
	}
	s := &Server{
		AccessKey: randomHex(t, 10),
		SecretKey: randomHex(t, 20),
		Region:    "us-east-1",
		Dir:       t.TempDir(),
		bin:       bin,
		logs:      &tailBuffer{max: 64 << 10},
	}
	t.Cleanup(s.Stop)
	for try := 0; ; try++ {
		addr, err := freeAddr()
		if err != nil {
			t.Fatalf("s3test: %v", err)
		}
		s.Addr = addr
		s.Endpoint = "http://" + addr
		err = s.launch()
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || try+1 == launchTries {
			t.Fatalf("s3test: %v\nversitygw output:\n%s", err, s.Logs())
		}
	}
}

// Stop terminates the server and waits for it; a stopped server refuses
// connections until Restart. Stopping twice is harmless.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Restart stops the server if it runs and starts it again on the same
// address, with the same keys and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	var err error
	for try := 0; try < launchTries; try++ {
		if err = s.launch(); !errors.Is(err, errPortTaken) {
			break
		}
		// Someone holds our port for now; give them a moment.
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("s3test: restart: %v\nversitygw output:\n%s", err, s.Logs())
	}
}

// Logs returns the tail of the server's stdout and stderr.
func (s *Server) Logs() string { return s.logs.String() }

// Client returns a minio client with the server's root credentials, for
// tests that arrange or inspect objects directly.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := minio.New(s.Addr, &minio.Options{
		Creds:        credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		Secure:       false,
		Region:       s.Region,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatalf("s3test: client: %v", err)
	}
	return c
}

// NewBucket creates a bucket through the S3 API.
func (s *Server) NewBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("s3test: create bucket %q: %v\nversitygw output:\n%s", name, err, s.Logs())
	}
}

var (
	errPortTaken    = errors.New("address already in use")
	errNotInstalled = errors.New("versitygw is not installed")
)

// launch starts versitygw on s.Addr and waits until it answers HTTP.
func (s *Server) launch() error {
	cmd := exec.Command(s.bin,
		"--port", s.Addr,
		"--access", s.AccessKey,
		"--secret", s.SecretKey,
		"--region", s.Region,
		"--quiet",
		"posix", s.Dir)
	cmd.Env = hermeticEnv(os.Environ())
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := waitReady(s.Endpoint, p); err != nil {
		p.stop()
		if strings.Contains(s.Logs(), "address already in use") {
			return fmt.Errorf("%s: %w", s.Addr, errPortTaken)
		}
		return err
	}
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady polls until the server answers any HTTP response (an
// unauthenticated request gets 403: that is an answer).
func waitReady(endpoint string, p *process) error {
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: 2 * time.Second, Transport: tr}
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("versitygw exited before answering: %v", p.err)
		default:
		}
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("versitygw did not answer at %s within %v: %w", endpoint, readyTimeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// findBinary applies the documented search order. dir is where to start
// looking for the module root ("" for the working directory). A
// QUICS_VERSITYGW that names no executable is an error, not a skip: someone
// asked for that binary.
func findBinary(getenv func(string) string, dir string) (string, error) {
	if p := getenv("QUICS_VERSITYGW"); p != "" {
		if err := isExecutable(p); err != nil {
			return "", fmt.Errorf("QUICS_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	if root, err := moduleRoot(dir); err == nil {
		p := filepath.Join(root, "bin", "tools", "versitygw")
		if isExecutable(p) == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("versitygw")
	if err != nil {
		return "", errNotInstalled
	}
	return p, nil
}

func isExecutable(p string) error {
	info, err := os.Stat(p)
	if err != nil {
		return err
	}
	if info.IsDir() || info.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// moduleRoot walks up from dir to the directory holding go.mod.
func moduleRoot(dir string) (string, error) {
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		dir = wd
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// hermeticEnv drops the variables versitygw reads as defaults for its
// flags, so a developer's shell cannot change the test server.
func hermeticEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if strings.HasPrefix(kv, "VGW_") || strings.HasPrefix(kv, "ROOT_ACCESS_") ||
			strings.HasPrefix(kv, "ROOT_SECRET_") || strings.HasPrefix(kv, "LOGFILE=") ||
			strings.HasPrefix(kv, "WEBHOOK=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("s3test: random key: %v", err)
	}
	return hex.EncodeToString(b)
}

// tailBuffer keeps the last max bytes written to it: enough of a server's
// output to explain a failure without growing without bound.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

package s3store

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/s3test"
)

func TestTransient(t *testing.T) {
	s3err := func(status int, code string) error {
		return fmt.Errorf("op: %w", minio.ErrorResponse{StatusCode: status, Code: code})
	}
	opErr := func(errno syscall.Errno) error {
		return &url.Error{Op: "Put", URL: "http://x", Err: &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", errno)}}
	}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"500", s3err(500, "InternalError"), true},
		{"502 without code", s3err(502, ""), true},
		{"503 SlowDown", s3err(503, "SlowDown"), true},
		{"504", s3err(504, "GatewayTimeout"), true},
		{"501 NotImplemented", s3err(501, "NotImplemented"), false},
		{"408", s3err(408, "RequestTimeout"), true},
		{"429", s3err(429, "TooManyRequests"), true},
		{"400 RequestTimeout code", s3err(400, "RequestTimeout"), true},
		{"400", s3err(400, "InvalidArgument"), false},
		{"403", s3err(403, "AccessDenied"), false},
		{"404", s3err(404, "NoSuchKey"), false},
		{"412", s3err(412, "PreconditionFailed"), false},
		{"416", s3err(416, "InvalidRange"), false},
		{"connection reset", opErr(syscall.ECONNRESET), true},
		{"connection refused", opErr(syscall.ECONNREFUSED), true},
		{"broken pipe", opErr(syscall.EPIPE), true},
		{"EOF before the response", &url.Error{Op: "Get", URL: "http://x", Err: io.EOF}, true},
		{"body cut", fmt.Errorf("read: %w", errBodyCut), true},
		{"unexpected EOF", io.ErrUnexpectedEOF, true},
		{"transport timeout", &url.Error{Op: "Get", URL: "http://x", Err: context.DeadlineExceeded}, true},
		{"unknown host", &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}}, false},
		{"DNS timeout", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "timeout", Name: "x", IsTimeout: true}}, true},
		{"untrusted certificate", &url.Error{Op: "Get", URL: "https://x", Err: x509.UnknownAuthorityError{}}, false},
		{"wrong host certificate", &url.Error{Op: "Get", URL: "https://x", Err: x509.HostnameError{Host: "x"}}, false},
		{"callback error that looks transient", stopError{io.ErrUnexpectedEOF}, false},
		{"plain error", errors.New("something else"), false},
	}
	for _, c := range cases {
		if got := transient(c.err); got != c.want {
			t.Errorf("%s: transient(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestRetryWaitStaysInBounds(t *testing.T) {
	p := defaultRetry
	for n := range 64 {
		ceiling := min(p.max, p.base<<min(n, 30))
		if n >= 30 {
			ceiling = p.max
		}
		for range 20 {
			if w := p.wait(n); w < ceiling/2 || w > ceiling {
				t.Fatalf("wait(%d) = %v, want within [%v, %v]", n, w, ceiling/2, ceiling)
			}
		}
	}
}

func TestRetryStopsAtTheBound(t *testing.T) {
	p := retryPolicy{attempts: 4, base: time.Microsecond, max: time.Microsecond}
	calls := 0
	err := p.retry(context.Background(), func(int) error {
		calls++
		return fmt.Errorf("flaky: %w", io.ErrUnexpectedEOF)
	})
	if calls != 4 || err == nil || !strings.Contains(err.Error(), "gave up after 4 attempts") {
		t.Errorf("%d calls, %v; want 4 calls and a gave-up error", calls, err)
	}
	calls = 0
	forbidden := minio.ErrorResponse{StatusCode: 403, Code: "AccessDenied"}
	err = p.retry(context.Background(), func(int) error { calls++; return forbidden })
	if calls != 1 || !errors.Is(err, forbidden) {
		t.Errorf("a 403 was tried %d times (%v), want once", calls, err)
	}
}

// proxied opens a backend whose every request passes through a fault
// injecting proxy in front of the test server.
func proxied(t *testing.T, cfg Config, s *s3test.Server) (*Backend, *s3test.Proxy) {
	t.Helper()
	p := s3test.NewProxy(t, s.Addr, nil)
	cfg.Endpoint = p.Endpoint
	return openBackend(t, cfg, "proxied"), p
}

// resetNext makes the proxy reset the next k connections; it returns the
// connection count before them.
func resetNext(p *s3test.Proxy, k int) int {
	start := p.Conns()
	p.SetFault(func(n int) s3test.Fault {
		return s3test.Fault{Reset: n >= start && n < start+k}
	})
	return start
}

func TestS3RetriesThroughResets(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "flaky")
	b, p := proxied(t, s3Config(s, "flaky", "r"), s)
	ctx := context.Background()
	data := randomBytes(200_000, 20)

	// Each operation meets two reset connections first; each reset
	// costs exactly one extra request.
	start := resetNext(p, 2)
	if err := b.Put(ctx, 3, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put through resets: %v", err)
	}
	if n := p.Conns() - start; n != 2+2 { // PUT + HEAD, plus the resets
		t.Errorf("Put used %d connections, want 4", n)
	}

	start = resetNext(p, 2)
	got := make([]byte, 1000)
	if n, err := b.ReadAt(ctx, 3, got, 5000); n != len(got) || err != nil || !bytes.Equal(got, data[5000:6000]) {
		t.Fatalf("ReadAt through resets: %d, %v", n, err)
	}
	if n := p.Conns() - start; n != 1+2 {
		t.Errorf("ReadAt used %d connections, want 3", n)
	}

	start = resetNext(p, 2)
	if packs := listAll(t, b); len(packs) != 1 || packs[3] != int64(len(data)) {
		t.Errorf("List through resets = %v", packs)
	}
	if n := p.Conns() - start; n != 1+2 {
		t.Errorf("List used %d connections, want 3", n)
	}

	start = resetNext(p, 2)
	if size, err := b.Stat(ctx, 3); err != nil || size != int64(len(data)) {
		t.Errorf("Stat through resets: %d, %v", size, err)
	}
	if n := p.Conns() - start; n != 1+2 {
		t.Errorf("Stat used %d connections, want 3", n)
	}

	start = resetNext(p, 2)
	if err := b.Delete(ctx, 3); err != nil {
		t.Errorf("Delete through resets: %v", err)
	}
	if n := p.Conns() - start; n != 1+2 {
		t.Errorf("Delete used %d connections, want 3", n)
	}
	if _, err := b.Stat(ctx, 3); !errors.Is(err, cas.ErrNoObject) {
		t.Errorf("Stat after Delete: %v, want ErrNoObject", err)
	}
}

func TestS3MultipartRetriesParts(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "flakybig")
	cfg := s3Config(s, "flakybig", "")
	cfg.PartSize = MinPartSize
	b, p := proxied(t, cfg, s)
	ctx := context.Background()
	data := randomBytes(11<<20, 21)

	// Let the upload start, then reset two of the part uploads.
	start := p.Conns()
	p.SetFault(func(n int) s3test.Fault {
		return s3test.Fault{Reset: n == start+1 || n == start+2}
	})
	before := b.Requests()
	if err := b.Put(ctx, 8, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if puts := b.Requests().Put - before.Put; puts != 5+2 {
		t.Errorf("%d PUT/POST requests, want 7 (start, 3 parts, complete, 2 retried parts)", puts)
	}
	got := make([]byte, len(data))
	if n, err := b.ReadAt(ctx, 8, got, 0); n != len(data) || (err != nil && err != io.EOF) || !bytes.Equal(got, data) {
		t.Fatalf("read back: %d, %v, equal=%v", n, err, bytes.Equal(got, data))
	}
}

func TestS3ReadResumesAfterCutBody(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "cut")
	b, p := proxied(t, s3Config(s, "cut", "c"), s)
	ctx := context.Background()
	data := randomBytes(1536<<10, 22)
	if err := b.Put(ctx, 1, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}

	// Every response is cut after 600 KiB. A 1 MiB read succeeds only if
	// the second request asks for the remainder alone, not the whole
	// range again.
	start := p.Conns()
	p.SetFault(func(int) s3test.Fault { return s3test.Fault{CutAfter: 600 << 10} })
	got := make([]byte, 1<<20)
	n, err := b.ReadAt(ctx, 1, got, 100)
	if err != nil || n != len(got) || !bytes.Equal(got, data[100:100+len(got)]) {
		t.Fatalf("ReadAt = %d, %v; equal=%v", n, err, bytes.Equal(got[:n], data[100:100+n]))
	}
	if used := p.Conns() - start; used != 2 {
		t.Errorf("read used %d connections, want 2", used)
	}
}

func TestS3ListResumesAfterFailedPage(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "pages")
	b, p := proxied(t, s3Config(s, "pages", "l"), s)
	b.listPage = 2
	ctx := context.Background()
	for num := uint64(1); num <= 5; num++ {
		if err := b.Put(ctx, num, bytes.NewReader([]byte{byte(num)}), 1); err != nil {
			t.Fatal(err)
		}
	}
	before := b.Requests().List
	if got := listAll(t, b); len(got) != 5 {
		t.Fatalf("clean List = %v", got)
	}
	clean := b.Requests().List - before

	// Fail the second page: the retry resumes after the last key seen,
	// so nothing is reported twice (listAll checks) and nothing is lost.
	start := p.Conns()
	p.SetFault(func(n int) s3test.Fault { return s3test.Fault{Reset: n == start+1} })
	before = b.Requests().List
	if got := listAll(t, b); len(got) != 5 {
		t.Fatalf("List with a failed page = %v", got)
	}
	if faulty := b.Requests().List - before; faulty != clean+1 {
		t.Errorf("List with a failed page sent %d requests, want %d (one retried page)", faulty, clean+1)
	}
}

func TestS3PermanentFailureIsBounded(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "down")
	b, p := proxied(t, s3Config(s, "down", "d"), s)
	ctx := context.Background()

	start := p.Conns()
	p.SetFault(func(int) s3test.Fault { return s3test.Fault{Reset: true} })
	_, err := b.Stat(ctx, 1)
	if err == nil || errors.Is(err, cas.ErrNoObject) {
		t.Fatalf("Stat through a dead network: %v, want a failure that is not ErrNoObject", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("gave up after %d attempts", defaultRetry.attempts)) {
		t.Errorf("error %q does not say it gave up", err)
	}
	if used := p.Conns() - start; used != defaultRetry.attempts {
		t.Errorf("Stat used %d connections, want %d", used, defaultRetry.attempts)
	}

	// Cancel during the second attempt: no third one, and the error says
	// why it stopped.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start = p.Conns()
	p.SetFault(func(n int) s3test.Fault {
		if n == start+1 {
			cancel()
		}
		return s3test.Fault{Reset: true}
	})
	_, err = b.ReadAt(ctx, 1, make([]byte, 10), 0)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("ReadAt after cancel: %v, want context.Canceled", err)
	}
	if used := p.Conns() - start; used != 2 {
		t.Errorf("ReadAt used %d connections after its context ended, want 2", used)
	}
	err = b.Put(ctx, 1, bytes.NewReader([]byte("x")), 1)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled context: %v, want context.Canceled", err)
	}
}

func TestS3SurvivesServerRestart(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "outage")
	b, p := proxied(t, s3Config(s, "outage", "o"), s)
	ctx := context.Background()
	data := randomBytes(5000, 23)
	if err := b.Put(ctx, 2, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	// A patient policy: the test asserts recovery, not how fast it is.
	b.retry = retryPolicy{attempts: 60, base: 50 * time.Millisecond, max: 500 * time.Millisecond}

	s.Stop()
	start := p.Conns()
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, len(data))
		_, err := b.ReadAt(ctx, 2, buf, 0)
		if err == nil && !bytes.Equal(buf, data) {
			err = errors.New("wrong bytes after the restart")
		}
		done <- err
	}()
	// Wait until the read has failed twice against the stopped server.
	for p.Conns() < start+2 {
		select {
		case err := <-done:
			t.Fatalf("ReadAt returned while the server was down: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	s.Restart(t)
	if err := <-done; err != nil && err != io.EOF {
		t.Fatalf("ReadAt across a restart: %v", err)
	}
}

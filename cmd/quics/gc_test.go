package main

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/syncbuf"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// TestRunCollectsEveryInterval: with --gc-interval the server collects
// garbage by itself, again and again, until it stops.
func TestRunCollectsEveryInterval(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	done := make(chan error, 1)
	ready := make(chan net.Addr, 1)
	go func() {
		done <- runServer(ctx, runOptions{
			DataDir: filepath.Join(t.TempDir(), "data"), Listen: "127.0.0.1:0", Password: "pw",
			GCInterval: 20 * time.Millisecond, LogFormat: "text", LogLevel: "info",
			Stdout: stdout, Stderr: stderr, tune: cheap, ready: func(a net.Addr) { ready <- a },
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("runServer ended: %v\n%s", err, stderr.String())
	case <-ctx.Done():
		t.Fatal("runServer did not start")
	}
	for strings.Count(stderr.String(), "quics: automatic gc") < 2 {
		select {
		case err := <-done:
			t.Fatalf("runServer ended: %v\n%s", err, stderr.String())
		case <-ctx.Done():
			t.Fatalf("no two automatic collections within a minute:\n%s", stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runServer: %v", err)
	}
}

// TestRunAppliesConnectionLimit: --max-conns reaches the QUIC server.
func TestRunAppliesConnectionLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	dir := filepath.Join(t.TempDir(), "data")
	done := make(chan error, 1)
	ready := make(chan net.Addr, 1)
	go func() {
		done <- runServer(ctx, runOptions{
			DataDir: dir, Listen: "127.0.0.1:0", Password: "pw", Limits: syncproto.Limits{MaxConns: 1},
			LogFormat: "text", LogLevel: "info", Stdout: stdout, Stderr: stderr, tune: cheap,
			ready: func(a net.Addr) { ready <- a },
		})
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("runServer ended: %v\n%s", err, stderr.String())
	}
	cert, err := tlsutil.LoadOrCreate(filepath.Join(dir, "tls"), nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsConf := tlsutil.PinnedClientConfig(tlsutil.Fingerprint(cert.Certificate[0]), syncproto.ALPN)
	id := uuid.NewString()
	resp, _, err := syncproto.Register(ctx, addr.String(), tlsConf, syncproto.Config{},
		&syncpb.RegisterClientRequest{ClientId: id, Name: "laptop", ServerPassword: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	// The first session holds the only slot; a second login is refused.
	first, err := syncproto.DialSession(ctx, addr.String(), tlsConf, syncproto.Config{}, id, resp.GetToken())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	_, err = syncproto.DialSession(ctx, addr.String(), tlsConf, syncproto.Config{}, id, resp.GetToken())
	if !errors.Is(err, syncproto.ErrUnavailable) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("a second session with --max-conns 1: %v, want unavailable naming the limit", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("runServer: %v", err)
	}
}

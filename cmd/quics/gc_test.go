package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunCollectsEveryInterval: with --gc-interval the server collects
// garbage by itself, again and again, until it stops.
func TestRunCollectsEveryInterval(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
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

package s3test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func TestServerKeepsDataAcrossRestart(t *testing.T) {
	s := Start(t)
	s.NewBucket(t, "keep")
	ctx := context.Background()
	want := []byte("survives a restart")
	if _, err := s.Client(t).PutObject(ctx, "keep", "a/b", bytes.NewReader(want), int64(len(want)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}

	s.Stop()
	stopped := newClient(t, s.Addr, s.AccessKey, s.SecretKey, s.Region)
	if _, err := stopped.StatObject(ctx, "keep", "a/b", minio.StatObjectOptions{}); err == nil {
		t.Fatal("stat succeeded against a stopped server")
	}

	s.Restart(t)
	got := readObject(t, s.Client(t), "keep", "a/b")
	if !bytes.Equal(got, want) {
		t.Fatalf("after restart got %q, want %q", got, want)
	}
}

func TestServerRefusesWrongSecret(t *testing.T) {
	s := Start(t)
	s.NewBucket(t, "locked")
	c := newClient(t, s.Addr, s.AccessKey, "not-"+s.SecretKey, s.Region)
	if _, err := c.BucketExists(context.Background(), "locked"); err == nil {
		t.Fatal("a wrong secret was accepted")
	}
}

func TestProxyInjectsFaults(t *testing.T) {
	s := Start(t)
	s.NewBucket(t, "proxied")
	ctx := context.Background()
	want := bytes.Repeat([]byte("0123456789abcdef"), 16<<10) // 256 KiB
	if _, err := s.Client(t).PutObject(ctx, "proxied", "obj", bytes.NewReader(want), int64(len(want)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("put: %v", err)
	}

	p := NewProxy(t, s.Addr, func(n int) Fault {
		switch n {
		case 0:
			return Fault{Reset: true}
		case 1:
			return Fault{CutAfter: 64 << 10}
		}
		return Fault{}
	})
	c := newClient(t, p.Addr, s.AccessKey, s.SecretKey, s.Region)

	if _, err := c.StatObject(ctx, "proxied", "obj", minio.StatObjectOptions{}); err == nil {
		t.Error("request on a reset connection succeeded")
	}
	obj, err := c.GetObject(ctx, "proxied", "obj", minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got, err := io.ReadAll(obj)
	obj.Close()
	if err == nil {
		t.Errorf("read through a cut connection succeeded with %d bytes", len(got))
	}
	if len(got) >= len(want) {
		t.Errorf("cut connection delivered %d bytes, want fewer than %d", len(got), len(want))
	}
	if got := readObject(t, c, "proxied", "obj"); !bytes.Equal(got, want) {
		t.Errorf("read through a healthy connection: %d bytes, want %d equal bytes", len(got), len(want))
	}
	if n := p.Conns(); n != 3 {
		t.Errorf("proxy saw %d connections, want 3 (one per request)", n)
	}
}

// newClient makes a client that does not retry, so each call is one
// request and one connection.
func newClient(t *testing.T, addr, access, secret, region string) *minio.Client {
	t.Helper()
	c, err := minio.New(addr, &minio.Options{
		Creds:        credentials.NewStaticV4(access, secret, ""),
		Region:       region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readObject(t *testing.T, c *minio.Client, bucket, key string) []byte {
	t.Helper()
	obj, err := c.GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s/%s: %v", bucket, key, err)
	}
	return b
}

func TestFindBinary(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tools := filepath.Join(root, "bin", "tools")
	deep := filepath.Join(root, "pkg", "sub")
	for _, d := range []string{tools, deep} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	explicit := filepath.Join(root, "my-versitygw")
	writeExec(t, explicit)
	notExec := filepath.Join(root, "plain-file")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "QUICS_VERSITYGW" {
				return v
			}
			return ""
		}
	}
	t.Setenv("PATH", t.TempDir()) // nothing on $PATH

	if got, err := findBinary(env(explicit), deep); err != nil || got != explicit {
		t.Errorf("QUICS_VERSITYGW: got %q, %v; want %q", got, err, explicit)
	}
	if _, err := findBinary(env(notExec), deep); err == nil || errors.Is(err, errNotInstalled) {
		t.Errorf("QUICS_VERSITYGW naming a non-executable: got %v, want an error other than not-installed", err)
	}
	if _, err := findBinary(env(""), deep); !errors.Is(err, errNotInstalled) {
		t.Errorf("nothing installed: got %v, want errNotInstalled", err)
	}

	inTools := filepath.Join(tools, "versitygw")
	writeExec(t, inTools)
	if got, err := findBinary(env(""), deep); err != nil || got != inTools {
		t.Errorf("bin/tools: got %q, %v; want %q", got, err, inTools)
	}

	onPath := t.TempDir()
	writeExec(t, filepath.Join(onPath, "versitygw"))
	t.Setenv("PATH", onPath)
	outside := t.TempDir() // no go.mod above a fresh temp dir
	if got, err := findBinary(env(""), outside); err != nil || got != filepath.Join(onPath, "versitygw") {
		t.Errorf("$PATH: got %q, %v", got, err)
	}
}

func writeExec(t *testing.T, p string) {
	t.Helper()
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

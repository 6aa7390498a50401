package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/quic-s/quics/internal/s3test"
	"github.com/quic-s/quics/s3store"
)

// s3Options points opts at bucket/prefix of srv with small packs, so a
// few hundred KiB of content seal several.
func s3Options(opts Options, srv *s3test.Server, url string) Options {
	opts.Store = StoreOptions{
		URL:      url,
		S3:       s3store.Config{Endpoint: srv.Endpoint, Region: srv.Region, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey},
		PackSize: 64 << 10,
	}
	return opts
}

// commitFile uploads and commits data as path in root, returning it back
// for comparison.
func commitFile(t *testing.T, e *env, root, path string, seed uint64) []byte {
	t.Helper()
	sess := e.client(t, "writer-"+path)
	if _, err := e.srv.db.RootByName(context.Background(), root); err != nil {
		e.root(t, sess, root)
	} else {
		e.join(t, sess, root)
	}
	data := randomData(seed, 300<<10)
	f := newFile(t, data)
	e.upload(t, sess, root, f)
	e.mustPush(t, sess, root, path, nil, f)
	return data
}

func readBack(t *testing.T, e *env, root, path string, want []byte) {
	t.Helper()
	sess := e.client(t, "reader-"+path)
	e.join(t, sess, root)
	heads, _, _ := e.heads(t, sess, root, 0)
	h := heads[path]
	if h == nil {
		t.Fatalf("%s: no head", path)
	}
	got, err := e.download(t, sess, root, path, h.GetHash())
	if err != nil {
		t.Fatalf("download %s: %v", path, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: downloaded content differs", path)
	}
}

// An S3 store records its choice in store.json (no secrets), later starts
// need only credentials, and another store is refused.
func TestStoreS3Persisted(t *testing.T) {
	srv := s3test.Start(t)
	srv.NewBucket(t, "quics")
	dir := filepath.Join(t.TempDir(), "data")
	e := newEnvWith(t, s3Options(testOptions(dir), srv, "s3://quics/main"))
	data := commitFile(t, e, "docs", "a.bin", 1)
	if _, err := e.srv.MigrateStore(context.Background()); err != nil {
		t.Fatalf("upload: %v", err)
	}
	st, err := e.srv.StoreStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.URL != "s3://quics/main" || st.RemotePacks == 0 || st.LocalPacks != 0 {
		t.Fatalf("StoreStatus = %+v", st)
	}
	conf, err := os.ReadFile(filepath.Join(dir, StoreConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(conf, []byte(srv.SecretKey)) || bytes.Contains(conf, []byte(srv.AccessKey)) {
		t.Fatalf("store.json holds credentials: %s", conf)
	}

	// No URL, no endpoint: store.json supplies them; credentials only.
	opts := testOptions(dir)
	opts.Store.S3 = s3store.Config{AccessKey: srv.AccessKey, SecretKey: srv.SecretKey}
	e.reopen(t, opts)
	if got := e.srv.StoreInfo().URL; got != "s3://quics/main" {
		t.Fatalf("reopened store is %q", got)
	}
	readBack(t, e, "docs", "a.bin", data)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}

	for _, url := range []string{"local", "s3://quics/other", "file:///tmp/elsewhere"} {
		_, err := Open(context.Background(), s3Options(testOptions(dir), srv, url))
		if !errors.Is(err, ErrStoreMismatch) {
			t.Errorf("reopen with --store %s: %v, want ErrStoreMismatch", url, err)
		}
	}
	bad := s3Options(testOptions(dir), srv, "")
	bad.Store.S3.SecretKey = "wrong"
	if _, err := Open(context.Background(), bad); !errors.Is(err, s3store.ErrCredentials) {
		t.Errorf("reopen with a wrong secret: %v, want ErrCredentials", err)
	}
	// Another data directory on the same prefix is refused.
	other := filepath.Join(t.TempDir(), "other")
	if _, err := Open(context.Background(), s3Options(testOptions(other), srv, "s3://quics/main")); !errors.Is(err, s3store.ErrForeignStore) {
		t.Errorf("second data directory on the same prefix: %v, want ErrForeignStore", err)
	}
	e.srv, err = Open(context.Background(), s3Options(testOptions(dir), srv, ""))
	if err != nil {
		t.Fatal(err)
	}
}

// A local store with packs moves to S3 only when asked to migrate; the
// migration uploads every pack and the content stays readable.
func TestStoreMigrateLocalToS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.NewBucket(t, "quics")
	dir := filepath.Join(t.TempDir(), "data")
	opts := testOptions(dir)
	opts.Store.PackSize = 64 << 10
	e := newEnvWith(t, opts)
	a := commitFile(t, e, "docs", "a.bin", 2)
	b := commitFile(t, e, "docs", "b.bin", 3)
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), s3Options(testOptions(dir), srv, "s3://quics/moved")); !errors.Is(err, ErrStoreMismatch) {
		t.Fatalf("switching a local store with packs without migrate: %v, want ErrStoreMismatch", err)
	}
	mopts := s3Options(testOptions(dir), srv, "s3://quics/moved")
	mopts.Store.Migrate = true
	var err error
	e.srv, err = Open(context.Background(), mopts)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.srv.MigrateStore(context.Background())
	if err != nil {
		t.Fatalf("migrate: %v", err)
	}
	st, err := e.srv.StoreStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Packs == 0 || st.LocalPacks != 0 || st.RemotePacks != st.Packs {
		t.Fatalf("after migrate: report %+v, status %+v", rep, st)
	}
	readBack(t, e, "docs", "a.bin", a)
	readBack(t, e, "docs", "b.bin", b)
	chk, err := e.srv.store.Check(context.Background(), true)
	if err != nil || !chk.OK() {
		t.Fatalf("check after migrate: %v, %v", chk.Problems, err)
	}
	e.reopen(t, s3Options(testOptions(dir), srv, ""))
	readBack(t, e, "docs", "a.bin", a)

	// And back: every pack downloaded, the objects deleted, the store
	// local again and usable without any S3 settings.
	back := s3Options(testOptions(dir), srv, "local")
	back.Store.Migrate = true
	e.reopen(t, back)
	if _, err := e.srv.MigrateStore(context.Background()); err != nil {
		t.Fatalf("migrate back to local: %v", err)
	}
	e.reopen(t, testOptions(dir))
	st, err = e.srv.StoreStatus(context.Background())
	if err != nil || st.URL != StoreLocal || st.RemotePacks != 0 {
		t.Fatalf("after migrating back: %+v, %v", st, err)
	}
	readBack(t, e, "docs", "a.bin", a)
	readBack(t, e, "docs", "b.bin", b)
	for obj := range srv.Client(t).ListObjects(context.Background(), "quics", minio.ListObjectsOptions{Prefix: "moved/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if strings.HasSuffix(obj.Key, ".pack") {
			t.Errorf("pack object %s left in the bucket after migrating back", obj.Key)
		}
	}
}

func TestNormalizeStoreURL(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"", "local", true},
		{"local", "local", true},
		{"s3://bucket", "s3://bucket", true},
		{"s3://bucket/", "s3://bucket", true},
		{"s3://bucket/a/b/", "s3://bucket/a/b", true},
		{"file:///srv/packs/", "file:///srv/packs", true},
		{"file://relative/path", "", false},
		{"file:///a\x00b", "", false},
		{"file:///%01", "", false},
		{"file:///srv/x?y", "", false},
		{"file:///srv/a%23b%20c/", "file:///srv/a%23b%20c", true},
		{"s3://bucket/../x", "", false},
		{"s3://BAD_bucket", "", false},
		{"gs://bucket", "", false},
		{"/srv/packs", "", false},
	} {
		got, err := normalizeStoreURL(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("normalizeStoreURL(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestFileStoreDirUnescapes(t *testing.T) {
	got, err := fileStoreDir("file:///srv/a%23b%20c")
	if err != nil || got != "/srv/a#b c" {
		t.Errorf("fileStoreDir = %q, %v; want /srv/a#b c", got, err)
	}
}

func FuzzNormalizeStoreURL(f *testing.F) {
	for _, s := range []string{"local", "s3://b/p", "file:///x", "s3://b/../p", "file://h/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := normalizeStoreURL(s)
		if err != nil {
			return
		}
		again, err := normalizeStoreURL(got)
		if err != nil || again != got {
			t.Fatalf("normalizeStoreURL(%q) = %q, which normalizes to %q, %v", s, got, again, err)
		}
		if strings.HasPrefix(got, "file:") {
			if _, err := fileStoreDir(got); err != nil {
				t.Fatalf("normalizeStoreURL(%q) = %q, whose directory cannot be read back: %v", s, got, err)
			}
		}
	})
}

package e2e

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/quic-s/quics/gc"
	"github.com/quic-s/quics/internal/s3test"
	"github.com/quic-s/quics/server"
)

// s3Store starts a real S3-compatible server (Versity Gateway on
// 127.0.0.1) with a bucket, puts its credentials in the environment the
// binaries inherit (never on their command lines), and returns the quics
// run flags that store packs there. Packs are small so that a few MiB of
// content seal and upload many.
func s3Store(t *testing.T, prefix string) (*s3test.Server, []string) {
	t.Helper()
	srv := s3test.Start(t)
	srv.NewBucket(t, "quics")
	t.Setenv("QUICS_S3_ACCESS_KEY", srv.AccessKey)
	t.Setenv("QUICS_S3_SECRET_KEY", srv.SecretKey)
	return srv, []string{"--store", "s3://quics/" + prefix, "--s3-endpoint", srv.Endpoint, "--s3-region", srv.Region,
		"--pack-size", "256KiB", "--store-cache", "4MiB"}
}

func storeStatus(t *testing.T, dataDir string) server.StoreStatus {
	t.Helper()
	var st server.StoreStatus
	out := mustQuics(t, "", "store", "show", "--json", "--data", dataDir)
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("quics store show --json printed %q: %v", out, err)
	}
	return st
}

// bucketPacks counts the pack objects under prefix and their bytes.
func bucketPacks(t *testing.T, srv *s3test.Server, prefix string) (n int, bytes int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for obj := range srv.Client(t).ListObjects(ctx, "quics", minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		if strings.HasSuffix(obj.Key, ".pack") {
			n++
			bytes += obj.Size
		}
	}
	return n, bytes
}

// Sync, retention, gc and check with packs in S3: clients converge, gc
// frees dropped history by deleting and rewriting objects, check is clean.
func TestS3SyncAndGC(t *testing.T) {
	srv, flags := s3Store(t, "gc")
	dataDir := filepath.Join(t.TempDir(), "data")
	runGCFreesDroppedHistory(t, dataDir, func() int64 {
		st := storeStatus(t, dataDir)
		if st.URL != "s3://quics/gc" {
			t.Fatalf("store is %q, want s3://quics/gc", st.URL)
		}
		return st.PackBytes
	}, append([]string{"--views=false"}, flags...)...)

	st := storeStatus(t, dataDir)
	if st.RemotePacks == 0 {
		t.Fatalf("no pack reached the bucket: %+v", st)
	}
	n, _ := bucketPacks(t, srv, "gc")
	if n < st.RemotePacks {
		t.Fatalf("bucket holds %d packs, the index says %d are remote", n, st.RemotePacks)
	}
	if local := packBytes(t, dataDir); local > 2<<20 {
		t.Errorf("%d bytes of packs stay on local disk with an S3 store", local)
	}
	// The index rebuilt from the bucket's packs: nothing lost.
	var cr gc.CheckReport
	out := mustQuics(t, "", "check", "--repair", "--json", "--data", dataDir)
	if err := json.Unmarshal([]byte(out), &cr); err != nil || !cr.OK || cr.Repair == nil || len(cr.Repair.Lost) != 0 {
		t.Fatalf("check --repair on S3: %s %v", out, err)
	}
}

// The crash harness with packs in S3: kill -9 during uploads, pack
// uploads and gc; every acknowledged version survives and check is clean.
func TestCrashS3Store(t *testing.T) {
	srv, flags := s3Store(t, "crash")
	trials := max(crashTrials(t)/2, 3)
	dataDir := runCrashHarness(t, trials, append([]string{"--views=true"}, flags...)...)
	st := storeStatus(t, dataDir)
	n, _ := bucketPacks(t, srv, "crash")
	t.Logf("store after the crashes: %+v; %d pack objects in the bucket", st, n)
	if st.RemotePacks == 0 || n < st.RemotePacks {
		t.Fatalf("packs did not reach the bucket: status %+v, %d objects", st, n)
	}
}

// quics store migrate moves a running installation's packs to S3 and back,
// with the real binaries: refused while the server runs, resumable, and
// clients keep converging at every step.
func TestS3MigrateBinaries(t *testing.T) {
	srv, flags := s3Store(t, "moved")
	dataDir := filepath.Join(t.TempDir(), "data")
	addr, _, proc := startQuicsIn(t, dataDir, "--views=false", "--pack-size", "256KiB")
	a := newQicHome(t, "a")
	a.must("register", "--server", addr, "--password", serverPassword, "--name", "a")
	a.must("root", "add", a.dir, "--root-password", rootPassword, "--name", "docs")
	for i := range 4 {
		a.write(filepath.Join("d", string(rune('a'+i))+".bin"), randomBytes(uint64(300+i), 1<<20), 0o644)
	}
	a.sync()

	to := append([]string{"store", "migrate", "--to", "s3://quics/moved", "--data", dataDir, "--json"}, flags[2:]...)
	if _, errOut, code := quicsCLI(t, "", to...); code != 1 || !strings.Contains(errOut, "stop it first") {
		t.Fatalf("migrate while the server runs: exit %d, %s", code, errOut)
	}
	mustQuics(t, "", "stop", "--data", dataDir)
	<-proc.exited

	// An interrupted migration: the link dies for good after a few
	// requests (every connection reset from then on). The command fails
	// saying how to resume; some packs are already in the bucket.
	proxy := s3test.NewProxy(t, srv.Addr, func(n int) s3test.Fault { return s3test.Fault{Reset: n >= 12} })
	cut := append([]string{"store", "migrate", "--to", "s3://quics/moved", "--data", dataDir, "--s3-endpoint", proxy.Endpoint}, flags[4:]...)
	if _, errOut, code := quicsCLI(t, "", cut...); code != 1 || !strings.Contains(errOut, "again to resume") {
		t.Fatalf("migrate over a dying link: exit %d, %s", code, errOut)
	}
	// (An object whose upload was not confirmed counts here and is sent
	// again by the next run.)
	partial, _ := bucketPacks(t, srv, "moved")
	t.Logf("interrupted migration left %d packs in the bucket", partial)

	var res struct {
		Store      server.StoreStatus `json:"store"`
		MovedPacks int                `json:"moved_packs"`
	}
	out := mustQuics(t, "", to...)
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("migrate --json printed %q: %v", out, err)
	}
	if res.MovedPacks == 0 || res.Store.LocalPacks != 0 || res.Store.URL != "s3://quics/moved" ||
		partial == 0 || res.MovedPacks >= res.Store.RemotePacks {
		t.Fatalf("migrate: %s", out)
	}
	if n, _ := bucketPacks(t, srv, "moved"); n != res.Store.RemotePacks {
		t.Fatalf("bucket holds %d packs, migrate reported %d remote", n, res.Store.RemotePacks)
	}
	if local := packBytes(t, dataDir); local != 0 {
		t.Fatalf("%d bytes of packs left locally after migrating", local)
	}

	// No --store now: store.json says S3; the credentials come from the
	// environment.
	addr, _, proc = startQuicsIn(t, dataDir, "--views=false")
	b := newQicHome(t, "b")
	b.must("register", "--server", addr, "--password", serverPassword, "--name", "b")
	b.must("root", "join", "docs", b.dir, "--root-password", rootPassword)
	b.sync()
	sameTree(t, a.dir, b.dir)
	if st := storeStatus(t, dataDir); st.URL != "s3://quics/moved" {
		t.Fatalf("after restart the store is %+v", st)
	}
	mustQuics(t, "", "stop", "--data", dataDir)
	<-proc.exited

	mustQuics(t, "", "store", "migrate", "--to", "local", "--data", dataDir)
	if n, _ := bucketPacks(t, srv, "moved"); n != 0 {
		t.Fatalf("%d packs left in the bucket after migrating back", n)
	}
	t.Setenv("QUICS_S3_SECRET_KEY", "no longer needed")
	addr, _, _ = startQuicsIn(t, dataDir, "--views=false")
	c := newQicHome(t, "c")
	c.must("register", "--server", addr, "--password", serverPassword, "--name", "c")
	c.must("root", "join", "docs", c.dir, "--root-password", rootPassword)
	c.sync()
	sameTree(t, a.dir, c.dir)
	if st := storeStatus(t, dataDir); st.URL != server.StoreLocal || st.RemotePacks != 0 {
		t.Fatalf("after migrating back: %+v", st)
	}
}

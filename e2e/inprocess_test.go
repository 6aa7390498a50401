package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/server"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// cheapParams keep argon2 out of the test budget.
var cheapParams = secret.Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

const (
	serverPassword = "server-password"
	rootPassword   = "root-password"
)

// testServer is a server running in the test process.
type testServer struct {
	addr        string
	fingerprint string
}

func startServer(t testing.TB) *testServer {
	t.Helper()
	return startServerWithMetrics(t, nil)
}

// startServerWithMetrics is startServer registering the server's metrics
// with reg (none when nil).
func startServerWithMetrics(t testing.TB, reg prometheus.Registerer) *testServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.Open(ctx, server.Options{
		DataDir: filepath.Join(t.TempDir(), "data"), Password: serverPassword, Views: true,
		PasswordParams: cheapParams, TokenParams: cheapParams, SmallFootprint: true, Metrics: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	l, err := syncproto.Listen(ctx, "127.0.0.1:0", srv.TLSConfig(), syncproto.Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = syncproto.NewServer(srv, syncproto.ServerOptions{}).Serve(ctx, l)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return &testServer{addr: l.Addr().String(), fingerprint: srv.Fingerprint()}
}

// device is a client home with one root, synced by the engine in process.
type device struct {
	t    testing.TB
	home *client.Home
	sess *syncproto.Client
	eng  *client.Engine
	dir  string
	root string

	mu       sync.Mutex
	warnings []client.Warning
}

// lastWarning returns the most recent warning the device's engine gave.
func (d *device) lastWarning() client.Warning {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.warnings) == 0 {
		return client.Warning{}
	}
	return d.warnings[len(d.warnings)-1]
}

// newDevice registers a client with ts and opens a session.
func newDevice(t testing.TB, ts *testServer, name string) *device {
	t.Helper()
	ctx := context.Background()
	home, err := client.OpenHome(ctx, filepath.Join(t.TempDir(), name+"-home"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = home.Close() })
	cfg := home.Config()
	resp, fp, err := syncproto.Register(ctx, ts.addr, tlsutil.PinnedClientConfig("", syncproto.ALPN), syncproto.Config{},
		&syncpb.RegisterClientRequest{ClientId: cfg.ClientID.String(), Name: name, ServerPassword: serverPassword})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if fp != ts.fingerprint {
		t.Fatalf("register %s: fingerprint %s, server has %s", name, fp, ts.fingerprint)
	}
	cfg.ServerAddr, cfg.Token, cfg.Fingerprint = ts.addr, resp.GetToken(), fp
	if err := home.SaveConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	sess, err := syncproto.DialSession(ctx, ts.addr, tlsutil.PinnedClientConfig(fp, syncproto.ALPN), syncproto.Config{}, cfg.ClientID.String(), cfg.Token)
	if err != nil {
		t.Fatalf("dial %s: %v", name, err)
	}
	t.Cleanup(func() { _ = sess.Close() })
	d := &device{t: t, home: home, sess: sess, dir: filepath.Join(t.TempDir(), name+"-tree")}
	if err := os.MkdirAll(d.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d.eng = client.NewEngine(home.State(), sess, client.EngineOptions{Warn: func(w client.Warning) {
		d.mu.Lock()
		d.warnings = append(d.warnings, w)
		d.mu.Unlock()
	}})
	return d
}

func (d *device) addRoot(name string) {
	d.t.Helper()
	info, err := d.sess.RegisterRoot(context.Background(), name, rootPassword)
	if err != nil {
		d.t.Fatal(err)
	}
	d.putRoot(name, info)
}

func (d *device) joinRoot(name string) {
	d.t.Helper()
	info, err := d.sess.JoinRoot(context.Background(), name, rootPassword)
	if err != nil {
		d.t.Fatal(err)
	}
	d.putRoot(name, info)
}

func (d *device) putRoot(name string, info *syncpb.RootInfo) {
	d.t.Helper()
	c := info.GetChunking()
	r := client.Root{Name: name, Dir: d.dir}
	r.Chunking.Min, r.Chunking.Avg, r.Chunking.Max = int(c.GetMin()), int(c.GetAvg()), int(c.GetMax())
	if err := d.home.State().PutRoot(context.Background(), r); err != nil {
		d.t.Fatal(err)
	}
	d.root = name
}

// sync runs one pass and fails the test on an error.
func (d *device) sync() client.PassResult {
	d.t.Helper()
	res, err := d.eng.SyncRoot(context.Background(), d.root)
	if err != nil {
		d.t.Fatalf("sync: %v", err)
	}
	return res
}

func (d *device) write(rel string, data []byte, mode fs.FileMode) {
	d.t.Helper()
	writeFile(d.t, filepath.Join(d.dir, filepath.FromSlash(rel)), data, mode)
}

func writeFile(t testing.TB, name string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
}

// entry is what a tree comparison looks at for one file.
type entry struct {
	Hash string
	Mode fs.FileMode
}

// treeOf returns every regular file under dir by slash path.
func treeOf(t testing.TB, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = entry{Hash: cas.Sum(data).String(), Mode: fi.Mode().Perm()}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t testing.TB, a, b string) {
	t.Helper()
	if diff := cmp.Diff(treeOf(t, a), treeOf(t, b)); diff != "" {
		t.Fatalf("trees differ (-%s +%s):\n%s", a, b, diff)
	}
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// mixedTree writes nested directories, an empty file, names with spaces
// and unicode, and files of a few chunks.
func mixedTree(d *device) {
	d.write("readme.txt", []byte("hello quics\n"), 0o644)
	d.write("empty", nil, 0o644)
	d.write("dir with spaces/file name.txt", []byte("spaces"), 0o600)
	d.write("unicodé/ñame-日本.bin", randomBytes(1, 3000), 0o644)
	d.write("a/b/c/d/deep.dat", randomBytes(2, 300<<10), 0o644)
	d.write("bin/tool.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	d.write("big.bin", randomBytes(3, 1<<20), 0o644)
}

func TestInProcessSyncTwoDevices(t *testing.T) {
	ts := startServer(t)
	a := newDevice(t, ts, "laptop")
	b := newDevice(t, ts, "desktop")
	a.addRoot("docs")
	b.joinRoot("docs")

	mixedTree(a)
	res := a.sync()
	if res.FilesUploaded != 7 || res.ChunksSent == 0 || res.BytesSent == 0 {
		t.Fatalf("first upload: %+v", res.Stats)
	}
	res = b.sync()
	if res.FilesDownloaded != 7 || res.BytesReceived == 0 {
		t.Fatalf("first download: %+v", res.Stats)
	}
	sameTree(t, a.dir, b.dir)

	// A second pass on both sides has nothing to do.
	if res := a.sync(); res.FilesUploaded+res.FilesDownloaded+res.ChunksSent != 0 {
		t.Fatalf("idle pass on a: %+v", res.Stats)
	}
	if res := b.sync(); res.FilesUploaded+res.FilesDownloaded+res.ChunksSent != 0 {
		t.Fatalf("idle pass on b: %+v", res.Stats)
	}

	t.Run("edits propagate", func(t *testing.T) {
		big := randomBytes(3, 1<<20)
		a.write("readme.txt", []byte("hello quics, edited\n"), 0o644)                   // edit
		a.write("big.bin", append(bytes.Clone(big), []byte("appended tail")...), 0o644) // append
		a.write("a/b/c/d/deep.dat", randomBytes(2, 100<<10), 0o644)                     // truncate
		if err := os.Remove(filepath.Join(a.dir, "empty")); err != nil {                // delete
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(a.dir, "dir with spaces/file name.txt"), 0o644); err != nil { // mode
			t.Fatal(err)
		}
		res := a.sync()
		if res.FilesUploaded != 4 || res.FilesDeleted != 1 {
			t.Fatalf("a: %+v", res.Stats)
		}
		if res.ChunksSent > 6 {
			t.Fatalf("a sent %d chunks for small edits", res.ChunksSent)
		}
		res = b.sync()
		if res.FilesDownloaded != 4 || res.FilesDeleted != 1 {
			t.Fatalf("b: %+v", res.Stats)
		}
		sameTree(t, a.dir, b.dir)
	})

	t.Run("rename and copy cost no chunks", func(t *testing.T) {
		if err := os.MkdirAll(filepath.Join(a.dir, "moved"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(a.dir, "big.bin"), filepath.Join(a.dir, "moved/big renamed.bin")); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(a.dir, "unicodé/ñame-日本.bin"))
		if err != nil {
			t.Fatal(err)
		}
		a.write("copy.bin", data, 0o644)
		res := a.sync()
		if res.ChunksSent != 0 || res.FilesUploaded != 2 || res.FilesDeleted != 1 {
			t.Fatalf("a: %+v", res.Stats)
		}
		res = b.sync()
		if res.ChunksFetched != 0 || res.FilesDownloaded != 2 || res.FilesDeleted != 1 {
			t.Fatalf("b fetched chunks for a rename and a copy: %+v", res.Stats)
		}
		sameTree(t, a.dir, b.dir)
	})

	t.Run("conflict keeps both", func(t *testing.T) {
		a.write("readme.txt", []byte("a's version\n"), 0o644)
		b.write("readme.txt", []byte("b's version\n"), 0o644)
		if res := a.sync(); res.FilesUploaded != 1 || res.Conflicts != 0 {
			t.Fatalf("a: %+v", res.Stats)
		}
		res := b.sync()
		if res.Conflicts != 1 || len(res.ConflictList) != 1 || res.ConflictList[0].Path != "readme.txt" {
			t.Fatalf("b: %+v", res)
		}
		got, err := os.ReadFile(filepath.Join(b.dir, "readme.txt"))
		if err != nil || string(got) != "b's version\n" {
			t.Fatalf("b's local edit was overwritten: %q, %v", got, err)
		}
		// Still pending: the next pass reports it again.
		if res := b.sync(); res.Conflicts != 1 {
			t.Fatalf("b again: %+v", res.Stats)
		}
	})
}

func TestInProcessLargeFileInsertSendsFewChunks(t *testing.T) {
	ts := startServer(t)
	a := newDevice(t, ts, "a")
	b := newDevice(t, ts, "b")
	a.addRoot("big")
	b.joinRoot("big")
	size := 16 << 20
	if !testing.Short() {
		size = 32 << 20
	}
	data := randomBytes(7, size)
	a.write("large.bin", data, 0o644)
	a.sync()
	b.sync()

	edited := append(append(bytes.Clone(data[:size/2]), randomBytes(8, 100)...), data[size/2:]...)
	a.write("large.bin", edited, 0o644)
	res := a.sync()
	if res.ChunksSent < 1 || res.ChunksSent >= 5 {
		t.Fatalf("a 100-byte insert sent %d chunks: %+v", res.ChunksSent, res.Stats)
	}
	res = b.sync()
	if res.ChunksFetched >= 5 || res.ChunksReused == 0 {
		t.Fatalf("b fetched %d chunks, reused %d", res.ChunksFetched, res.ChunksReused)
	}
	sameTree(t, a.dir, b.dir)

	// A duplicate of the large file sends nothing.
	a.write("dup.bin", edited, 0o644)
	if res := a.sync(); res.ChunksSent != 0 || res.FilesUploaded != 1 {
		t.Fatalf("duplicate: %+v", res.Stats)
	}
}

func TestInProcessRunPropagates(t *testing.T) {
	ts := startServer(t)
	a := newDevice(t, ts, "a")
	b := newDevice(t, ts, "b")
	a.addRoot("live")
	b.joinRoot("live")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- client.Run(ctx, b.home.State(), client.RunOptions{
			Dial:   func(context.Context) (client.Session, error) { return b.sess, nil },
			Engine: client.EngineOptions{Warn: func(client.Warning) {}},
		})
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("run did not stop")
		}
	}()
	for i := range 5 {
		content := randomBytes(uint64(100+i), 5000)
		a.write("note.txt", content, 0o644)
		a.sync()
		want := cas.Sum(content)
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := os.ReadFile(filepath.Join(b.dir, "note.txt"))
			if err == nil && cas.Sum(got) == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("edit %d did not reach b within 10 s", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// BenchmarkInProcessSync measures a pass that uploads one new 8 MiB file
// of random content, and the pass on a second device that downloads it,
// over real QUIC on loopback.
func BenchmarkInProcessSync(b *testing.B) {
	const size = 8 << 20
	ts := startServer(b)
	up := newDevice(b, ts, "up")
	down := newDevice(b, ts, "down")
	up.addRoot("bench")
	down.joinRoot("bench")
	b.SetBytes(size)
	seed := uint64(0)
	for b.Loop() {
		seed++
		b.StopTimer()
		up.write(fmt.Sprintf("f%d.bin", seed), randomBytes(seed, size), 0o644)
		b.StartTimer()
		if res := up.sync(); res.FilesUploaded != 1 {
			b.Fatalf("upload: %+v", res.Stats)
		}
		if res := down.sync(); res.FilesDownloaded != 1 {
			b.Fatalf("download: %+v", res.Stats)
		}
	}
}

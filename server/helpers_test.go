package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// cheapParams keep argon2 out of the test budget; internal/secret tests the
// real parameters.
var cheapParams = secret.Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

const testPassword = "server-password"

// fakeClock advances one second per reading, so stamps are distinct.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

func testOptions(dir string) Options {
	clock := &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	return Options{
		DataDir: dir, Password: testPassword, Views: true, Clock: clock.Now,
		PasswordParams: cheapParams, TokenParams: cheapParams, SmallFootprint: true,
	}
}

type env struct {
	srv  *Server
	dir  string
	opts Options
}

// newEnv opens a server on a data directory inside a temp dir (so tests
// can check nothing is written next to it).
func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvWith(t, testOptions(filepath.Join(t.TempDir(), "data")))
}

func newEnvWith(t testing.TB, opts Options) *env {
	t.Helper()
	srv, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{srv: srv, dir: opts.DataDir, opts: opts}
	t.Cleanup(func() {
		if err := e.srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return e
}

// reopen closes the server and opens the same data directory with opts.
func (e *env) reopen(t testing.TB, opts Options) {
	t.Helper()
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	srv, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.opts = srv, opts
}

var testAddr = net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.7:50000"))

// client registers a device and opens a session for it.
func (e *env) client(t testing.TB, name string) *syncproto.Session {
	t.Helper()
	ctx := context.Background()
	id := uuid.New()
	resp, err := e.srv.RegisterClient(ctx, testAddr, &syncpb.RegisterClientRequest{ClientId: id.String(), Name: name, ServerPassword: testPassword})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	sess, err := e.srv.Authenticate(ctx, testAddr, &syncpb.AuthRequest{ClientId: id.String(), Token: resp.GetToken()})
	if err != nil {
		t.Fatalf("authenticate %s: %v", name, err)
	}
	return sess
}

func rootPassword(name string) string { return "pw-" + name }

func (e *env) root(t testing.TB, sess *syncproto.Session, name string) *syncpb.RootInfo {
	t.Helper()
	info, err := e.srv.RegisterRoot(context.Background(), sess, &syncpb.RegisterRootRequest{Name: name, RootPassword: rootPassword(name)})
	if err != nil {
		t.Fatalf("register root %q: %v", name, err)
	}
	return info
}

func (e *env) join(t testing.TB, sess *syncproto.Session, name string) {
	t.Helper()
	if _, err := e.srv.JoinRoot(context.Background(), sess, &syncpb.JoinRootRequest{Name: name, RootPassword: rootPassword(name)}); err != nil {
		t.Fatalf("join root %q: %v", name, err)
	}
}

// file is content chunked as a client would.
type file struct {
	data   []byte
	hash   cas.ID
	refs   []syncproto.ChunkRef
	chunks map[cas.ID][]byte
}

func newFile(t testing.TB, data []byte) file {
	t.Helper()
	f := file{data: data, hash: cas.Sum(data), chunks: make(map[cas.ID][]byte)}
	c, err := chunker.New(bytes.NewReader(data), chunker.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	for {
		ch, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		id := cas.Sum(ch.Data)
		f.refs = append(f.refs, syncproto.ChunkRef{ID: id, Size: uint32(ch.Length)})
		f.chunks[id] = bytes.Clone(ch.Data)
	}
	return f
}

// randomData is n bytes, half random and half repetitive so that some
// chunks compress and some do not.
func randomData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		if (i/4096)%2 == 0 {
			b[i] = byte(rng.Uint32())
		} else {
			b[i] = byte(i / 7)
		}
	}
	return b
}

// wire is chunk id of f as a client sends it: compressed when that helps.
func (f file) wire(id cas.ID) (syncproto.Chunk, error) {
	st, err := cas.Compress(f.chunks[id])
	if err != nil {
		return syncproto.Chunk{}, err
	}
	return syncproto.Chunk{Codec: syncproto.ChunkCodec(st.Codec), ID: id, RawLen: st.RawLen, Data: st.Data}, nil
}

// missing is what a client uploads of f when the server answered present
// for its chunk list: each absent chunk once, in list order.
func (f file) missing(present []bool) ([]syncproto.Chunk, error) {
	var send []syncproto.Chunk
	seen := cas.NewIDSet()
	for i, ok := range present {
		id := f.refs[i].ID
		if ok || seen.Has(id) {
			continue
		}
		seen.Insert(id)
		c, err := f.wire(id)
		if err != nil {
			return nil, err
		}
		send = append(send, c)
	}
	return send, nil
}

func (f file) ids() []cas.ID {
	ids := make([]cas.ID, len(f.refs))
	for i, r := range f.refs {
		ids[i] = r.ID
	}
	return ids
}

// upload sends the chunks the server lacks, as a client does.
func (e *env) upload(t testing.TB, sess *syncproto.Session, root string, f file) (sent int) {
	t.Helper()
	sent, err := e.tryUpload(sess, root, f)
	if err != nil {
		t.Fatal(err)
	}
	return sent
}

// tryUpload is upload for goroutines other than the test's.
func (e *env) tryUpload(sess *syncproto.Session, root string, f file) (sent int, err error) {
	ctx := context.Background()
	ids := f.ids()
	if len(ids) == 0 {
		return 0, nil
	}
	present, err := e.srv.HaveChunks(ctx, sess, root, ids)
	if err != nil {
		return 0, fmt.Errorf("have chunks: %w", err)
	}
	send, err := f.missing(present)
	if err != nil {
		return 0, err
	}
	if err := e.srv.PutChunks(ctx, sess, root, chunkSource(send)); err != nil {
		return 0, fmt.Errorf("put chunks: %w", err)
	}
	return len(send), nil
}

func chunkSource(chunks []syncproto.Chunk) func() (syncproto.Chunk, error) {
	i := 0
	return func() (syncproto.Chunk, error) {
		if i == len(chunks) {
			return syncproto.Chunk{}, io.EOF
		}
		i++
		return chunks[i-1], nil
	}
}

// request builds a ProposeRequest for f on top of base (nil: a new file).
func request(root, path string, base *syncpb.FileHead, f file) *syncpb.ProposeRequest {
	req := &syncpb.ProposeRequest{
		Root: root, Path: path, Hash: f.hash[:], Size: int64(len(f.data)), Mode: 0o644,
		Mtime: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(), ChunkCount: uint32(len(f.refs)),
	}
	if base != nil {
		req.BaseSeq, req.BaseHash = base.GetSeq(), base.GetHash()
	}
	return req
}

func deleteRequest(root, path string, base *syncpb.FileHead) *syncpb.ProposeRequest {
	return &syncpb.ProposeRequest{Root: root, Path: path, BaseSeq: base.GetSeq(), BaseHash: base.GetHash(), Deleted: true}
}

// push uploads f and proposes it; it may run on any goroutine.
func (e *env) push(sess *syncproto.Session, root, path string, base *syncpb.FileHead, f file) (*syncpb.CommitResponse, error) {
	if _, err := e.tryUpload(sess, root, f); err != nil {
		return nil, err
	}
	return e.srv.Propose(context.Background(), sess, request(root, path, base, f), f.refs)
}

func (e *env) mustPush(t testing.TB, sess *syncproto.Session, root, path string, base *syncpb.FileHead, f file) *syncpb.FileHead {
	t.Helper()
	resp, err := e.push(sess, root, path, base, f)
	if err != nil {
		t.Fatalf("push %q: %v", path, err)
	}
	if resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		t.Fatalf("push %q: outcome %v, want committed", path, resp.GetOutcome())
	}
	return resp.GetHead()
}

// download fetches a version as a client does and returns its bytes.
func (e *env) download(t testing.TB, sess *syncproto.Session, root, path string, hash []byte) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	size, refs, err := e.srv.ChunkList(ctx, sess, &syncpb.ChunkListRequest{Root: root, Path: path, Hash: hash})
	if err != nil {
		return nil, err
	}
	ids := make([]cas.ID, len(refs))
	for i, r := range refs {
		ids[i] = r.ID
	}
	var out []byte
	for start := 0; start < len(ids); start += syncproto.MaxGetChunksIDs {
		batch := ids[start:min(start+syncproto.MaxGetChunksIDs, len(ids))]
		err := e.srv.GetChunks(ctx, sess, root, batch, func(c syncproto.Chunk) error {
			data, err := cas.Stored{Codec: cas.Codec(c.Codec), Data: c.Data, RawLen: c.RawLen}.Decode(c.ID)
			if err != nil {
				return err
			}
			out = append(out, data...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if int64(len(out)) != size {
		return nil, errors.New("downloaded size differs from the chunk list's")
	}
	return out, nil
}

// heads collects Heads(after) and the returned root seq.
func (e *env) heads(t testing.TB, sess *syncproto.Session, root string, after uint64) (map[string]*syncpb.FileHead, uint64, [][]*syncpb.FileHead) {
	t.Helper()
	out := make(map[string]*syncpb.FileHead)
	var parts [][]*syncpb.FileHead
	seq, err := e.srv.Heads(context.Background(), sess, &syncpb.HeadsRequest{Root: root, AfterSeq: after}, func(hs []*syncpb.FileHead) error {
		parts = append(parts, hs)
		for _, h := range hs {
			out[h.GetPath()] = h
		}
		return nil
	})
	if err != nil {
		t.Fatalf("heads of %q after %d: %v", root, after, err)
	}
	return out, seq, parts
}

// watcher runs Watch in the background and collects its notices.
type watcher struct {
	mu      sync.Mutex
	notices []*syncpb.Notice
	got     chan struct{}
	done    chan error
	cancel  context.CancelFunc
}

func (e *env) watch(t testing.TB, sess *syncproto.Session, req *syncpb.WatchRequest) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{got: make(chan struct{}, 1), done: make(chan error, 1), cancel: cancel}
	go func() {
		w.done <- e.srv.Watch(ctx, sess, req, func(n *syncpb.Notice) error {
			w.mu.Lock()
			w.notices = append(w.notices, n)
			w.mu.Unlock()
			select {
			case w.got <- struct{}{}:
			default:
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-w.done; err != nil {
			t.Errorf("watch ended with %v", err)
		}
	})
	return w
}

// waitFor returns the notices once pred accepts them, failing after a
// generous timeout (the broker delivers in microseconds).
func (w *watcher) waitFor(t testing.TB, what string, pred func([]*syncpb.Notice) bool) []*syncpb.Notice {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		w.mu.Lock()
		ns := append([]*syncpb.Notice(nil), w.notices...)
		w.mu.Unlock()
		if pred(ns) {
			return ns
		}
		select {
		case <-w.got:
		case err := <-w.done:
			t.Fatalf("watch ended (%v) before %s; got %v", err, what, ns)
		case <-timeout:
			t.Fatalf("no %s after 10s; got %v", what, ns)
		}
	}
}

// subscribed waits until the broker has n subscribers on the root: the
// watch goroutine is past its catch-up and will see every publish.
func (e *env) subscribed(t testing.TB, root string, n int) {
	t.Helper()
	r, err := e.srv.db.RootByName(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.srv.broker.mu.Lock()
		got := len(e.srv.broker.roots[r.ID])
		e.srv.broker.mu.Unlock()
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("root %q has %d watchers, want %d", root, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func hasNotice(kind syncpb.Notice_Kind, path string) func([]*syncpb.Notice) bool {
	return func(ns []*syncpb.Notice) bool {
		for _, n := range ns {
			if n.GetKind() == kind && n.GetHead().GetPath() == path {
				return true
			}
		}
		return false
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

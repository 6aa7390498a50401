package manifest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/kv"
	"github.com/quic-s/quics/internal/secret"
)

// cheapParams keep argon2 out of the test budget; the defaults are
// exercised by internal/secret.
var cheapParams = secret.Params{Time: 1, MemoryKiB: 64, Threads: 1, SaltLen: 16, KeyLen: 32}

var testChunking = ChunkParams{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}

// fakeClock advances one second per reading, so every stamp is distinct
// and predictable.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
	return c.t
}

type testEnv struct {
	db    *DB
	kv    *badger.DB
	dir   string
	clock *fakeClock
}

func testOptions(clock *fakeClock) Options {
	return Options{Clock: clock.Now, PasswordParams: cheapParams, TokenParams: cheapParams}
}

// newEnv opens a manifest on a real badger database in a temp dir.
func newEnv(t testing.TB) *testEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := kv.Open(dir, kv.Options{SmallFootprint: true})
	if err != nil {
		t.Fatal(err)
	}
	e := &testEnv{kv: store, dir: dir, clock: newFakeClock()}
	t.Cleanup(func() {
		if e.kv != nil {
			if err := e.kv.Close(); err != nil {
				t.Errorf("close badger: %v", err)
			}
		}
	})
	e.db, err = Open(context.Background(), store, testOptions(e.clock))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// reopen closes badger and opens the same directory again.
func (e *testEnv) reopen(t testing.TB) {
	t.Helper()
	if err := e.kv.Close(); err != nil {
		t.Fatal(err)
	}
	e.kv = nil
	store, err := kv.Open(e.dir, kv.Options{SmallFootprint: true})
	if err != nil {
		t.Fatal(err)
	}
	e.kv = store
	e.db, err = Open(context.Background(), store, testOptions(e.clock))
	if err != nil {
		t.Fatal(err)
	}
}

func (e *testEnv) client(t testing.TB, name string) Client {
	t.Helper()
	c, err := e.db.RegisterClient(context.Background(), NewClient{ID: uuid.New(), Name: name, Token: "token-" + name, Address: "192.0.2.1:6122"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (e *testEnv) root(t testing.TB, name string, owner Client) Root {
	t.Helper()
	r, err := e.db.CreateRoot(context.Background(), NewRoot{Name: name, Owner: owner.ID, Password: "pw-" + name, Chunking: testChunking})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// content is a fake file content: its hash and a one-chunk list.
type content struct {
	hash   cas.ID
	size   uint64
	chunks []Chunk
}

func newContent(s string) content {
	return content{hash: cas.Sum([]byte(s)), size: uint64(len(s)), chunks: []Chunk{{ID: cas.Sum([]byte("chunk:" + s)), Size: uint32(len(s))}}}
}

// proposal proposes c on top of base (nil for a new file).
func proposal(root RootID, path string, base *Version, c content, client uuid.UUID) Proposal {
	p := Proposal{Root: root, Path: path, Hash: c.hash, Size: c.size, Mode: 0o644, Client: client, Chunks: c.chunks,
		MTime: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC)}
	if base != nil {
		p.BaseSeq, p.BaseHash = base.Seq, base.Hash
	}
	return p
}

func deletion(root RootID, path string, base Version, client uuid.UUID) Proposal {
	return Proposal{Root: root, Path: path, BaseSeq: base.Seq, BaseHash: base.Hash, Deleted: true, Client: client}
}

func mustCommit(t testing.TB, db *DB, p Proposal) Version {
	t.Helper()
	v, err := db.Commit(context.Background(), p)
	if err != nil {
		t.Fatalf("commit %q: %v", p.Path, err)
	}
	return v
}

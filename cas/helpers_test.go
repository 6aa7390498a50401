package cas

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/quic-s/quics/internal/kv"
)

// env is a store directory with its badger database, reopenable.
type env struct {
	t    *testing.T
	root string
	dir  string // the store directory
	db   *badger.DB
	opts Options
}

func newEnv(t *testing.T, opts Options) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{t: t, root: root, dir: filepath.Join(root, "cas"), opts: opts}
	e.db = openDB(t, filepath.Join(root, "db"))
	return e
}

func openDB(t *testing.T, dir string) *badger.DB {
	t.Helper()
	db, err := kv.Open(dir, kv.Options{SmallFootprint: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// open opens the store; the test's cleanup closes it.
func (e *env) open() (*Store, OpenReport) {
	e.t.Helper()
	s, rep, err := Open(context.Background(), e.dir, e.db, e.opts)
	if err != nil {
		e.t.Fatalf("Open: %v", err)
	}
	e.t.Cleanup(func() { _ = s.Close() })
	return s, rep
}

// freshDB replaces the database with a new, empty one, as if it was lost.
func (e *env) freshDB(name string) {
	e.db = openDB(e.t, filepath.Join(e.root, name))
}

type chunk struct {
	id   ID
	data []byte
}

func randomChunk(rng *rand.Rand, n int) chunk {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return chunk{Sum(b), b}
}

func textChunk(rng *rand.Rand, n int) chunk {
	words := []string{"pack", "chunk", "index", "store", "quic", "sync", "file", "badger", "record", "hash"}
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(words[rng.IntN(len(words))])
		sb.WriteByte(' ')
	}
	b := []byte(sb.String()[:n])
	return chunk{Sum(b), b}
}

func putAll(t *testing.T, s *Store, chunks ...chunk) {
	t.Helper()
	for _, c := range chunks {
		if _, err := s.Put(context.Background(), c.id, c.data); err != nil {
			t.Fatalf("Put %s: %v", c.id.Short(), err)
		}
	}
}

func syncStore(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func wantChunk(t *testing.T, s *Store, c chunk) {
	t.Helper()
	got, err := s.Get(context.Background(), c.id)
	if err != nil {
		t.Fatalf("Get %s: %v", c.id.Short(), err)
	}
	if !bytes.Equal(got, c.data) {
		t.Fatalf("Get %s returned different bytes", c.id.Short())
	}
}

func wantGetErr(t *testing.T, s *Store, id ID, targets ...error) {
	t.Helper()
	_, err := s.Get(context.Background(), id)
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	t.Fatalf("Get %s: err = %v, want one of %v", id.Short(), err, targets)
}

func stat(t *testing.T, s *Store, id ID) ChunkInfo {
	t.Helper()
	info, err := s.Stat(context.Background(), id)
	if err != nil {
		t.Fatalf("Stat %s: %v", id.Short(), err)
	}
	return info
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// patchFile overwrites bytes of a file at off.
func patchFile(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if err := readFull(f, b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

func problemsOf(rep CheckReport, kind ProblemKind) []Problem {
	var out []Problem
	for _, p := range rep.Problems {
		if p.Kind == kind {
			out = append(out, p)
		}
	}
	return out
}

package cas_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/cas/castest"
	"github.com/quic-s/quics/internal/kv"
)

// localStore is a Store together with the database it owns, so Reopen can
// open the same database again.
type localStore struct {
	*cas.Store
	db      *badger.DB
	root    string
	backend cas.Backend
}

func (s *localStore) Close() error {
	err := s.Store.Close()
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	return err
}

const (
	testPackSize     = 16 << 10
	testMaxChunkSize = 256 << 10
)

func openLocal(t *testing.T, root string) *localStore {
	return openWith(t, root, nil)
}

// openWith opens a store whose sealed packs go to backend (nil: local).
func openWith(t *testing.T, root string, backend cas.Backend) *localStore {
	t.Helper()
	db, err := kv.Open(filepath.Join(root, "db"), kv.Options{SmallFootprint: true})
	if err != nil {
		t.Fatal(err)
	}
	s, rep, err := cas.Open(context.Background(), filepath.Join(root, "cas"), db,
		cas.Options{PackSize: testPackSize, MaxChunkSize: testMaxChunkSize, Backend: backend})
	if err != nil {
		_ = db.Close()
		t.Fatal(err)
	}
	if !rep.Clean() {
		t.Errorf("Open of a cleanly closed store reports %+v", rep)
	}
	ls := &localStore{Store: s, db: db, root: root, backend: backend}
	t.Cleanup(func() { _ = ls.Close() })
	return ls
}

func TestConformance(t *testing.T) {
	castest.RunConformance(t, castest.Harness{
		Open: func(t *testing.T) castest.Store { return openLocal(t, t.TempDir()) },
		Reopen: func(t *testing.T, s castest.Store) castest.Store {
			ls := s.(*localStore)
			if err := ls.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openLocal(t, ls.root)
		},
		PackSize:     testPackSize,
		MaxChunkSize: testMaxChunkSize,
	})
}

// TestConformanceDirBackend runs the suite with sealed packs moved to a
// DirBackend. Reopen first uploads every pack, so the reopened store
// serves all its chunks from the backend.
func TestConformanceDirBackend(t *testing.T) {
	runBackendConformance(t, func(t *testing.T) cas.Backend { return cas.DirBackend{Dir: t.TempDir()} })
}

func runBackendConformance(t *testing.T, newBackend func(t *testing.T) cas.Backend) {
	castest.RunConformance(t, castest.Harness{
		Open: func(t *testing.T) castest.Store { return openWith(t, t.TempDir(), newBackend(t)) },
		Reopen: func(t *testing.T, s castest.Store) castest.Store {
			ls := s.(*localStore)
			if _, err := ls.UploadAll(context.Background()); err != nil {
				t.Fatalf("UploadAll: %v", err)
			}
			if err := ls.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openWith(t, ls.root, ls.backend)
		},
		PackSize:     testPackSize,
		MaxChunkSize: testMaxChunkSize,
	})
}

// Package kv opens the badger database that holds all of quics' metadata:
// the chunk index of package cas and the manifests of package manifest share
// one database so that a commit can check chunk existence and write a
// version in the same transaction.
package kv

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/ristretto/v2/z"
)

// Options tune Open. The zero value is what the server uses.
type Options struct {
	// Logger receives badger's own warnings and errors; nil discards them.
	Logger *slog.Logger
	// SmallFootprint shrinks caches and memtables, for tests that open many
	// databases at once.
	SmallFootprint bool
	// NoSync leaves a commit in the OS's page cache instead of waiting for
	// stable storage: a killed process loses nothing, a power failure may
	// lose the last commits. For state that can be rebuilt by asking the
	// server again (a client's), never for the server's.
	NoSync bool
}

// Open opens (creating if needed) the badger database in dir.
//
// Writes are synchronous unless opts.NoSync: a committed transaction is on
// stable storage when Commit returns, because an acknowledged version must
// survive a crash.
func Open(dir string, opts Options) (*badger.DB, error) {
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(!opts.NoSync).
		WithLogger(slogAdapter{opts.Logger}).
		WithMetricsEnabled(false).
		// Badger's defaults (64 MiB memtables, five of them, a 256 MiB
		// block cache) are sized for a database that is the whole
		// service; here it holds metadata only, and a memtable's arena is
		// live heap that the GC goal doubles. 16 MiB memtables cut the
		// server's peak RSS during a 512 MiB upload from 142 to 82 MiB.
		// Big values (chunk lists) go to the value log, not the memtable.
		WithMemTableSize(16 << 20).
		WithNumMemtables(3).
		WithBlockCacheSize(64 << 20)
	if opts.SmallFootprint {
		bo = bo.WithMemTableSize(8 << 20).
			WithBlockCacheSize(8 << 20).
			WithIndexCacheSize(8 << 20).
			WithValueLogFileSize(64 << 20).
			WithNumMemtables(2).
			WithNumLevelZeroTables(2).
			WithNumLevelZeroTablesStall(4)
	}
	db, err := badger.Open(bo)
	if err != nil && strings.Contains(err.Error(), z.NewFile.Error()) {
		// A crash between the creation of a memtable's log file and its
		// first write leaves the file empty, and badger (v4.9.6, issue
		// 2207) fails to open such a directory: the attempt gives the file
		// its size and stops with the "new file" sentinel, flattened into
		// text. The file holds nothing; a second attempt reads it as the
		// empty memtable it is.
		db, err = badger.Open(bo)
	}
	if err != nil {
		return nil, fmt.Errorf("open badger at %s: %w", dir, err)
	}
	return db, nil
}

// slogAdapter routes badger's printf-style logger into slog. Badger's info
// and debug chatter is dropped: it is noise for an operator.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Errorf(format string, args ...any) {
	if a.l != nil {
		a.l.Error(fmt.Sprintf(format, args...), "component", "badger")
	}
}

func (a slogAdapter) Warningf(format string, args ...any) {
	if a.l != nil {
		a.l.Warn(fmt.Sprintf(format, args...), "component", "badger")
	}
}

func (slogAdapter) Infof(string, ...any)  {}
func (slogAdapter) Debugf(string, ...any) {}

package manifest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/internal/secret"
)

// Errors returned by this package. Each is wrapped with the root, path, id
// or key it concerns.
var (
	// ErrNotFound: no such client, root, file, version, conflict or chunk list.
	ErrNotFound = errors.New("manifest: not found")
	// ErrExists: the client id, root name or membership is already taken.
	ErrExists = errors.New("manifest: already exists")
	// ErrInvalid: the caller passed something the schema cannot hold (an
	// empty path, a path with NUL, inconsistent chunk sizes, ...).
	ErrInvalid = errors.New("manifest: invalid argument")
	// ErrCorrupt: a stored key or record does not decode.
	ErrCorrupt = errors.New("manifest: corrupt record")
	// ErrSchemaVersion: the database was written with a schema this code
	// does not know.
	ErrSchemaVersion = errors.New("manifest: unsupported schema version")
	// ErrHeadChanged is the compare-and-swap failure of Commit: the
	// proposal's base is not the file's current head. The error is a
	// *HeadChangedError carrying that head. It is named apart from badger's
	// ErrConflict (a transaction collision, retried inside this package)
	// and from the conflicts of Conflict (candidates stored for a user).
	ErrHeadChanged = errors.New("manifest: head changed since base")
	// ErrConflictChanged: a commit that resolves a conflict
	// (Proposal.Conflict) found the stored conflict different from the
	// one the caller decided on, or gone.
	ErrConflictChanged = errors.New("manifest: conflict changed since read")
	// ErrMissingChunkList: a commit names a content hash that has no
	// stored chunk list and brings none.
	ErrMissingChunkList = errors.New("manifest: missing chunk list")
	// ErrAmbiguous: a hash prefix matches versions of several contents.
	ErrAmbiguous = errors.New("manifest: ambiguous hash prefix")
	// ErrBadCredentials: a token or password does not match.
	ErrBadCredentials = errors.New("manifest: bad credentials")
	// ErrContention: a write lost to concurrent transactions more than
	// maxAttempts times in a row; the caller may try again later.
	ErrContention = errors.New("manifest: too much contention")
)

// Options configure a DB. The zero value is what the server uses.
type Options struct {
	// Clock stamps registration, commit and conflict times; nil means
	// time.Now. Tests inject a fake.
	Clock func() time.Time
	// PasswordParams hash root passwords; zero means
	// secret.PasswordParams. Tests pass cheap parameters.
	PasswordParams secret.Params
	// TokenParams hash client tokens; zero means secret.TokenParams.
	TokenParams secret.Params
}

// DB is the manifest: a schema and its operations on a badger database
// that it shares with package cas. It does not own the badger handle: the
// caller closes it after it stops using the DB. A DB is safe for concurrent
// use.
type DB struct {
	kv             *badger.DB
	now            func() time.Time
	passwordParams secret.Params
	tokenParams    secret.Params

	// queues group concurrent commits per root (see Commit). An entry
	// stays for the life of the DB: one small struct per root.
	queuesMu sync.Mutex
	queues   map[RootID]*commitQueue

	// rootsGen counts committed changes to roots' records other than
	// their seq (creation, removal, retention) and to memberships, so
	// that a cache of root lookups and membership checks can tell it is
	// still current (RootsGeneration).
	rootsGen atomic.Uint64
}

// RootsGeneration changes after every committed change to a root's record
// (other than its seq, which every commit moves) or to a membership. A
// caller that read it before looking a root or a membership up may reuse
// what it found for as long as it has not changed.
func (db *DB) RootsGeneration() uint64 { return db.rootsGen.Load() }

// rootsChanged is deferred by every writer that RootsGeneration covers:
// it runs after the transaction committed (or failed, which costs a
// cache refresh and nothing else).
func (db *DB) rootsChanged() { db.rootsGen.Add(1) }

// Open checks (or, on a fresh database, writes) the schema version and
// returns the manifest stored in kv.
func Open(ctx context.Context, kv *badger.DB, opts Options) (*DB, error) {
	db := &DB{
		kv: kv, now: opts.Clock, passwordParams: opts.PasswordParams, tokenParams: opts.TokenParams,
		queues: make(map[RootID]*commitQueue),
	}
	if db.now == nil {
		db.now = time.Now
	}
	if db.passwordParams == (secret.Params{}) {
		db.passwordParams = secret.PasswordParams
	}
	if db.tokenParams == (secret.Params{}) {
		db.tokenParams = secret.TokenParams
	}
	for _, p := range []secret.Params{db.passwordParams, db.tokenParams} {
		if err := p.Validate(); err != nil {
			return nil, fmt.Errorf("manifest: open: %w", err)
		}
	}
	if err := db.update(ctx, "open", checkSchema); err != nil {
		return nil, err
	}
	return db, nil
}

// migrations[v-1] upgrades a database from schema v to v+1, inside one
// transaction. Empty while only version 1 exists.
var migrations []func(txn *badger.Txn) error

func checkSchema(txn *badger.Txn) error {
	item, err := txn.Get(schemaKey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		// A fresh database, unless manifest keys exist without a version.
		if k := firstKeyFrom(txn, []byte{prefixSchema + 1}); k != nil && k[0] <= lastPrefix() {
			return fmt.Errorf("%w: manifest key %x present but no schema version", ErrSchemaVersion, k)
		}
		return txn.Set(schemaKey, encodeSchemaVersion(SchemaVersion))
	}
	if err != nil {
		return fmt.Errorf("manifest: read schema version: %w", err)
	}
	raw, err := item.ValueCopy(nil)
	if err != nil {
		return fmt.Errorf("manifest: read schema version: %w", err)
	}
	if len(raw) != 4 {
		return fmt.Errorf("%w: schema version value of %d bytes", ErrSchemaVersion, len(raw))
	}
	v := binary.BigEndian.Uint32(raw)
	if v == 0 || v > SchemaVersion {
		return fmt.Errorf("%w: database has version %d, this build knows 1 to %d", ErrSchemaVersion, v, SchemaVersion)
	}
	if v == SchemaVersion {
		return nil
	}
	for ; v < SchemaVersion; v++ {
		if int(v) > len(migrations) {
			return fmt.Errorf("%w: no migration from version %d", ErrSchemaVersion, v)
		}
		if err := migrations[v-1](txn); err != nil {
			return fmt.Errorf("manifest: migrate schema %d to %d: %w", v, v+1, err)
		}
	}
	return txn.Set(schemaKey, encodeSchemaVersion(SchemaVersion))
}

func encodeSchemaVersion(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// firstKeyFrom returns a copy of the first key at or after start, or nil.
func firstKeyFrom(txn *badger.Txn, start []byte) []byte {
	it := txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
	defer it.Close()
	it.Seek(start)
	if !it.Valid() {
		return nil
	}
	return it.Item().KeyCopy(nil)
}

// Retry policy for badger transaction conflicts. All commits to a root
// touch its record (the seq counter), so concurrent commits to one root
// collide and all but one retry. Sixty-four attempts with jittered,
// capped backoff let dozens of writers through before giving up.
const (
	maxAttempts = 64
	minBackoff  = 50 * time.Microsecond
	maxBackoff  = 5 * time.Millisecond
)

// update runs fn in a read-write transaction and retries it while badger
// reports a transaction conflict. fn must be safe to run more than once.
func (db *DB) update(ctx context.Context, what string, fn func(txn *badger.Txn) error) error {
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("manifest: %s: %w", what, err)
		}
		err := db.kv.Update(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
		if attempt == maxAttempts {
			return fmt.Errorf("manifest: %s: %w: %d attempts: %w", what, ErrContention, attempt, err)
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("manifest: %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// view runs fn in a read-only transaction after checking ctx.
func (db *DB) view(ctx context.Context, what string, fn func(txn *badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("manifest: %s: %w", what, err)
	}
	return db.kv.View(fn)
}

// getValue reads the value under key, mapping absence to ErrNotFound
// wrapped with what.
func getValue(txn *badger.Txn, key []byte, what string, args ...any) ([]byte, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, describe(what, args))
	}
	if err != nil {
		return nil, fmt.Errorf("manifest: read %s: %w", describe(what, args), err)
	}
	val, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("manifest: read %s: %w", describe(what, args), err)
	}
	return val, nil
}

// describe formats what with args, if any: getValue's callers pass a
// format and its arguments so that the text is built only for an error.
func describe(what string, args []any) string {
	if len(args) == 0 {
		return what
	}
	return fmt.Sprintf(what, args...)
}

// lookup reads the value under key; absence is (nil, false, nil).
func lookup(txn *badger.Txn, key []byte) ([]byte, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("manifest: read key %x: %w", key, err)
	}
	val, err := item.ValueCopy(nil)
	if err != nil {
		return nil, false, fmt.Errorf("manifest: read key %x: %w", key, err)
	}
	return val, true, nil
}

// exists reports whether key is present.
func exists(txn *badger.Txn, key []byte) (bool, error) {
	_, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("manifest: read key %x: %w", key, err)
	}
	return true, nil
}

// scan calls fn for every key with prefix, in key order, checking ctx
// between items. Keys and values are only valid during the call.
func scan(ctx context.Context, txn *badger.Txn, prefix []byte, keysOnly bool, fn func(key, val []byte) error) error {
	opts := badger.IteratorOptions{Prefix: prefix, PrefetchValues: !keysOnly, PrefetchSize: 64}
	it := txn.NewIterator(opts)
	defer it.Close()
	for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		item := it.Item()
		var val []byte
		if !keysOnly {
			var err error
			if val, err = item.ValueCopy(nil); err != nil {
				return fmt.Errorf("manifest: read key %x: %w", item.Key(), err)
			}
		}
		if err := fn(item.Key(), val); err != nil {
			return err
		}
	}
	return nil
}

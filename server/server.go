package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/gofrs/flock"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/atomicfile"
	"github.com/quic-s/quics/internal/kv"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
)

// Names inside the data directory.
const (
	DBDir               = "db"
	CASDir              = "cas"
	TLSDir              = "tls"
	SyncDir             = "sync"
	InitialPasswordFile = "initial-password"
)

// Options configure Open.
type Options struct {
	// DataDir holds everything the server keeps (see the package
	// documentation); it is created with mode 0700 if missing.
	DataDir string
	// Password, if not empty, becomes the server password that registering
	// a client requires. Empty keeps the stored one, or generates one on
	// the first start (see Server.InitialPassword).
	Password string
	// Views materializes every file's head under DataDir/sync.
	Views bool
	// Logger receives the server's reports; nil discards them.
	Logger *slog.Logger
	// Clock stamps registrations, versions and conflicts; nil means
	// time.Now.
	Clock func() time.Time

	// PasswordParams hash the server and root passwords, TokenParams the
	// client tokens; zero means secret.PasswordParams and
	// secret.TokenParams. Tests pass cheap parameters.
	PasswordParams secret.Params
	TokenParams    secret.Params
	// SmallFootprint shrinks the database's caches, for tests and small
	// machines.
	SmallFootprint bool
	// Hosts are DNS names or IP addresses written into the certificate
	// when it is first created, besides localhost.
	Hosts []string
	// Metrics receives the server's Prometheus collectors (see the
	// package documentation for the series); Close unregisters them. Nil
	// still counts, for nobody.
	Metrics prometheus.Registerer
	// RetentionInterval is how often every root's retention policy is
	// applied in the background (PruneRetention); 0 means
	// DefaultRetentionInterval and a negative value turns the loop off.
	// Commits prune the file they wrote in any case.
	RetentionInterval time.Duration
	// Store says where sealed packs live (default: DataDir/cas).
	Store StoreOptions
}

// Server is the quics server: it implements syncproto.Handler on top of
// the chunk store, the manifest and the conflict rules. It is safe for
// concurrent use.
type Server struct {
	dataDir string
	log     *slog.Logger
	now     func() time.Time
	// lock is held from Open to the end of Close (see LockFile).
	lock *flock.Flock

	kv        *badger.DB
	store     *cas.Store
	storeInfo StoreInfo
	backend   cas.Backend // nil when packs are local
	// migrateToLocal is set when Open was asked to move a backend's packs
	// back to DataDir/cas (MigrateStore does it).
	migrateToLocal bool
	db             *manifest.DB

	cert        tls.Certificate
	fingerprint string

	passwordParams secret.Params
	// passwordHash is the server password's argon2id hash, read on every
	// registration so a new password applies at once.
	passwordHash    atomic.Pointer[string]
	initialPassword string
	// dummyTokenHash is verified against when a client ID is unknown, so
	// that an unknown ID costs as much time as a wrong token.
	dummyTokenHash string

	// Argon2 is deliberately expensive in memory; these bound how many
	// hashes run at once, so a burst of logins cannot exhaust the host.
	passwordSlots chan struct{}
	tokenSlots    chan struct{}

	pins   *Pins
	broker *broker
	// contentAsks rate-limits need-content notices (RequestContent).
	contentAsks *askLimiter
	// proven holds the chunk lists uploads proved (see provenLists).
	proven *provenLists
	views  *views // nil when views are off
	// viewLock is held for writing by RebuildViews and by RemoveRoot
	// while it deletes a root's folder, and for reading by everything
	// else that writes under DataDir/sync: a rebuild sees no writer, and
	// nothing recreates a removed root's folder.
	viewLock sync.RWMutex

	// stopPrune ends the retention loop; pruneDone is closed when it has.
	stopPrune context.CancelFunc
	pruneDone chan struct{}

	// live holds the sessions between Authenticate and SessionEnded
	// (or their client's removal).
	liveMu sync.Mutex
	live   map[*session]struct{}
	// liveByClient counts them per client, for the admin listing.
	liveByClient map[uuid.UUID]int

	metrics   *metrics
	metricsTo prometheus.Registerer // nil: not registered

	// headsPart is HeadsPartLen; tests shrink it.
	headsPart int

	// shareAt is where the share listener serves links; nil while none
	// runs (see ListenShares).
	shareAt atomic.Pointer[shareEndpoint]

	closeOnce sync.Once
	closeErr  error
}

var _ syncproto.Handler = (*Server)(nil)
var _ syncproto.BatchPreparer = (*Server)(nil)
var _ syncproto.WholeRunner = (*Server)(nil)

// Open opens (creating on first use) the server's data directory: the
// database, the chunk store, the manifest, the TLS certificate and the
// server password.
func Open(ctx context.Context, opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("server: no data directory")
	}
	s := &Server{
		dataDir:        opts.DataDir,
		log:            opts.Logger,
		now:            opts.Clock,
		passwordParams: opts.PasswordParams,
		pins:           NewPins(),
		broker:         newBroker(),
		contentAsks:    newAskLimiter(),
		proven:         newProvenLists(),
		headsPart:      HeadsPartLen,
		live:           make(map[*session]struct{}),
		liveByClient:   make(map[uuid.UUID]int),
	}
	s.metrics = newMetrics(s)
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.passwordParams == (secret.Params{}) {
		s.passwordParams = secret.PasswordParams
	}
	tokenParams := opts.TokenParams
	if tokenParams == (secret.Params{}) {
		tokenParams = secret.TokenParams
	}
	s.passwordSlots = make(chan struct{}, 2)
	s.tokenSlots = make(chan struct{}, max(2, runtime.NumCPU()))

	if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server: create data directory: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			// The open error is what matters; closing is best effort.
			_ = s.closeAll()
		}
	}()
	// Before badger: its own directory lock would report a second server
	// less clearly, and nothing else guards the pack files.
	lock, err := lockDataDir(opts.DataDir)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	s.kv, err = kv.Open(filepath.Join(opts.DataDir, DBDir), kv.Options{Logger: s.log, SmallFootprint: opts.SmallFootprint})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := s.openStore(ctx, opts.Store); err != nil {
		return nil, err
	}
	s.db, err = manifest.Open(ctx, s.kv, manifest.Options{Clock: s.now, PasswordParams: s.passwordParams, TokenParams: tokenParams})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.cert, err = tlsutil.LoadOrCreate(filepath.Join(opts.DataDir, TLSDir), opts.Hosts)
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.fingerprint = tlsutil.Fingerprint(s.cert.Certificate[0])
	if s.dummyTokenHash, err = secret.Hash("no such client", tokenParams); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := s.setupPassword(ctx, opts.Password); err != nil {
		return nil, err
	}
	if opts.Metrics != nil {
		if err := opts.Metrics.Register(s.metrics); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
		s.metricsTo = opts.Metrics
	}
	if opts.Views {
		s.views = newViews(s, filepath.Join(opts.DataDir, SyncDir))
	}
	s.startRetentionLoop(opts.RetentionInterval)
	ok = true
	return s, nil
}

func (s *Server) openStore(ctx context.Context, so StoreOptions) error {
	backend, cache, err := s.openBackend(ctx, so)
	if err != nil {
		return err
	}
	s.backend = backend
	store, rep, err := cas.Open(ctx, filepath.Join(s.dataDir, CASDir), s.kv,
		cas.Options{Logger: s.log, Backend: backend, RemoteCache: cache, PackSize: so.PackSize})
	if err != nil {
		if cache != nil {
			_ = cache.Close()
		}
		return fmt.Errorf("server: %w", err)
	}
	s.store = store
	if !rep.Clean() {
		s.log.Warn("server: chunk store repaired on open", "packs", rep.Packs, "torn_bytes", rep.TornBytes,
			"removed_packs", len(rep.RemovedPacks), "short_packs", len(rep.ShortPacks),
			"missing_packs", rep.MissingPacks, "stray_files", rep.StrayFiles, "needs_rebuild", rep.NeedsRebuild)
	}
	if rep.NeedsRebuild {
		rr, err := store.RebuildIndex(ctx)
		if err != nil {
			return fmt.Errorf("server: rebuild chunk index: %w", err)
		}
		s.log.Warn("server: rebuilt the chunk index from the packs", "report", fmt.Sprintf("%+v", rr))
	}
	return nil
}

// setupPassword makes sure a server password hash is stored: password if
// given, else the stored one, else a new random one that is written to
// DataDir/initial-password for the operator.
func (s *Server) setupPassword(ctx context.Context, password string) error {
	initialPath := filepath.Join(s.dataDir, InitialPasswordFile)
	if password != "" {
		return s.SetPassword(ctx, password)
	}
	st, err := s.db.ServerSettings(ctx)
	switch {
	case err == nil && st.PasswordHash != "":
		s.passwordHash.Store(&st.PasswordHash)
		return nil
	case err != nil && !errors.Is(err, manifest.ErrNotFound):
		return fmt.Errorf("server: read server password: %w", err)
	}
	generated, err := NewPassword()
	if err != nil {
		return err
	}
	hash, err := secret.Hash(generated, s.passwordParams)
	if err != nil {
		return fmt.Errorf("server: hash server password: %w", err)
	}
	// The file first: a crash before the hash is stored only means a new
	// password next time, never a stored hash nobody knows the password of.
	if err := atomicfile.WriteFile(initialPath, []byte(generated+"\n"), 0o600); err != nil {
		return fmt.Errorf("server: write %s: %w", initialPath, err)
	}
	if err := s.db.SetServerSettings(ctx, manifest.ServerSettings{PasswordHash: hash}); err != nil {
		return fmt.Errorf("server: store server password: %w", err)
	}
	s.passwordHash.Store(&hash)
	s.initialPassword = generated
	return nil
}

// SetPassword replaces the server password. It applies to the next
// registration at once; registered clients keep working with their tokens.
func (s *Server) SetPassword(ctx context.Context, password string) error {
	if password == "" || len(password) > secret.MaxSecretLen {
		return fmt.Errorf("%w: the server password must have 1 to %d bytes", syncproto.ErrBadRequest, secret.MaxSecretLen)
	}
	hash, err := secret.Hash(password, s.passwordParams)
	if err != nil {
		return fmt.Errorf("server: hash server password: %w", err)
	}
	if err := s.db.SetServerSettings(ctx, manifest.ServerSettings{PasswordHash: hash}); err != nil {
		return fmt.Errorf("server: store server password: %w", err)
	}
	s.passwordHash.Store(&hash)
	// A generated password written earlier no longer works.
	initialPath := filepath.Join(s.dataDir, InitialPasswordFile)
	if err := os.Remove(initialPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("server: remove stale %s: %w", initialPath, err)
	}
	return nil
}

// passwordAlphabet leaves out characters people confuse (0/O, 1/l/I).
const passwordAlphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// PasswordLen is the length of a generated server password: 20 characters
// of a 57-letter alphabet, about 116 bits.
const PasswordLen = 20

// NewPassword returns a random password that is easy to read and type.
func NewPassword() (string, error) {
	out := make([]byte, 0, PasswordLen)
	var buf [64]byte
	for len(out) < PasswordLen {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("server: generate password: %w", err)
		}
		for _, b := range buf {
			// Rejection sampling keeps every letter equally likely.
			if int(b) < 256-256%len(passwordAlphabet) && len(out) < PasswordLen {
				out = append(out, passwordAlphabet[int(b)%len(passwordAlphabet)])
			}
		}
	}
	return string(out), nil
}

// Close stops the view writers, commits what the chunk store holds and
// closes the database. In-flight requests must have returned.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.closeAll() })
	return s.closeErr
}

func (s *Server) closeAll() error {
	var errs []error
	if s.metricsTo != nil {
		// A scrape after Close would read a closed store; and a server
		// opened again in this process registers its own.
		s.metricsTo.Unregister(s.metrics)
	}
	if s.stopPrune != nil {
		// Before the database closes under it.
		s.stopPrune()
		<-s.pruneDone
	}
	if s.views != nil {
		s.views.close()
	}
	s.broker.closeAll()
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close chunk store: %w", err))
		}
	}
	if c, ok := s.backend.(io.Closer); ok {
		_ = c.Close() // idle connections only: nothing to lose
	}
	if s.kv != nil {
		if err := s.kv.Close(); err != nil {
			errs = append(errs, fmt.Errorf("server: close database: %w", err))
		}
	}
	// Last: the next owner may open the directory once this returns.
	if s.lock != nil {
		if err := s.lock.Unlock(); err != nil {
			errs = append(errs, fmt.Errorf("server: unlock data directory: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Fingerprint is the SHA-256 fingerprint of the server certificate, in
// lower-case hex: what clients pin.
func (s *Server) Fingerprint() string { return s.fingerprint }

// TLSConfig returns the TLS configuration to listen with: the server
// certificate, TLS 1.3 and the quics ALPN.
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{s.cert},
		MinVersion:   tls.VersionTLS13,
		NextProtos:   []string{syncproto.ALPN},
	}
}

// InitialPassword is the server password generated by this Open, or ""
// if a password was given or already stored. It is shown once; only its
// hash is kept (and the file DataDir/initial-password).
func (s *Server) InitialPassword() string { return s.initialPassword }

// InitialPasswordPath is where a generated password is written.
func (s *Server) InitialPasswordPath() string {
	return filepath.Join(s.dataDir, InitialPasswordFile)
}

// Pins is the registry of chunks that sessions hold on to; garbage
// collection must not delete a pinned chunk.
func (s *Server) Pins() *Pins { return s.pins }

// Store is the chunk store, for maintenance (gc, admin).
func (s *Server) Store() *cas.Store { return s.store }

// Manifest is the metadata database, for maintenance (gc, admin).
func (s *Server) Manifest() *manifest.DB { return s.db }

// acquire takes a slot of sem, or fails when ctx ends first.
func acquire(ctx context.Context, sem chan struct{}) (release func(), err error) {
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

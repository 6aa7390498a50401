package server

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/atomicfile"
	"github.com/quic-s/quics/internal/blockcache"
	"github.com/quic-s/quics/s3store"
)

// Names of the chunk store's configuration and read cache in the data
// directory.
const (
	StoreConfigFile = "store.json"
	CacheDir        = "cache"
)

// DefaultCacheBytes bounds the local cache of blocks read from remote packs.
const DefaultCacheBytes = 1 << 30

// StoreLocal is the StoreOptions.URL of packs kept in DataDir/cas.
const StoreLocal = "local"

// ErrStoreMismatch is returned by Open when the requested store is not the
// one the data directory uses.
var ErrStoreMismatch = errors.New("server: the data directory keeps its packs elsewhere")

// StoreOptions say where the chunk store keeps sealed packs. Credentials are
// never written to disk; the rest of the configuration is, in
// DataDir/store.json, so later starts need only the credentials.
type StoreOptions struct {
	// URL is "local" (DataDir/cas), "s3://BUCKET/PREFIX" or
	// "file:///ABSOLUTE/PATH" (another disk). Empty keeps what the data
	// directory uses: local unless configured otherwise.
	URL string
	// S3 holds the endpoint, region and credentials of an s3:// store;
	// its Bucket and Prefix come from URL. Empty fields fall back to what
	// store.json recorded (endpoint, region, plain HTTP).
	S3 s3store.Config
	// CacheBytes bounds the local cache of blocks read from remote packs
	// (DataDir/cache); 0 means DefaultCacheBytes, negative turns it off.
	CacheBytes int64
	// PackSize is the size at which packs are sealed (and, with a
	// backend, uploaded); 0 means cas.DefaultPackSize. Larger packs mean
	// fewer object-store requests per GB.
	PackSize int64
	// Migrate allows switching a store that already holds packs to URL;
	// its packs are then uploaded (see Server.MigrateStore). Without it
	// such a switch is refused with ErrStoreMismatch.
	Migrate bool
}

// storeConfig is store.json.
type storeConfig struct {
	URL      string `json:"url"`
	Endpoint string `json:"endpoint,omitempty"`
	Region   string `json:"region,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
	// StoreID names this data directory's store in the bucket, so two
	// data directories never share one prefix by mistake.
	StoreID string `json:"store_id,omitempty"`
}

func readStoreConfig(dataDir string) (storeConfig, error) {
	p := filepath.Join(dataDir, StoreConfigFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return storeConfig{URL: StoreLocal}, nil
	}
	if err != nil {
		return storeConfig{}, fmt.Errorf("server: read %s: %w", p, err)
	}
	var c storeConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return storeConfig{}, fmt.Errorf("server: %s is not valid: %w", p, err)
	}
	if _, err := normalizeStoreURL(c.URL); err != nil {
		return storeConfig{}, fmt.Errorf("server: %s: %w", p, err)
	}
	return c, nil
}

func writeStoreConfig(dataDir string, c storeConfig) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	p := filepath.Join(dataDir, StoreConfigFile)
	if err := atomicfile.WriteFile(p, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("server: write %s: %w", p, err)
	}
	return nil
}

// normalizeStoreURL checks a store URL and returns its canonical form.
func normalizeStoreURL(raw string) (string, error) {
	switch {
	case raw == "" || raw == StoreLocal:
		return StoreLocal, nil
	case strings.HasPrefix(raw, "s3://"):
		bucket, prefix, err := s3store.ParseURL(raw)
		if err != nil {
			return "", err
		}
		return "s3://" + strings.TrimSuffix(bucket+"/"+prefix, "/"), nil
	case strings.HasPrefix(raw, "file://"):
		dir, err := fileStoreDir(raw)
		if err != nil {
			return "", err
		}
		// Escaped, so that a path with '%', '#' or '?' reads back the same.
		return (&url.URL{Scheme: "file", Path: dir}).String(), nil
	}
	return "", fmt.Errorf("store %q: want local, s3://BUCKET/PREFIX or file:///PATH", raw)
}

// fileStoreDir is the directory of a file:/// store URL. Control
// characters are refused: no one means them in a directory name, and they
// would garble every log line and message that names the store.
func fileStoreDir(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "file" || u.Host != "" || u.RawQuery != "" || u.Fragment != "" || !filepath.IsAbs(u.Path) ||
		strings.ContainsFunc(u.Path, unicode.IsControl) {
		return "", fmt.Errorf("store %q: want file:///ABSOLUTE/PATH", raw)
	}
	return filepath.Clean(u.Path), nil
}

// StoreInfo describes where the chunk store keeps its packs.
type StoreInfo struct {
	// URL is "local", "s3://BUCKET/PREFIX" or "file:///PATH".
	URL string `json:"url"`
	// Backend names the backend with its endpoint ("" when local).
	Backend string `json:"backend,omitempty"`
}

// openBackend resolves opts against store.json, persists the result and
// opens the backend; it returns nil for a local store.
func (s *Server) openBackend(ctx context.Context, opts StoreOptions) (cas.Backend, cas.RangeCache, error) {
	conf, err := readStoreConfig(s.dataDir)
	if err != nil {
		return nil, nil, err
	}
	want := conf.URL
	if opts.URL != "" {
		if want, err = normalizeStoreURL(opts.URL); err != nil {
			return nil, nil, fmt.Errorf("server: %w", err)
		}
	}
	if want != conf.URL {
		switch {
		case want == StoreLocal && opts.Migrate:
			// Back to local: open the current backend to download from.
			s.migrateToLocal = true
		case conf.URL == StoreLocal && want != StoreLocal:
			packs, err := cas.HasLocalPacks(filepath.Join(s.dataDir, CASDir))
			if err != nil {
				return nil, nil, fmt.Errorf("server: look for packs: %w", err)
			}
			if packs && !opts.Migrate {
				return nil, nil, fmt.Errorf("%w: its packs are local; run quics store migrate --to %s to move them", ErrStoreMismatch, want)
			}
			conf = storeConfig{URL: want}
		default:
			return nil, nil, fmt.Errorf("%w: it uses %s, not %s; quics store migrate --to moves packs between stores",
				ErrStoreMismatch, conf.URL, want)
		}
	}
	if conf.URL == StoreLocal {
		s.storeInfo = StoreInfo{URL: StoreLocal}
		return nil, nil, nil
	}

	var backend cas.Backend
	switch {
	case strings.HasPrefix(conf.URL, "file://"):
		dir, err := fileStoreDir(conf.URL)
		if err != nil {
			return nil, nil, fmt.Errorf("server: %s: %w", StoreConfigFile, err)
		}
		backend = cas.DirBackend{Dir: dir}
	default:
		// Flags first, then the environment, then what store.json
		// recorded; credentials never come from disk.
		cfg, env := opts.S3, s3store.ConfigFromEnv(os.Getenv)
		cfg.Bucket, cfg.Prefix, _ = s3store.ParseURL(conf.URL)
		switch {
		case cfg.Endpoint != "":
		case env.Endpoint != "":
			cfg.Endpoint, cfg.Insecure = env.Endpoint, env.Insecure
		default:
			cfg.Endpoint, cfg.Insecure = conf.Endpoint, conf.Insecure
		}
		cfg.Region = cmp.Or(cfg.Region, env.Region, conf.Region)
		if cfg.AccessKey == "" && cfg.SecretKey == "" {
			cfg.AccessKey, cfg.SecretKey, cfg.SessionToken = env.AccessKey, env.SecretKey, env.SessionToken
		}
		conf.Endpoint, conf.Region, conf.Insecure = cfg.Endpoint, cfg.Region, cfg.Insecure
		if conf.StoreID == "" {
			conf.StoreID = uuid.NewString()
		}
		b, err := s3store.Open(ctx, cfg, conf.StoreID)
		if err != nil {
			return nil, nil, fmt.Errorf("server: open chunk store %s: %w", conf.URL, err)
		}
		backend = b
	}
	if err := writeStoreConfig(s.dataDir, conf); err != nil {
		return nil, nil, err
	}
	s.storeInfo = StoreInfo{URL: conf.URL, Backend: backend.String()}

	if opts.CacheBytes < 0 {
		return backend, nil, nil
	}
	size := opts.CacheBytes
	if size == 0 {
		size = DefaultCacheBytes
	}
	cache, err := blockcache.New(blockcache.Options{Dir: filepath.Join(s.dataDir, CacheDir, "packs"), MaxBytes: size},
		func(ctx context.Context, key uint64, p []byte, off int64) (int, error) {
			return backend.ReadAt(ctx, key, p, off)
		})
	if err != nil {
		return nil, nil, fmt.Errorf("server: open read cache: %w", err)
	}
	return backend, cache, nil
}

// StoreInfo says where the chunk store keeps its packs.
func (s *Server) StoreInfo() StoreInfo { return s.storeInfo }

// MigrateStore moves the packs to where Open's StoreOptions said: it
// uploads every local pack to the backend, or, when migrating back to
// local, downloads every remote pack and then records the store as local.
// Both are resumable: packs already moved are skipped (and the background
// uploader finishes an interrupted upload as well).
func (s *Server) MigrateStore(ctx context.Context) (cas.UploadReport, error) {
	if s.migrateToLocal {
		rep, err := s.store.DownloadAll(ctx)
		if err != nil {
			return rep, fmt.Errorf("server: download packs: %w", err)
		}
		if err := writeStoreConfig(s.dataDir, storeConfig{URL: StoreLocal}); err != nil {
			return rep, err
		}
		s.storeInfo = StoreInfo{URL: StoreLocal}
		return rep, nil
	}
	if s.storeInfo.URL == StoreLocal {
		return cas.UploadReport{}, errors.New("server: the chunk store is local: nothing to migrate to")
	}
	rep, err := s.store.UploadAll(ctx)
	if err != nil {
		return rep, fmt.Errorf("server: upload packs: %w", err)
	}
	return rep, nil
}

// StoreStatus is where the chunk store keeps its packs and how much lives
// where.
type StoreStatus struct {
	StoreInfo
	Packs     int   `json:"packs"`
	PackBytes int64 `json:"pack_bytes"`
	// RemotePacks and RemoteBytes live in the backend; the rest are local
	// files (for a backend store: waiting for upload, or being written).
	RemotePacks int    `json:"remote_packs"`
	RemoteBytes int64  `json:"remote_bytes"`
	LocalPacks  int    `json:"local_packs"`
	LocalBytes  int64  `json:"local_bytes"`
	Chunks      uint64 `json:"chunks"`
}

// StoreStatus reports where the packs are.
func (s *Server) StoreStatus(ctx context.Context) (StoreStatus, error) {
	st, err := s.store.Stats(ctx)
	if err != nil {
		return StoreStatus{}, fmt.Errorf("server: %w", err)
	}
	return StoreStatus{
		StoreInfo: s.storeInfo, Packs: st.Packs, PackBytes: st.PackBytes,
		RemotePacks: st.RemotePacks, RemoteBytes: st.RemoteBytes,
		LocalPacks: st.Packs - st.RemotePacks, LocalBytes: st.PackBytes - st.RemoteBytes,
		Chunks: st.Chunks,
	}, nil
}

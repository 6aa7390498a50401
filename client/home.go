package client

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/kv"
)

// Home directory layout.
const (
	// HomeEnv names the environment variable that sets the home directory
	// when --home is not given.
	HomeEnv = "QIC_HOME"
	// DefaultHomeName is the home directory's name under the user's home.
	DefaultHomeName = ".quics-client"
	// ConfigFile is the configuration's name inside the home (0600).
	ConfigFile = "config.json"
	// DBDir is the local state database's directory inside the home.
	DBDir = "db"
)

// configVersion is the format of config.json this package writes.
const configVersion = 1

// maxConfigLen bounds config.json, read before it is parsed.
const maxConfigLen = 64 << 10

// Config is the client's identity and server, kept in HOME/config.json.
type Config struct {
	// ClientID identifies this device; generated when the home is created.
	ClientID uuid.UUID `json:"client_id"`
	// DeviceName is a name for people.
	DeviceName string `json:"device_name,omitempty"`
	// ServerAddr is the server's host:port.
	ServerAddr string `json:"server_addr,omitempty"`
	// Fingerprint is the hex SHA-256 of the server certificate pinned at
	// registration.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Token authenticates the client; the server keeps only its hash.
	Token string `json:"token,omitempty"`
}

// Registered reports whether the client has registered with a server.
func (c Config) Registered() bool { return c.ServerAddr != "" && c.Token != "" }

func (c Config) validate() error {
	switch {
	case c.ClientID == uuid.Nil:
		return fmt.Errorf("%w: no client_id", ErrBadConfig)
	case len(c.DeviceName) > 255 || !utf8.ValidString(c.DeviceName):
		return fmt.Errorf("%w: device_name is not UTF-8 of at most 255 bytes", ErrBadConfig)
	case len(c.ServerAddr) > 1024:
		return fmt.Errorf("%w: server_addr longer than 1024 bytes", ErrBadConfig)
	case len(c.Token) > 1024:
		return fmt.Errorf("%w: token longer than 1024 bytes", ErrBadConfig)
	case c.Fingerprint != "" && !isSHA256Hex(c.Fingerprint):
		return fmt.Errorf("%w: fingerprint %q is not 64 lower-case hex digits", ErrBadConfig, c.Fingerprint)
	}
	return nil
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// configFile is config.json: the Config with a format version.
type configFile struct {
	Version int `json:"version"`
	Config
}

func encodeConfig(c Config) ([]byte, error) {
	b, err := json.MarshalIndent(configFile{Version: configVersion, Config: c}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// decodeConfig parses config.json. Unknown fields are refused: a typo in a
// hand-edited file should not be silently ignored.
func decodeConfig(b []byte) (Config, error) {
	if len(b) > maxConfigLen {
		return Config{}, fmt.Errorf("%w: %d bytes, more than %d", ErrBadConfig, len(b), maxConfigLen)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f configFile
	if err := dec.Decode(&f); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("%w: data after the JSON object", ErrBadConfig)
	}
	if f.Version != configVersion {
		return Config{}, fmt.Errorf("%w: version %d, this qic reads %d", ErrBadConfig, f.Version, configVersion)
	}
	if err := f.validate(); err != nil {
		return Config{}, err
	}
	return f.Config, nil
}

// HomeDir returns the home directory to use: flagValue (from --home) if
// set, else $QIC_HOME, else ~/.quics-client.
func HomeDir(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if env := os.Getenv(HomeEnv); env != "" {
		return env, nil
	}
	userHome, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("client: no home directory given (--home or %s) and %w", HomeEnv, err)
	}
	return filepath.Join(userHome, DefaultHomeName), nil
}

// Home is an open client home directory: its config and its local state.
// It holds the database's directory lock until Close, so one home serves
// one qic process at a time; several homes let several clients share a
// machine.
type Home struct {
	dir   string
	db    *badger.DB
	state *State

	mu  sync.Mutex
	cfg Config
}

// OpenHome opens the home directory dir, creating it (0700) with a new
// client ID on first use. It fails with an error wrapping ErrHomeLocked if
// another process has it open.
func OpenHome(ctx context.Context, dir string) (*Home, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("client: home %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("client: create home: %w", err)
	}
	// The database's directory lock is the home's lock: take it before
	// touching the config, which only the lock holder may write.
	// Without an fsync per commit: the records say what this client last
	// agreed with the server, and after a power failure that lost the
	// newest of them the next pass proposes those files again and the
	// server answers CONVERGED. A file's content is never in this
	// database. An fsync per accepted file was most of the time of a
	// first sync of many small files.
	db, err := kv.Open(filepath.Join(abs, DBDir), kv.Options{SmallFootprint: true, NoSync: true, Logger: slog.Default()})
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("%w: %s", ErrHomeLocked, abs)
		}
		return nil, fmt.Errorf("client: home %s: %w", abs, err)
	}
	h := &Home{dir: abs, db: db}
	if err := h.open(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return h, nil
}

func (h *Home) open(ctx context.Context) error {
	st, err := openState(h.db)
	if err != nil {
		return fmt.Errorf("client: home %s: %w", h.dir, err)
	}
	h.state = st
	name := filepath.Join(h.dir, ConfigFile)
	cfg, err := readConfig(name)
	if errors.Is(err, fs.ErrNotExist) {
		return h.SaveConfig(ctx, Config{ClientID: uuid.New()})
	}
	if err != nil {
		return fmt.Errorf("client: %s: %w", name, err)
	}
	h.cfg = cfg
	return nil
}

func readConfig(name string) (Config, error) {
	f, err := os.Open(name)
	if err != nil {
		return Config{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigLen+1))
	if err != nil {
		return Config{}, err
	}
	return decodeConfig(b)
}

// Dir returns the home's absolute path.
func (h *Home) Dir() string { return h.dir }

// Config returns the current configuration.
func (h *Home) Config() Config {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.cfg
}

// SaveConfig validates cfg and replaces config.json with it atomically
// (0600: it holds the token).
func (h *Home) SaveConfig(ctx context.Context, cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	b, err := encodeConfig(cfg)
	if err != nil {
		return fmt.Errorf("client: encode config: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err = atomicWrite(ctx, filepath.Join(h.dir, ConfigFile), 0o600, time.Time{}, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		return fmt.Errorf("client: save config in %s: %w", h.dir, err)
	}
	h.cfg = cfg
	return nil
}

// State returns the home's local state.
func (h *Home) State() *State { return h.state }

// Close releases the home (and its lock).
func (h *Home) Close() error {
	var serr error
	if !h.db.IsClosed() {
		serr = h.db.Sync()
	}
	if err := h.db.Close(); err != nil {
		return fmt.Errorf("client: close home %s: %w", h.dir, err)
	}
	if serr != nil {
		return fmt.Errorf("client: sync home %s: %w", h.dir, serr)
	}
	return nil
}

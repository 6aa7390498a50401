package manifest

import (
	"context"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/manifest/internal/recordpb"
)

// ServerSettings are the server-wide settings: one record per database.
type ServerSettings struct {
	// PasswordHash is the PHC-encoded argon2id hash of the server password
	// that registering a client requires (see internal/secret).
	PasswordHash string
	// Updated is when the settings were last written.
	Updated time.Time
}

// ServerSettings returns the server settings, or ErrNotFound on a database
// where they were never set.
func (db *DB) ServerSettings(ctx context.Context) (ServerSettings, error) {
	var out ServerSettings
	err := db.view(ctx, "get server settings", func(txn *badger.Txn) error {
		val, err := getValue(txn, settingsKey, "server settings")
		if err != nil {
			return err
		}
		out, err = decodeServerSettings(val)
		return err
	})
	return out, err
}

// SetServerSettings replaces the server settings. A zero Updated is
// stamped with the DB's clock.
func (db *DB) SetServerSettings(ctx context.Context, s ServerSettings) error {
	if s.Updated.IsZero() {
		s.Updated = db.now()
	}
	if err := s.validate(); err != nil {
		return fmt.Errorf("manifest: set server settings: %w", err)
	}
	val, err := encodeServerSettings(s)
	if err != nil {
		return err
	}
	return db.update(ctx, "set server settings", func(txn *badger.Txn) error {
		if err := txn.Set(settingsKey, val); err != nil {
			return fmt.Errorf("manifest: write server settings: %w", err)
		}
		return nil
	})
}

func (s ServerSettings) validate() error {
	return checkString("server password hash", s.PasswordHash, maxPHCLen)
}

func encodeServerSettings(s ServerSettings) ([]byte, error) {
	return marshal("server settings", &recordpb.ServerSettings{
		PasswordHash:    s.PasswordHash,
		UpdatedUnixNano: nanos(s.Updated),
	})
}

func decodeServerSettings(b []byte) (ServerSettings, error) {
	var m recordpb.ServerSettings
	if err := unmarshal("server settings", b, maxRecordLen, &m); err != nil {
		return ServerSettings{}, err
	}
	s := ServerSettings{PasswordHash: m.PasswordHash, Updated: fromNanos(m.UpdatedUnixNano)}
	if err := s.validate(); err != nil {
		return ServerSettings{}, fmt.Errorf("%w: server settings: %w", ErrCorrupt, err)
	}
	return s, nil
}

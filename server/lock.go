package server

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/gofrs/flock"
)

// LockFile is the file in the data directory that the server holding the
// directory keeps locked (flock(2), advisory, released by the kernel when
// the process dies).
const LockFile = "lock"

// ErrDataDirInUse means another quics process (or another Open in this
// one) holds the data directory: badger and the pack files must have one
// writer.
var ErrDataDirInUse = errors.New("data directory in use")

// lockDataDir takes the data directory's lock without waiting.
func lockDataDir(dataDir string) (*flock.Flock, error) {
	lock := flock.New(filepath.Join(dataDir, LockFile))
	// A DataDirInUse probe holds the lock for microseconds; a few retries
	// keep a probe from failing a server start.
	for attempt := 0; ; attempt++ {
		locked, err := lock.TryLock()
		if err != nil {
			return nil, fmt.Errorf("server: lock data directory %s: %w", dataDir, err)
		}
		if locked {
			return lock, nil
		}
		if attempt == lockAttempts-1 {
			return nil, fmt.Errorf("server: %w: another quics process uses %s", ErrDataDirInUse, dataDir)
		}
		time.Sleep(lockRetryDelay)
	}
}

const (
	lockAttempts   = 5
	lockRetryDelay = 20 * time.Millisecond
)

// DataDirInUse reports whether a server holds dataDir's lock, so that a
// tool can choose between asking the running server and opening the
// directory itself. It creates nothing: a missing directory or lock file
// means nobody holds it. The probe takes the lock for an instant; Open
// retries briefly so that it does not fail because of one.
func DataDirInUse(dataDir string) (bool, error) {
	// Read-only and without O_CREATE: probing must not make a directory
	// look like a data directory.
	lock := flock.New(filepath.Join(dataDir, LockFile), flock.SetFlag(os.O_RDONLY))
	locked, err := lock.TryLock()
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("server: probe lock of %s: %w", dataDir, err)
	case !locked:
		return true, nil
	}
	if err := lock.Unlock(); err != nil {
		return false, fmt.Errorf("server: release probe lock of %s: %w", dataDir, err)
	}
	return false, nil
}

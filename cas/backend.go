package cas

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/quic-s/quics/internal/atomicfile"
)

// ErrNoObject is what a Backend returns (wrapped) for a pack it does not
// hold.
var ErrNoObject = errors.New("cas: no such pack in the backend")

// Backend keeps sealed packs away from the store's directory: in an object
// store, or on another disk. The store writes every pack locally first
// (appends need a file), uploads it whole once it is sealed and durable,
// records in badger that it is remote, and only then deletes the local copy;
// so the index never points at a pack the backend has not confirmed.
//
// Packs are immutable once uploaded: Put of a number already present
// replaces it with identical bytes (a retried upload). Implementations are
// safe for concurrent use and retry transient failures themselves.
type Backend interface {
	// Put stores pack num from the size bytes of r and returns once the
	// backend holds them durably.
	Put(ctx context.Context, num uint64, r io.ReaderAt, size int64) error
	// ReadAt fills p from pack num at offset off, like io.ReaderAt: a pack
	// that ends early yields io.ErrUnexpectedEOF or io.EOF with the count
	// read; a pack that does not exist wraps ErrNoObject.
	ReadAt(ctx context.Context, num uint64, p []byte, off int64) (int, error)
	// List calls fn for every pack the backend holds, in no set order.
	// Objects that are not packs are skipped.
	List(ctx context.Context, fn func(num uint64, size int64) error) error
	// Stat returns the size of pack num, or an error wrapping ErrNoObject.
	Stat(ctx context.Context, num uint64) (int64, error)
	// Delete removes pack num; deleting a pack that is not there is not an
	// error.
	Delete(ctx context.Context, num uint64) error
	// String names the backend for logs and reports, without secrets.
	String() string
}

// PackObjectName is the name, relative to a backend's root, under which
// backends keep pack num: the same sharded layout as the local directory,
// so a prefix listing stays spread over 256 shards.
func PackObjectName(num uint64) string {
	return shardName(num) + "/" + fmt.Sprintf("%016x.pack", num)
}

// ParsePackObjectName is the inverse of PackObjectName; ok is false for any
// other name.
func ParsePackObjectName(name string) (num uint64, ok bool) {
	shard, file, found := strings.Cut(name, "/")
	if !found {
		return 0, false
	}
	return parsePackName(shard, file)
}

// DirBackend keeps packs in a local directory, with PackObjectName's
// layout: a second disk, or a network mount.
type DirBackend struct {
	Dir string
}

var _ Backend = DirBackend{}

func (d DirBackend) path(num uint64) string {
	return filepath.Join(d.Dir, filepath.FromSlash(PackObjectName(num)))
}

// Put writes the pack to a temporary file, fsyncs it and renames it into
// place, so a reader never sees half a pack.
func (d DirBackend) Put(ctx context.Context, num uint64, r io.ReaderAt, size int64) error {
	p := d.path(num)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("cas: backend %s: %w", d, err)
	}
	pend, err := atomicfile.Create(p, ".upload-*")
	if err != nil {
		return fmt.Errorf("cas: backend %s: put pack %d: %w", d, num, err)
	}
	if _, err := io.Copy(pend, io.NewSectionReader(r, 0, size)); err != nil {
		pend.Abort()
		return fmt.Errorf("cas: backend %s: put pack %d: %w", d, num, err)
	}
	if err := ctx.Err(); err != nil {
		pend.Abort()
		return err
	}
	if _, err := pend.Commit(0o644, time.Time{}); err != nil {
		return fmt.Errorf("cas: backend %s: put pack %d: %w", d, num, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("cas: backend %s: put pack %d: %w", d, num, err)
	}
	return nil
}

// ReadAt reads from the pack file.
func (d DirBackend) ReadAt(ctx context.Context, num uint64, p []byte, off int64) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f, err := os.Open(d.path(num))
	if err != nil {
		if isNotExist(err) {
			return 0, fmt.Errorf("%w: %d in %s", ErrNoObject, num, d)
		}
		return 0, fmt.Errorf("cas: backend %s: %w", d, err)
	}
	defer f.Close()
	return f.ReadAt(p, off)
}

// List walks the shard directories; a directory not created yet holds no
// pack.
func (d DirBackend) List(ctx context.Context, fn func(num uint64, size int64) error) error {
	packs, _, err := listPackDir(d.Dir)
	if isNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cas: backend %s: %w", d, err)
	}
	for num, p := range packs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(num, p.size); err != nil {
			return err
		}
	}
	return nil
}

// Stat returns the pack file's size.
func (d DirBackend) Stat(_ context.Context, num uint64) (int64, error) {
	info, err := os.Stat(d.path(num))
	if err != nil {
		if isNotExist(err) {
			return 0, fmt.Errorf("%w: %d in %s", ErrNoObject, num, d)
		}
		return 0, fmt.Errorf("cas: backend %s: %w", d, err)
	}
	return info.Size(), nil
}

// Delete removes the pack file.
func (d DirBackend) Delete(_ context.Context, num uint64) error {
	if err := os.Remove(d.path(num)); err != nil && !isNotExist(err) {
		return fmt.Errorf("cas: backend %s: delete pack %d: %w", d, num, err)
	}
	return nil
}

func (d DirBackend) String() string { return "file://" + d.Dir }

// Package atomicfile writes files so that a reader, or the machine after a
// crash, sees either the old file or the complete new one: write a
// temporary file in the same directory, fsync it, rename it over the
// target, fsync the directory. Every small file quics keeps (certificate,
// key, passwords, client configuration, status) goes through WriteFile;
// files streamed in (downloads, server views) through Create and Commit.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// Pending is a file being written next to its target. Nothing is visible
// at the target until Commit renames it into place; Abort (or a failed
// Commit) removes it.
type Pending struct {
	f      *os.File
	target string
	done   bool
	// written counts what Write wrote, for a Sync on another goroutine.
	written atomic.Int64
}

// Create starts a pending replacement of target: a temporary file in the
// same directory (so the rename cannot cross file systems), named
// pattern as in os.CreateTemp.
func Create(target, pattern string) (*Pending, error) {
	f, err := os.CreateTemp(filepath.Dir(target), pattern)
	if err != nil {
		return nil, err
	}
	return &Pending{f: f, target: target}, nil
}

// Write appends to the pending file.
func (p *Pending) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	p.written.Add(int64(n))
	return n, err
}

// Sync makes what was written so far durable and lets the page cache drop
// it. A long stream calls it every few tens of MiB, from another goroutine
// than Write's if it likes: the disk then works while bytes still arrive,
// Commit's fsync has only the tail left, and the pages, clean and
// dropped, are reused for the next bytes rather than taken fresh (a
// restored or downloaded file is rarely read back at once, and fresh pages
// cost the writer more CPU than the write itself in a VM).
func (p *Pending) Sync() error {
	n := p.written.Load()
	if err := syncData(p.f); err != nil {
		return err
	}
	dropCache(p.f, n)
	return nil
}

// Commit gives the pending file its permissions and, unless mtime is zero,
// its modification time, fsyncs it and renames it over the target. It
// returns the file's info as written, before the rename. It does not
// fsync the directory: call SyncDir when the rename itself must survive a
// crash.
func (p *Pending) Commit(perm fs.FileMode, mtime time.Time) (fs.FileInfo, error) {
	if p.done {
		return nil, errors.New("atomicfile: commit after commit or abort")
	}
	fi, err := p.finish(perm, mtime)
	if err != nil {
		p.Abort()
		return nil, err
	}
	p.done = true
	return fi, nil
}

func (p *Pending) finish(perm fs.FileMode, mtime time.Time) (fs.FileInfo, error) {
	if err := p.f.Chmod(perm); err != nil {
		return nil, err
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(p.f.Name(), time.Time{}, mtime); err != nil {
			return nil, err
		}
	}
	if err := p.f.Sync(); err != nil {
		return nil, err
	}
	fi, err := p.f.Stat()
	if err != nil {
		return nil, err
	}
	if err := p.f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(p.f.Name(), p.target); err != nil {
		return nil, err
	}
	return fi, nil
}

// Abort discards the pending file; after Commit it does nothing.
func (p *Pending) Abort() {
	if p.done {
		return
	}
	p.done = true
	_ = p.f.Close()
	_ = os.Remove(p.f.Name())
}

// WriteFile atomically replaces path with data, with permissions perm,
// and fsyncs the directory so the new file survives a crash.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	p, err := Create(path, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := p.Write(data); err != nil {
		p.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := p.Commit(perm, time.Time{}); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("sync directory of %s: %w", path, err)
	}
	return nil
}

// SyncDir fsyncs a directory so that an entry created, renamed or removed
// in it is durable. Where the platform cannot fsync a directory (Windows),
// the rename is as durable as it gets and SyncDir returns nil.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && (errors.Is(err, fs.ErrInvalid) || errors.Is(err, fs.ErrPermission) || errors.Is(err, errors.ErrUnsupported)) {
		return nil
	}
	return err
}

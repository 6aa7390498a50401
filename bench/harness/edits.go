package harness

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/quic-s/quics/bench/dataset"
)

// editor changes files the way the scenarios say, with deterministic
// bytes, and gives every edited file a fresh mtime: one second later
// than the last, so rsync's size-and-mtime check cannot miss an edit that
// keeps the size, whatever the file system's time resolution.
type editor struct {
	clock time.Time
	seed  uint64
}

func newEditor() *editor {
	return &editor{clock: time.Now().Truncate(time.Second), seed: 0xed17}
}

func (e *editor) touch(path string) error {
	e.clock = e.clock.Add(time.Second)
	if err := os.Chtimes(path, e.clock, e.clock); err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	return nil
}

// random is n deterministic random bytes, different at each call.
func (e *editor) random(n int64) io.Reader {
	e.seed++
	return dataset.Content(dataset.Entry{Size: n, Kind: dataset.Random, Seed: e.seed})
}

// insert puts n bytes at offset at of path by writing a new file beside
// it and renaming it over, as editors do.
func (e *editor) insert(path string, at, n int64) (err error) {
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	defer src.Close()
	tmp := filepath.Join(filepath.Dir(path), ".bench-edit-"+filepath.Base(path))
	dst, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	defer func() {
		if err != nil {
			_ = dst.Close()
			_ = os.Remove(tmp)
		}
	}()
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(dst, io.LimitReader(src, at), buf); err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	if _, err := io.CopyBuffer(dst, e.random(n), buf); err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	if _, err := io.CopyBuffer(dst, src, buf); err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	return e.touch(path)
}

// appendBytes adds n bytes at the end of path.
func (e *editor) appendBytes(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	if _, err := io.Copy(f, e.random(n)); err != nil {
		_ = f.Close()
		return fmt.Errorf("edit: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	return e.touch(path)
}

// overwrite replaces n bytes of path at offset at, in place.
func (e *editor) overwrite(path string, at, n int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	b, _ := io.ReadAll(e.random(n))
	if _, err := f.WriteAt(b, at); err != nil {
		_ = f.Close()
		return fmt.Errorf("edit: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	return e.touch(path)
}

// copyFile copies src to a new file dst.
func (e *editor) copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	if _, err := io.CopyBuffer(out, in, make([]byte, 1<<20)); err != nil {
		_ = out.Close()
		return fmt.Errorf("edit: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("edit: %w", err)
	}
	return e.touch(dst)
}

//go:build !linux

package client

import (
	"io/fs"
	"os"
	"time"
)

// writeTemp writes the pieces of data into a new temporary file in dir,
// gives it perm and (unless zero) mtime, fsyncs it if sync, and returns
// its path and stat.
func writeTemp(dir string, data [][]byte, perm fs.FileMode, mtime time.Time, sync bool) (string, FileStat, error) {
	f, err := os.CreateTemp(dir, TempPrefix+"*")
	if err != nil {
		return "", FileStat{}, err
	}
	st, err := fillTemp(f, data, perm, mtime, sync)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return "", FileStat{}, err
	}
	return f.Name(), st, nil
}

func fillTemp(f *os.File, data [][]byte, perm fs.FileMode, mtime time.Time, sync bool) (FileStat, error) {
	for _, d := range data {
		if _, err := f.Write(d); err != nil {
			return FileStat{}, err
		}
	}
	if err := f.Chmod(perm.Perm()); err != nil {
		return FileStat{}, err
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(f.Name(), time.Time{}, mtime); err != nil {
			return FileStat{}, err
		}
	}
	if sync {
		if err := f.Sync(); err != nil {
			return FileStat{}, err
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return FileStat{}, err
	}
	return statOf(fi), nil
}

// renameOver renames tmp over target.
func renameOver(tmp, target string) error { return os.Rename(tmp, target) }

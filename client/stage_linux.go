package client

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// writeTemp writes the pieces of data into a new temporary file in dir,
// gives it perm and (unless zero) mtime, fsyncs it if sync, and returns
// its path and stat. Through a bare descriptor, as openRegular reads: an
// *os.File costs four fcntl and a failing epoll_ctl per file, and a pull
// of many small files writes tens of thousands.
func writeTemp(dir string, data [][]byte, perm fs.FileMode, mtime time.Time, sync bool) (string, FileStat, error) {
	var fd int
	var name string
	for try := 0; ; try++ {
		name = filepath.Join(dir, TempPrefix+strconv.FormatUint(uint64(rand.Uint32()), 10))
		err := retryEINTR(func() (err error) {
			fd, err = unix.Open(name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			return err
		})
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || try >= 100 {
			return "", FileStat{}, &fs.PathError{Op: "create", Path: name, Err: err}
		}
	}
	f := &regularFile{fd: fd, name: name}
	st, err := f.writeAll(data, perm, mtime, sync)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = unix.Unlink(name)
		return "", FileStat{}, err
	}
	return name, st, nil
}

// writeAll writes data, sets perm and mtime, syncs if asked and returns
// the file's stat.
func (f *regularFile) writeAll(data [][]byte, perm fs.FileMode, mtime time.Time, sync bool) (FileStat, error) {
	for _, d := range data {
		for len(d) > 0 {
			var n int
			err := retryEINTR(func() (err error) {
				n, err = unix.Write(f.fd, d)
				return err
			})
			if err != nil {
				return FileStat{}, &fs.PathError{Op: "write", Path: f.name, Err: err}
			}
			d = d[n:]
		}
	}
	if err := retryEINTR(func() error { return unix.Fchmod(f.fd, uint32(perm.Perm())) }); err != nil {
		return FileStat{}, &fs.PathError{Op: "chmod", Path: f.name, Err: err}
	}
	if !mtime.IsZero() {
		ts := []unix.Timespec{{Nsec: unix.UTIME_OMIT}, unix.NsecToTimespec(mtime.UnixNano())}
		if err := retryEINTR(func() error { return unix.UtimesNanoAt(unix.AT_FDCWD, f.name, ts, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
			return FileStat{}, &fs.PathError{Op: "chtimes", Path: f.name, Err: err}
		}
	}
	if sync {
		if err := retryEINTR(func() error { return unix.Fsync(f.fd) }); err != nil {
			return FileStat{}, &fs.PathError{Op: "fsync", Path: f.name, Err: err}
		}
	}
	return f.stat()
}

// renameOver renames tmp over target. os.Rename would first Lstat the
// target, one more system call per file of a batch; the kernel refuses
// to rename a file over a directory all the same (EISDIR).
func renameOver(tmp, target string) error {
	if err := retryEINTR(func() error { return unix.Rename(tmp, target) }); err != nil {
		return &os.LinkError{Op: "rename", Old: tmp, New: target, Err: err}
	}
	return nil
}

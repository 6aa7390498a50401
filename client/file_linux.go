package client

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// regularFile is a regular file opened for reading by openRegular. On
// Linux it is a bare descriptor rather than an *os.File: an *os.File tries
// to register every file with the network poller (an epoll_ctl that fails
// for regular files) and sets a finalizer, costs that show when a sync
// reads tens of thousands of small files, each twice.
type regularFile struct {
	fd   int
	name string
}

// openRegular opens name for reading. O_NONBLOCK keeps a FIFO that has
// replaced a listed regular file from blocking the open, and O_NOFOLLOW
// refuses a symlink put in its place: it is the symlink's target that
// would be read otherwise.
func openRegular(name string) (*regularFile, FileStat, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(name, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if errors.Is(err, unix.ELOOP) {
		return nil, FileStat{}, fmt.Errorf("%w: %s is a symlink", ErrNotRegular, name)
	}
	if err != nil {
		return nil, FileStat{}, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	f := &regularFile{fd: fd, name: name}
	st, err := f.stat()
	if err != nil {
		f.Close()
		return nil, FileStat{}, err
	}
	return f, st, nil
}

// stat returns the file's FileStat, the same as statOf gives for an Lstat
// of it, and fails with ErrNotRegular for anything but a regular file.
func (f *regularFile) stat() (FileStat, error) {
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Fstat(f.fd, &st) }); err != nil {
		return FileStat{}, &fs.PathError{Op: "fstat", Path: f.name, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return FileStat{}, fmt.Errorf("%w: %s is %s", ErrNotRegular, f.name, describeMode(unixMode(st.Mode)))
	}
	return FileStat{
		Size:  st.Size,
		Mode:  st.Mode & uint32(fs.ModePerm),
		MTime: st.Mtim.Nano(),
		CTime: st.Ctim.Nano(),
		Inode: st.Ino,
		Dev:   st.Dev, //nolint:unconvert // Dev is uint32 on some architectures
	}, nil
}

// unixMode is the fs.FileMode type bits of a stat mode, for messages.
func unixMode(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFBLK, unix.S_IFCHR:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

func (f *regularFile) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	err := retryEINTR(func() (err error) {
		n, err = unix.Read(f.fd, p)
		return err
	})
	switch {
	case err != nil:
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: err}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// ReadAt reads len(p) bytes at off, or fails (io.EOF when the file ends
// first), as io.ReaderAt requires.
func (f *regularFile) ReadAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		var n int
		err := retryEINTR(func() (err error) {
			n, err = unix.Pread(f.fd, p[done:], off+int64(done))
			return err
		})
		if err != nil {
			return done, &fs.PathError{Op: "read", Path: f.name, Err: err}
		}
		if n == 0 {
			return done, io.EOF
		}
		done += n
	}
	return done, nil
}

// Close closes the descriptor once; a second Close reports os.ErrClosed.
func (f *regularFile) Close() error {
	if f.fd < 0 {
		return &fs.PathError{Op: "close", Path: f.name, Err: os.ErrClosed}
	}
	fd := f.fd
	f.fd = -1
	// No retry on EINTR: Linux has released the descriptor either way.
	if err := unix.Close(fd); err != nil {
		return &fs.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

func retryEINTR(call func() error) error {
	for {
		if err := call(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

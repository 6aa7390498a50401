//go:build !linux

package client

import (
	"fmt"
	"os"
	"syscall"
)

// regularFile is a regular file opened for reading by openRegular.
type regularFile struct {
	*os.File
}

// openRegular opens name for reading without blocking on a FIFO that may
// have replaced a regular file since it was listed.
func openRegular(name string) (*regularFile, FileStat, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, FileStat{}, err
	}
	rf := &regularFile{f}
	st, err := rf.stat()
	if err != nil {
		f.Close()
		return nil, FileStat{}, err
	}
	return rf, st, nil
}

// stat returns the file's FileStat, and fails with ErrNotRegular for
// anything but a regular file.
func (f *regularFile) stat() (FileStat, error) {
	fi, err := f.Stat()
	if err != nil {
		return FileStat{}, err
	}
	if !fi.Mode().IsRegular() {
		return FileStat{}, fmt.Errorf("%w: %s is %s", ErrNotRegular, f.Name(), describeMode(fi.Mode()))
	}
	return statOf(fi), nil
}

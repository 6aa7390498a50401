package client

import (
	"fmt"
	"io/fs"
	"os"
)

// FileStat is what change detection compares: when all of it is unchanged
// (and the file is not racy, see [IsRacy]) the content is assumed unchanged.
type FileStat struct {
	Size int64
	// Mode holds the permission bits only (fs.ModePerm): setuid, setgid and
	// sticky bits are not synced.
	Mode uint32
	// MTime and CTime are Unix nanoseconds. CTime (inode change time) is 0
	// where the platform does not report it.
	MTime int64
	CTime int64
	// Inode and Dev identify the file; 0 where the platform has none.
	Inode uint64
	Dev   uint64
}

// Same reports whether s and o describe the same file state as far as a
// stat can tell: size, mtime, ctime, inode and mode. Dev is left out: it
// changes when a network file system is remounted, with the files intact.
func (s FileStat) Same(o FileStat) bool {
	return s.Size == o.Size && s.MTime == o.MTime && s.CTime == o.CTime &&
		s.Inode == o.Inode && s.Mode == o.Mode
}

// statOf extracts a FileStat from what Lstat or File.Stat returned.
func statOf(fi fs.FileInfo) FileStat {
	st := FileStat{
		Size:  fi.Size(),
		Mode:  uint32(fi.Mode().Perm()),
		MTime: fi.ModTime().UnixNano(),
	}
	platformStat(fi, &st)
	return st
}

// Stat returns the FileStat of the local file name, without following a
// final symlink. The puller records it after writing a file.
func Stat(name string) (FileStat, error) {
	fi, err := os.Lstat(name)
	if err != nil {
		return FileStat{}, err
	}
	if !fi.Mode().IsRegular() {
		return FileStat{}, fmt.Errorf("%w: %s is %s", ErrNotRegular, name, describeMode(fi.Mode()))
	}
	return statOf(fi), nil
}

// describeMode names the kind of a non-regular file for messages.
func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

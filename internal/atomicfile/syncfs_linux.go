package atomicfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// CanSyncFS reports whether SyncFS works here.
const CanSyncFS = true

// SyncFS makes durable everything written to the file system that holds
// dir, and reports a write-back error of any file on it since the last
// call (Linux 5.8 and later): one syncfs(2) instead of an fsync per file
// and per directory when a batch of staged files is made durable, then
// published. It waits for other programs' dirty data on that file system
// too, which a batch of many small files costs less than its fsyncs.
func SyncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "syncfs", Path: dir, Err: serr}
	}
	return nil
}

//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)

package atomicfile

import (
	"os"
	"syscall"
)

// syncData is fdatasync: the size and the data, not the times.
func syncData(f *os.File) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = syscall.Fdatasync(int(fd)) }); err != nil {
		return err
	}
	return serr
}

// dropCache tells the kernel the first n bytes of f, synced, will not be
// read soon. Errors are ignored: it is only advice.
func dropCache(f *os.File, n int64) {
	const fadvDontNeed = 4 // POSIX_FADV_DONTNEED
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall6(syscall.SYS_FADVISE64, fd, 0, uintptr(n), fadvDontNeed, 0, 0)
	})
}

//go:build linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x)

package cas

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing [off, off+n) of f to
// disk now, without waiting. By the time Sync fsyncs the pack most of its
// bytes are already on disk, so disk writes overlap with hashing and
// compressing the next chunks instead of stalling the Sync. Errors are
// ignored: this is only a hint, fsync remains the guarantee.
func startWriteback(f *os.File, off, n int64) {
	const syncFileRangeWrite = 0x2 // SYNC_FILE_RANGE_WRITE
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
	})
}

package netns

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// inNamespace runs f on a locked thread switched into the network
// namespace mounted at path. The thread goes back to its own namespace
// before it is unlocked; when it cannot, it stays locked and the runtime
// ends it with the goroutine, so no other goroutine ever runs on a thread
// in the wrong namespace. (New threads are not cloned from a locked one:
// the runtime starts them from a clean template thread.)
func inNamespace(path string, f func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("netns: own namespace: %w", err)
			return
		}
		defer home.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("netns: %w", err)
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("netns: enter %s: %w", path, err)
			return
		}
		ferr := f()
		if err := setns(home); err != nil {
			done <- errors.Join(ferr, fmt.Errorf("netns: leave %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

func setns(f *os.File) error {
	return unix.Setns(int(f.Fd()), unix.CLONE_NEWNET)
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Package procstat reads a process's peak resident set size (VmHWM) from
// /proc on Linux.
//
// # Why not rusage
//
// The maximum RSS that wait4 reports for a child is useless here: Go
// starts children with vfork (CLONE_VM), so until exec the child runs in
// the parent's address space, and Linux carries that address space's
// high-water mark into the child's maximum at exec. Every child would
// appear at least as large as the benchmark itself. VmHWM belongs to the
// address space the child got at exec, so it is the child's own; it is
// gone once the child exits, which is why [Watch] polls it.
package procstat

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrNoHWM means the process has no VmHWM line: it is gone, a zombie, or
// this is not Linux.
var ErrNoHWM = errors.New("procstat: no VmHWM")

// HWM is the peak resident set size of pid's current address space, in
// bytes.
func HWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("procstat: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:")
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("procstat: VmHWM %q: %w", rest, err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("procstat: %w", err)
	}
	return 0, ErrNoHWM
}

// ResetHWM sets pid's peak to its current RSS (Linux ≥ 4.0: "5" written
// to clear_refs), so a later HWM is the peak of what happened since.
func ResetHWM(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("procstat: reset peak RSS: %w", err)
	}
	return nil
}

// Watch polls pid's HWM every interval until the returned stop is
// called; stop returns the largest value seen (0 if none). The peak of
// the last interval before the process exits can be missed.
func Watch(pid int, interval time.Duration) (stop func() int64) {
	var (
		mu   sync.Mutex
		peak int64
	)
	sample := func() {
		if v, err := HWM(pid); err == nil {
			mu.Lock()
			peak = max(peak, v)
			mu.Unlock()
		}
	}
	sample()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	var once sync.Once
	return func() int64 {
		once.Do(func() { close(done); <-finished })
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}

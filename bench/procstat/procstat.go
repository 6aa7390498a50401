// Package procstat reads a process's peak resident set size (VmHWM) and
// its processor time from /proc on Linux.
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

// userHZ is the unit of the times in /proc/PID/stat: USER_HZ, which
// Linux fixes at 100 on every architecture Go supports (sysconf's
// _SC_CLK_TCK, which Go does not expose, says the same).
const userHZ = 100

// CPU is the processor time, user and system, pid has used, with that of
// the children it has waited for (a daemon's forked workers).
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("procstat: %w", err)
	}
	return parseStatCPU(string(b))
}

// parseStatCPU sums utime, stime, cutime and cstime (fields 14–17) of a
// /proc/PID/stat line. The command name (field 2) is in parentheses and
// may hold spaces and parentheses itself, so fields are counted from the
// last ')'.
func parseStatCPU(line string) (time.Duration, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, fmt.Errorf("procstat: stat line %q has no command name", tailOf(line))
	}
	fields := strings.Fields(line[i+1:])
	// fields[0] is field 3 (state), so field n is fields[n-3].
	const utime, cstime = 14 - 3, 17 - 3
	if len(fields) <= cstime {
		return 0, fmt.Errorf("procstat: stat line %q has %d fields after the command name", tailOf(line), len(fields))
	}
	var ticks int64
	for _, f := range fields[utime : cstime+1] {
		n, err := strconv.ParseInt(f, 10, 64)
		// 2^36 ticks is 21 years: more is a broken line, and four of
		// them would overflow a Duration.
		if err != nil || n < 0 || n > 1<<36 {
			return 0, fmt.Errorf("procstat: stat line %q: time %q", tailOf(line), f)
		}
		ticks += n
	}
	return time.Duration(ticks) * (time.Second / userHZ), nil
}

func tailOf(s string) string {
	if len(s) > 80 {
		return "…" + s[len(s)-80:]
	}
	return s
}

// Children are the PIDs of pid's living children (not yet waited for),
// from /proc/PID/task/*/children.
func Children(pid int) ([]int, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, fmt.Errorf("procstat: %w", err)
	}
	var out []int
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread ended
		}
		if err != nil {
			return nil, fmt.Errorf("procstat: %w", err)
		}
		for _, f := range strings.Fields(string(b)) {
			c, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("procstat: children of %d: %q", pid, f)
			}
			out = append(out, c)
		}
	}
	return out, nil
}

package procstat

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"
)

func needProc(t *testing.T) {
	t.Helper()
	if _, err := HWM(os.Getpid()); err != nil {
		t.Skip("no /proc VmHWM here:", err)
	}
}

func TestHWMAndReset(t *testing.T) {
	needProc(t)
	before, _ := HWM(os.Getpid())
	big := make([]byte, 64<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	after, err := HWM(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after < before+60<<20 {
		t.Fatalf("touching 64 MiB moved the peak from %d to %d", before, after)
	}
	big = nil
	_ = big
	if err := ResetHWM(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	if _, err := HWM(1 << 30); err == nil {
		t.Fatal("a process that does not exist has a peak")
	}
}

func TestWatchChild(t *testing.T) {
	needProc(t)
	cmd := exec.Command("sleep", "0.3")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	stop := Watch(cmd.Process.Pid, 10*time.Millisecond)
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	peak := stop()
	// sleep is a few hundred KiB, far below this test process.
	self, _ := HWM(os.Getpid())
	if peak <= 0 || peak >= self {
		t.Fatalf("sleep's peak %d, this process's %d", peak, self)
	}
	if again := stop(); again != peak {
		t.Fatalf("a second stop returned %d", again)
	}
}

func TestParseStatCPU(t *testing.T) {
	// Fields 14–17 are 250, 40, 7 and 3 ticks: 3 s in all.
	const rest = " S 1 2 3 4 5 6 7 8 9 10 250 40 7 3 20 0 1 0 100 2000 300"
	tests := []struct {
		name string
		line string
		want time.Duration
		ok   bool
	}{
		{"plain", "4242 (quics)" + rest, 3 * time.Second, true},
		{"name with spaces and parens", "4242 (a) (b c))" + rest, 3 * time.Second, true},
		{"no name", "4242 quics" + rest, 0, false},
		{"short", "4242 (quics) S 1 2 3", 0, false},
		{"not a number", "4242 (quics) S 1 2 3 4 5 6 7 8 9 10 x 40 7 3 20", 0, false},
		{"too large", "4242 (quics) S 1 2 3 4 5 6 7 8 9 10 9223372036854775807 40 7 3 20", 0, false},
		{"negative", "4242 (quics) S 1 2 3 4 5 6 7 8 9 10 -1 40 7 3 20", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU(tt.line)
			if (err == nil) != tt.ok || got != tt.want {
				t.Fatalf("parseStatCPU = %v, %v; want %v (ok %v)", got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestCPUCountsWork(t *testing.T) {
	needProc(t)
	before, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// A fixed amount of work (a few hundred ms of one core), so that
	// the test does not depend on how busy the machine is.
	x := uint64(1)
	for range 300_000_000 {
		x = x*6364136223846793005 + 1442695040888963407
	}
	after, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after-before < 50*time.Millisecond {
		t.Fatalf("3e8 multiplications added %v of CPU (x %d)", after-before, x)
	}
	if _, err := CPU(1 << 30); err == nil {
		t.Fatal("a process that does not exist has a CPU time")
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add("4242 (quics) S 1 2 3 4 5 6 7 8 9 10 250 40 7 3 20 0 1 0 100 2000 300")
	f.Add("1 ((x)) R")
	f.Fuzz(func(t *testing.T, line string) {
		d, err := parseStatCPU(line)
		if err == nil && d < 0 {
			t.Fatalf("negative time %v from %q", d, line)
		}
	})
}

func TestChildrenAndTheirCPU(t *testing.T) {
	needProc(t)
	self := os.Getpid()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d/children", self, self)); err != nil {
		t.Skip("this kernel has no /proc/PID/task/TID/children (CONFIG_PROC_CHILDREN):", err)
	}
	before, err := CPU(self)
	if err != nil {
		t.Fatal(err)
	}
	// A child that spins for a while: its CPU joins ours once waited for.
	cmd := exec.Command("sh", "-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
	if err := cmd.Start(); err != nil {
		t.Skip("no sh:", err)
	}
	kids, err := Children(self)
	if err != nil || !slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("children of the test %v, %v; want %d among them", kids, err, cmd.Process.Pid)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	kids, err = Children(self)
	if err != nil || slices.Contains(kids, cmd.Process.Pid) {
		t.Errorf("children after the wait %v, %v", kids, err)
	}
	after, err := CPU(self)
	if err != nil {
		t.Fatal(err)
	}
	child := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	// Both clocks count in ticks of 10 ms; allow one tick each.
	if got := after - before; got+20*time.Millisecond < child {
		t.Errorf("CPU grew by %v while the child used %v", got, child)
	}
}

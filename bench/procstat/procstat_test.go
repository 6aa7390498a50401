package procstat

import (
	"os"
	"os/exec"
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

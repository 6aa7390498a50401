package server

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/quic-s/quics/syncproto/syncpb"
)

func mustInUse(t *testing.T, dir string, want bool) {
	t.Helper()
	got, err := DataDirInUse(dir)
	if err != nil || got != want {
		t.Fatalf("DataDirInUse(%s) = %v, %v; want %v", dir, got, err, want)
	}
}

func TestDataDirLockInProcess(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	mustInUse(t, dir, false)
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("DataDirInUse created the data dir: %v", err)
	}

	e := newEnvWith(t, testOptions(dir))
	mustInUse(t, dir, true)

	second, err := Open(context.Background(), e.opts)
	if err == nil {
		_ = second.Close()
		t.Fatal("a second Open of a data dir in use succeeded")
	}
	if !errors.Is(err, ErrDataDirInUse) {
		t.Fatalf("second Open: %v, want ErrDataDirInUse", err)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "another quics process") {
		t.Errorf("second Open: %q should name %s and another quics process", msg, dir)
	}
	// The failed Open released nothing of the first server's: it still
	// works, and still holds the lock.
	if _, err := e.srv.RegisterClient(context.Background(), testAddr,
		&syncpb.RegisterClientRequest{ClientId: uuid.NewString(), Name: "d", ServerPassword: testPassword}); err != nil {
		t.Errorf("first server after the refused Open: %v", err)
	}
	mustInUse(t, dir, true)

	// Close releases it: the directory opens again.
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	mustInUse(t, dir, false)
	e.reopen(t, e.opts) // Close again is a no-op
	mustInUse(t, dir, true)
}

func TestDataDirInUseCreatesNothing(t *testing.T) {
	dir := t.TempDir() // exists, but no server ever ran here
	mustInUse(t, dir, false)
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("DataDirInUse left %v in the directory", entries)
	}
}

// lockHelperEnv names the data dir a re-executed test binary locks.
const lockHelperEnv = "QUICS_TEST_LOCK_DATA_DIR"

// TestLockHelperProcess is not a test: TestDataDirLockAcrossProcesses runs
// the test binary again with it, to hold the lock from another process.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv(lockHelperEnv)
	if dir == "" {
		t.Skip("helper process only")
	}
	lock, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("locked\n")
	// Hold the lock until the parent closes our stdin.
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = lock.Unlock()
}

func TestDataDirLockAcrossProcesses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper process said %q, %v", line, err)
	}

	mustInUse(t, dir, true)
	if srv, err := Open(context.Background(), testOptions(dir)); !errors.Is(err, ErrDataDirInUse) {
		if err == nil {
			_ = srv.Close()
		}
		t.Fatalf("Open while another process holds the lock: %v, want ErrDataDirInUse", err)
	}

	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v", err)
	}
	mustInUse(t, dir, false)
	newEnvWith(t, testOptions(dir))
	mustInUse(t, dir, true)
}

package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteFileReplacesWithPermissions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret")
	for _, content := range []string{"first", "second, longer than the first"} {
		if err := WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read back %q, %v; want %q", got, err, content)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v (%v); want only the target, no temporary file", entries, err)
	}
}

func TestWriteFileFailureLeavesTargetAndNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "target")
	if err := WriteFile(path, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A directory where the rename must go makes the write fail late.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "inside"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(blocked, []byte("x"), 0o644); err == nil || !strings.Contains(err.Error(), "blocked") {
		t.Fatalf("write over a non-empty directory: %v, want an error naming it", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if got, _ := os.ReadFile(path); string(got) != "kept" {
		t.Errorf("unrelated target changed: %q", got)
	}
}

func TestSyncDirMissing(t *testing.T) {
	if err := SyncDir(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("SyncDir of a missing directory succeeded")
	}
}

func TestPendingCommitAndAbort(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "f")
	mtime := time.Unix(1_600_000_000, 123456789)

	p, err := Create(target, ".pending-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Write([]byte("streamed")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(target); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("target visible before Commit: %v", err)
	}
	fi, err := p.Commit(0o640, mtime)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != int64(len("streamed")) {
		t.Errorf("Commit reported size %d", fi.Size())
	}
	got, err := os.Stat(target)
	if err != nil || got.Mode().Perm() != 0o640 || !got.ModTime().Equal(mtime) {
		t.Fatalf("committed file: %v, %v; want mode 0640 and mtime %v", got, err, mtime)
	}
	p.Abort() // after Commit: nothing happens
	if _, err := os.Stat(target); err != nil {
		t.Fatalf("Abort after Commit removed the target: %v", err)
	}
	if _, err := p.Commit(0o600, time.Time{}); err == nil {
		t.Error("a second Commit succeeded")
	}

	q, err := Create(target, ".pending-*")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Write([]byte("discarded")); err != nil {
		t.Fatal(err)
	}
	q.Abort()
	if b, _ := os.ReadFile(target); string(b) != "streamed" {
		t.Errorf("an aborted write changed the target: %q", b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Abort, want only the target", len(entries))
	}
}

func TestPendingSyncWhileWriting(t *testing.T) {
	target := filepath.Join(t.TempDir(), "f")
	p, err := Create(target, ".pending-*")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Abort()
	part := []byte(strings.Repeat("0123456789abcdef", 4096))
	synced := make(chan error, 1)
	go func() {
		var err error
		for range 8 {
			if err = p.Sync(); err != nil {
				break
			}
		}
		synced <- err
	}()
	for range 32 {
		if _, err := p.Write(part); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-synced; err != nil {
		t.Fatalf("Sync while writing: %v", err)
	}
	if _, err := p.Commit(0o644, time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Dropped from the cache or not, every byte reads back.
	if got, err := os.ReadFile(target); err != nil || string(got) != strings.Repeat(string(part), 32) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}

	q, err := Create(target, ".pending-*")
	if err != nil {
		t.Fatal(err)
	}
	q.Abort()
	if err := q.Sync(); err == nil {
		t.Error("Sync after Abort succeeded")
	}
}

// SyncFS syncs the file system of a directory that exists.
func TestSyncFS(t *testing.T) {
	if !CanSyncFS {
		if err := SyncFS(t.TempDir()); !errors.Is(err, errors.ErrUnsupported) {
			t.Fatalf("SyncFS where it cannot work: %v, want ErrUnsupported", err)
		}
		return
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SyncFS(dir); err != nil {
		t.Fatal(err)
	}
}

func TestSyncFSMissingDir(t *testing.T) {
	if err := SyncFS(filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Fatal("SyncFS of a missing directory succeeded")
	}
}

//go:build linux

package client

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestOpenRegularRefusesOthers(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "target", []byte("secret"))
	if err := os.Symlink(filepath.Join(dir, "target"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file replaced after the walk listed it as regular: neither a
	// symlink's target nor a FIFO (which would block) may be read.
	for _, name := range []string{"link", "sub", "fifo"} {
		t.Run(name, func(t *testing.T) {
			f, _, err := openRegular(filepath.Join(dir, name))
			if !errors.Is(err, ErrNotRegular) {
				if f != nil {
					f.Close()
				}
				t.Fatalf("openRegular(%s) = %v, want ErrNotRegular", name, err)
			}
		})
	}
	if _, _, err := openRegular(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want ErrNotExist", err)
	}
}

package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/quic-s/quics/internal/relpath"
)

func TestLocate(t *testing.T) {
	ctx := context.Background()
	h := openTestHome(t, t.TempDir())
	base := t.TempDir()
	outer := filepath.Join(base, "outer")
	inner := filepath.Join(outer, "nested", "inner")
	other := filepath.Join(base, "other")
	for _, d := range []string{inner, other} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A root registered through a symlink to its directory.
	link := filepath.Join(base, "link-to-other")
	if err := os.Symlink(other, link); err != nil {
		t.Fatal(err)
	}
	for name, dir := range map[string]string{"outer": outer, "inner": inner, "linked": link} {
		if err := h.State().PutRoot(ctx, Root{Name: name, Dir: dir, Chunking: testParams}); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, outer, "docs/a.txt", []byte("a"))
	t.Chdir(filepath.Join(outer, "docs"))

	tests := []struct {
		name     string
		arg      string
		wantRoot string
		wantPath string
		wantErr  error
	}{
		{"absolute", filepath.Join(outer, "docs", "a.txt"), "outer", "docs/a.txt", nil},
		{"relative to the working directory", "a.txt", "outer", "docs/a.txt", nil},
		{"relative with dot-dot", filepath.Join("..", "top.txt"), "outer", "top.txt", nil},
		{"missing file", filepath.Join(outer, "deleted", "gone.txt"), "outer", "deleted/gone.txt", nil},
		{"nested root wins", filepath.Join(inner, "x", "y.txt"), "inner", "x/y.txt", nil},
		{"beside the nested root", filepath.Join(outer, "nested", "z.txt"), "outer", "nested/z.txt", nil},
		{"root through its symlink", filepath.Join(link, "f.txt"), "linked", "f.txt", nil},
		{"root through its real directory", filepath.Join(other, "sub", "f.txt"), "linked", "sub/f.txt", nil},
		{"outside every root", filepath.Join(base, "elsewhere.txt"), "", "", ErrOutsideRoots},
		{"prefix of a root name is not in it", outer + "-not.txt", "", "", ErrOutsideRoots},
		{"a root's directory itself", outer, "", "", ErrOutsideRoots},
		{"empty", "", "", "", ErrOutsideRoots},
		{"a name the sync path rule refuses", filepath.Join(outer, "back\\slash.txt"), "", "", relpath.ErrInvalidPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, rel, err := h.State().Locate(ctx, tt.arg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Locate(%q) = %q %q, %v; want %v", tt.arg, r.Name, rel, err, tt.wantErr)
				}
				return
			}
			if err != nil || r.Name != tt.wantRoot || rel != tt.wantPath {
				t.Fatalf("Locate(%q) = %q %q, %v; want %q %q", tt.arg, r.Name, rel, err, tt.wantRoot, tt.wantPath)
			}
		})
	}
}

func TestLocateWithoutRoots(t *testing.T) {
	h := openTestHome(t, t.TempDir())
	_, _, err := h.State().Locate(context.Background(), "/some/file")
	if !errors.Is(err, ErrOutsideRoots) {
		t.Fatalf("Locate with no roots: %v", err)
	}
}

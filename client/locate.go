package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/quic-s/quics/internal/relpath"
)

// Locate maps a local file name, absolute or relative to the working
// directory, to the root that holds it and its sync path. The file need
// not exist (a deleted file still has a history). When roots are nested
// the innermost wins.
//
// The name is first compared with the roots' directories as written; if
// none holds it, both sides are compared again with symlinks resolved, so
// that a root registered through a symlinked directory (/tmp on macOS) is
// still found. A name in no root, or naming a root's directory itself,
// fails with ErrOutsideRoots; a name the sync path rule refuses fails with
// its relpath error.
func (s *State) Locate(ctx context.Context, name string) (Root, string, error) {
	if name == "" {
		return Root{}, "", fmt.Errorf("%w: empty path", ErrOutsideRoots)
	}
	abs, err := filepath.Abs(name)
	if err != nil {
		return Root{}, "", fmt.Errorf("client: locate %s: %w", name, err)
	}
	roots, err := s.Roots(ctx)
	if err != nil {
		return Root{}, "", err
	}
	r, rel, ok := locateIn(roots, abs, func(r Root) string { return r.Dir })
	if !ok {
		resolved := resolveExisting(abs)
		r, rel, ok = locateIn(roots, resolved, func(r Root) string {
			if d, err := filepath.EvalSymlinks(r.Dir); err == nil {
				return d
			}
			return r.Dir
		})
	}
	if !ok {
		names := make([]string, 0, len(roots))
		for _, r := range roots {
			names = append(names, fmt.Sprintf("%q at %s", r.Name, r.Dir))
		}
		if len(names) == 0 {
			return Root{}, "", fmt.Errorf("%w: %s (no root is synced here)", ErrOutsideRoots, abs)
		}
		return Root{}, "", fmt.Errorf("%w: %s is in none of the roots %s", ErrOutsideRoots, abs, strings.Join(names, ", "))
	}
	if rel == "" {
		return Root{}, "", fmt.Errorf("%w: %s is the directory of root %q, not a file in it", ErrOutsideRoots, abs, r.Name)
	}
	if err := relpath.Check(rel); err != nil {
		return Root{}, "", fmt.Errorf("client: %s in root %q: %w", abs, r.Name, err)
	}
	return r, rel, nil
}

// locateIn finds the innermost root whose directory (as dirOf gives it)
// holds the absolute name abs, and abs's sync path in it ("" for the
// directory itself).
func locateIn(roots []Root, abs string, dirOf func(Root) string) (Root, string, bool) {
	var best Root
	bestDir, bestRel, found := "", "", false
	for _, r := range roots {
		dir := filepath.Clean(dirOf(r))
		rel, err := filepath.Rel(dir, abs)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
			continue
		}
		if found && len(dir) <= len(bestDir) {
			continue
		}
		if rel == "." {
			rel = ""
		}
		best, bestDir, bestRel, found = r, dir, filepath.ToSlash(rel), true
	}
	return best, bestRel, found
}

// resolveExisting resolves the symlinks of the longest existing ancestor
// of abs (abs itself included) and appends the rest unchanged.
func resolveExisting(abs string) string {
	rest := ""
	p := abs
	for {
		if _, err := os.Lstat(p); err == nil {
			if target, err := filepath.EvalSymlinks(p); err == nil {
				return filepath.Join(target, rest)
			}
			return abs
		} else if !errors.Is(err, fs.ErrNotExist) {
			return abs
		}
		parent := filepath.Dir(p)
		if parent == p {
			return abs
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

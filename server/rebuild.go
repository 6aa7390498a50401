package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/quic-s/quics/manifest"
)

// ViewsReport says what RebuildViews did.
type ViewsReport struct {
	// Roots rebuilt.
	Roots int
	// Latest and Conflict count the files written under latest/ and
	// conflict/.
	Latest, Conflict int
	// Removed counts the files removed because no head or conflict
	// explains them any more.
	Removed int
}

// RebuildViews recreates the views of root, or of every root when root is
// "", from the manifest, and waits until they are written: latest/<path>
// for every head that is not a deletion, and conflict/<path>/<side> for
// every side of every conflict, with the mode and mtime the background
// views give them. Files under latest/ and conflict/ that the manifest
// no longer explains are removed, with the directories they leave empty
// (stray temporary files of an interrupted write too); history/ is left
// alone. It works whether Options.Views is on or off. While a root is
// rebuilt no view job runs, so the two never undo each other; commits
// meanwhile queue their jobs, which run after it.
//
// A file whose content cannot be read (damaged chunks) is skipped and
// reported in the returned error, after the clients were asked to send
// it again; the rest of the rebuild goes on.
func (s *Server) RebuildViews(ctx context.Context, root string) (ViewsReport, error) {
	var roots []manifest.Root
	if root != "" {
		r, err := s.rootByName(ctx, root)
		if err != nil {
			return ViewsReport{}, err
		}
		roots = []manifest.Root{r}
	} else {
		var err error
		if roots, err = s.db.ListRoots(ctx); err != nil {
			return ViewsReport{}, fmt.Errorf("server: list roots: %w", err)
		}
	}
	var rep ViewsReport
	var errs []error
	for _, r := range roots {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		done, err := s.rebuildRoot(ctx, r, &rep)
		if done {
			rep.Roots++
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("server: rebuild views of root %q: %w", r.Name, err))
		}
	}
	s.log.Info("server: views rebuilt", "roots", rep.Roots, "latest", rep.Latest, "conflict", rep.Conflict,
		"removed", rep.Removed, "errors", len(errs))
	return rep, errors.Join(errs...)
}

// rebuildRoot rebuilds one root's views and reports whether the root was
// still there to rebuild.
func (s *Server) rebuildRoot(ctx context.Context, r manifest.Root, rep *ViewsReport) (bool, error) {
	s.viewLock.Lock()
	defer s.viewLock.Unlock()
	// Under the lock: a root removed since the listing has had its folder
	// deleted, and it must stay deleted.
	if _, err := s.db.RootByID(ctx, r.ID); errors.Is(err, manifest.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	w := s.viewWriter()
	latest, err := w.rootDir(r.Name, latestDir)
	if err != nil {
		return false, err
	}
	conflicts, err := w.rootDir(r.Name, conflictDir)
	if err != nil {
		return false, err
	}

	type file struct {
		path string
		head manifest.Head
	}
	var files []file
	err = s.db.ListHeads(ctx, r.ID, func(p string, h manifest.Head) error {
		if !h.Deleted {
			files = append(files, file{p, h})
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	// In commit order, as the background views wrote them: where a file
	// and a directory claim one name ("a" and "a/b"), the later commit
	// wins, as it did there.
	slices.SortFunc(files, func(a, b file) int { return cmp.Compare(a.head.Seq, b.head.Seq) })
	var errs []error
	wantLatest := make(map[string]bool, len(files))
	for _, f := range files {
		wantLatest[filepath.FromSlash(f.path)] = true
		err := s.writeView(ctx, latest, f.path, f.head.Hash, f.head.Mode, f.head.MTime)
		w.askIfDamaged(ctx, viewJob{kind: viewLatest, root: r.ID, rootName: r.Name, path: f.path}, f.head.Hash, err)
		if err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", f.path, err))
			continue
		}
		rep.Latest++
	}

	cs, err := s.db.ListConflicts(ctx, r.ID)
	if err != nil {
		return false, err
	}
	wantConflict := make(map[string]bool)
	for _, c := range cs {
		for _, cand := range c.Candidates {
			if cand.Deleted {
				continue // nothing to show, as in the background views
			}
			rel := c.Path + "/" + s.candidateName(ctx, c.Path, cand)
			wantConflict[filepath.FromSlash(rel)] = true
			err := s.writeView(ctx, conflicts, rel, cand.Hash, cand.Mode, cand.MTime)
			w.askIfDamaged(ctx, viewJob{kind: viewConflict, root: r.ID, rootName: r.Name, path: c.Path}, cand.Hash, err)
			if err != nil {
				errs = append(errs, fmt.Errorf("conflict on %q: %w", c.Path, err))
				continue
			}
			rep.Conflict++
		}
	}

	for _, v := range []struct {
		base string
		want map[string]bool
	}{{latest, wantLatest}, {conflicts, wantConflict}} {
		n, err := removeUnexplained(v.base, v.want)
		rep.Removed += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	return true, errors.Join(errs...)
}

// removeUnexplained removes everything under base that is not a
// directory and not in want (relative paths, in the platform's form), then
// the directories left empty, and returns how many files it removed.
// Symlinks are removed, never followed.
func removeUnexplained(base string, want map[string]bool) (int, error) {
	var dirs []string
	removed := 0
	var errs []error
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			errs = append(errs, err)
			return nil
		}
		if p == base {
			return nil
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		rel, err := filepath.Rel(base, p)
		if err != nil {
			return err
		}
		if want[rel] {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			return nil
		}
		removed++
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	// Deepest first; a directory that is not empty stays.
	for _, d := range slices.Backward(dirs) {
		_ = os.Remove(d)
	}
	return removed, errors.Join(errs...)
}

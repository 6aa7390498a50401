package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/quic-s/quics/internal/atomicfile"
	"github.com/quic-s/quics/internal/relpath"
)

// TempPrefix starts the name of every temporary file this package creates
// inside a root. Such names are reserved: the scanner ignores them and
// CleanTemps removes them.
const TempPrefix = ".qic-tmp-"

// IsTempName reports whether the base name name is reserved for this
// package's temporary files.
func IsTempName(name string) bool { return strings.HasPrefix(name, TempPrefix) }

// WriteFileAtomic writes the file relPath under the root directory root:
// fill writes the content into a temporary file in the target's directory,
// which is then given mode (permission bits) and mtime, fsynced, renamed
// over the target, and the directory fsynced. Whatever fails, the target is
// either its old self or the complete new file, never a partial one; a
// temporary file left by a crash is removed by [CleanTemps].
//
// relPath must pass relpath.Check. Missing parent directories are created;
// a parent that is a file fails with ErrParentNotDir, one that is a symlink
// with ErrSymlink (a write never goes through a symlink, which could point
// out of the root). A target that is a directory fails with ErrTargetIsDir,
// one that is a symlink with ErrSymlink.
//
// The returned FileStat is the new file's, for its record; the caller sets
// the record's ScannedAt to a time taken before calling, so that a local
// write racing with this one is caught by the racy rule.
//
// The mtime is set before the rename, so the file never appears at the
// target with another one: a scan in between would take it for a local
// edit.
func WriteFileAtomic(ctx context.Context, root, relPath string, mode fs.FileMode, mtime time.Time, fill func(w io.Writer) error) (FileStat, error) {
	target, err := prepareTarget(root, relPath, nil)
	if err != nil {
		return FileStat{}, err
	}
	st, err := atomicWrite(ctx, target, mode.Perm(), mtime, fill)
	if err != nil {
		return FileStat{}, fmt.Errorf("client: write %q: %w", relPath, err)
	}
	return st, nil
}

// prepareTarget checks relPath, creates its missing parents and checks
// that what is at its target may be replaced; it returns the target.
// Directories already in checked (relative paths; nil: none) are not
// looked at again, and relPath's parent is added to it.
func prepareTarget(root, relPath string, checked map[string]bool) (string, error) {
	target, err := relpath.Join(root, relPath)
	if err != nil {
		return "", err
	}
	if IsTempName(filepath.Base(target)) {
		return "", fmt.Errorf("%w: %q: the name prefix %q is reserved for temporary files", ErrInvalidName, relPath, TempPrefix)
	}
	parent := path.Dir(relPath)
	if !checked[parent] {
		if err := makeParents(root, relPath); err != nil {
			return "", err
		}
		if checked != nil {
			checked[parent] = true
		}
	}
	if err := checkReplaceable(target, relPath); err != nil {
		return "", err
	}
	return target, nil
}

// StagedFile is a file written next to its target by StageFile: complete,
// but neither durable (unless staged with sync) nor visible until Publish.
type StagedFile struct {
	tmp     string
	relPath string
	target  string
	st      FileStat // as written
}

// StageFile is the first half of WriteFileAtomic for many files made
// durable together: it writes the pieces of data into a temporary file
// next to relPath's target, with mode and mtime, fsynced only if sync. The
// caller makes the staged files durable (atomicfile.SyncFS of the root, or
// sync here), then publishes each and makes the renames durable. checked
// is prepareTarget's: the batch's directories already made and checked.
func StageFile(ctx context.Context, root, relPath string, mode fs.FileMode, mtime time.Time, sync bool, data [][]byte, checked map[string]bool) (*StagedFile, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	target, err := prepareTarget(root, relPath, checked)
	if err != nil {
		return nil, err
	}
	tmp, st, err := writeTemp(filepath.Dir(target), data, mode, mtime, sync)
	if err != nil {
		return nil, fmt.Errorf("client: write %q: %w", relPath, err)
	}
	return &StagedFile{tmp: tmp, relPath: relPath, target: target, st: st}, nil
}

// Publish renames the staged file over its target and returns the stat a
// scan will see, for its record. The rename is not durable until the
// directory is synced. A failed Publish removes the staged file.
func (s *StagedFile) Publish() (FileStat, error) {
	if err := renameOver(s.tmp, s.target); err != nil {
		s.Abort()
		return FileStat{}, fmt.Errorf("client: write %q: %w", s.relPath, err)
	}
	return statPublished(s.target, s.st), nil
}

// Abort removes the staged file; the target is left as it is.
func (s *StagedFile) Abort() { _ = os.Remove(s.tmp) }

// checkReplaceable fails when target exists and is not a regular file.
func checkReplaceable(target, relPath string) error {
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("client: %q: %w", relPath, err)
	case fi.IsDir():
		return fmt.Errorf("%w: %q", ErrTargetIsDir, relPath)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %q is a symlink; it is not synced and not replaced", ErrSymlink, relPath)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%w: %q is %s", ErrNotRegular, relPath, describeMode(fi.Mode()))
	}
	return nil
}

// checkRootDir fails with ErrRootMissing unless root is a directory. The
// root itself may be a symlink: the user chose it.
func checkRootDir(root string) error {
	fi, err := os.Stat(root)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRootMissing, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", ErrRootMissing, root)
	}
	return nil
}

// makeParents creates the missing parent directories of relPath under root,
// one level at a time so that no existing symlink is followed.
func makeParents(root, relPath string) error {
	if err := checkRootDir(root); err != nil {
		return err
	}
	segs := strings.Split(relPath, "/")
	dir := root
	for i, seg := range segs[:len(segs)-1] {
		dir = filepath.Join(dir, seg)
		here := strings.Join(segs[:i+1], "/")
		fi, err := os.Lstat(dir)
		if errors.Is(err, fs.ErrNotExist) {
			err = os.Mkdir(dir, 0o755)
			if errors.Is(err, fs.ErrExist) { // created concurrently
				fi, err = os.Lstat(dir)
			} else if err == nil {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("client: parent %q of %q: %w", here, relPath, err)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("%w: parent %q of %q is a symlink", ErrSymlink, here, relPath)
		case !fi.IsDir():
			return fmt.Errorf("%w: parent %q of %q", ErrParentNotDir, here, relPath)
		}
	}
	return nil
}

// checkParents is makeParents without creating anything; ok is false when
// a parent is missing.
func checkParents(root, relPath string) (ok bool, err error) {
	if err := checkRootDir(root); err != nil {
		return false, err
	}
	segs := strings.Split(relPath, "/")
	dir := root
	for i, seg := range segs[:len(segs)-1] {
		dir = filepath.Join(dir, seg)
		here := strings.Join(segs[:i+1], "/")
		fi, err := os.Lstat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return false, nil
		case err != nil:
			return false, fmt.Errorf("client: parent %q of %q: %w", here, relPath, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return false, fmt.Errorf("%w: parent %q of %q is a symlink", ErrSymlink, here, relPath)
		case !fi.IsDir():
			return false, fmt.Errorf("%w: parent %q of %q", ErrParentNotDir, here, relPath)
		}
	}
	return true, nil
}

// ctxWriter stops a fill function at the next write once ctx is done.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// atomicWrite writes target through a temporary file in its directory. A
// zero mtime leaves the mtime as written.
func atomicWrite(ctx context.Context, target string, perm fs.FileMode, mtime time.Time, fill func(w io.Writer) error) (st FileStat, err error) {
	if err := ctx.Err(); err != nil {
		return FileStat{}, err
	}
	dir := filepath.Dir(target)
	f, err := atomicfile.Create(target, TempPrefix+"*")
	if err != nil {
		return FileStat{}, err
	}
	if err := fill(ctxWriter{ctx, f}); err != nil {
		f.Abort()
		return FileStat{}, fmt.Errorf("fill: %w", err)
	}
	if err := ctx.Err(); err != nil {
		f.Abort()
		return FileStat{}, err
	}
	fi, err := f.Commit(perm, mtime)
	if err != nil {
		return FileStat{}, err
	}
	st = statPublished(target, statOf(fi))
	if err := atomicfile.SyncDir(dir); err != nil {
		return st, err
	}
	return st, nil
}

// statPublished returns the stat of the file just renamed to target,
// written with stat st. A rename changes the inode's ctime on most file
// systems; the stat after it is the one a scan will see. Only if the
// target was already replaced by someone else is st kept, so the next
// scan re-reads it.
func statPublished(target string, st FileStat) FileStat {
	if after, err := os.Lstat(target); err == nil && after.Mode().IsRegular() {
		if ast := statOf(after); ast.Inode == st.Inode && ast.Size == st.Size && ast.MTime == st.MTime {
			return ast
		}
	}
	return st
}

// RemoveFile deletes the file relPath under root (a pulled deletion) and
// then every parent directory left empty, up to but not including root. A
// missing file is not an error. A directory at relPath fails with
// ErrTargetIsDir, a symlink at or above it with ErrSymlink: only regular
// files inside the root are ever removed.
func RemoveFile(ctx context.Context, root, relPath string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	target, err := relpath.Join(root, relPath)
	if err != nil {
		return err
	}
	ok, err := checkParents(root, relPath)
	if err != nil || !ok {
		return err
	}
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("client: remove %q: %w", relPath, err)
	case fi.IsDir():
		return fmt.Errorf("%w: %q", ErrTargetIsDir, relPath)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%w: %q is a symlink; it is not synced and not removed", ErrSymlink, relPath)
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("client: remove %q: %w", relPath, err)
	}
	cleanRoot := filepath.Clean(root)
	dir := filepath.Dir(target)
	for dir != cleanRoot && strings.HasPrefix(dir, cleanRoot+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			break // not empty (or not ours to remove): stop climbing
		}
		dir = filepath.Dir(dir)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("client: remove %q: sync %s: %w", relPath, dir, err)
	}
	return nil
}

// CleanTemps removes the temporary files a crash left under root and
// returns how many it removed. Call it before a sync pass starts, while no
// write is in progress (the home lock keeps other qic processes out).
// Directories that cannot be read are skipped.
func CleanTemps(ctx context.Context, root string) (int, error) {
	if err := checkRootDir(root); err != nil {
		return 0, err
	}
	removed := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err != nil {
			if path == root {
				return err
			}
			return nil // unreadable: nothing of ours can be in it
		}
		if d.Type().IsRegular() && IsTempName(d.Name()) {
			if err := removeTemp(path); err != nil {
				return err
			}
			removed++
		}
		return nil
	})
	return removed, err
}

func removeTemp(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("client: remove temporary file %s: %w", name, err)
	}
	return nil
}

// SafeToReplace reports whether a pull may replace (or delete) the local
// file at relPath under root, whose record is rec (nil when the state has
// none). It is safe only when the local file is exactly what the record
// says and the record has no pending local change: then the local file is
// still the base the server knows, and nothing local is lost.
//
// It re-stats the file and, when the stat differs or is racy (see
// [IsRacy]), re-hashes it. The puller calls it right before the rename.
// A write that lands between this check and the rename is still lost: the
// window is a few system calls long, and closing it would need the file
// system to swap files conditionally, which POSIX does not offer.
func SafeToReplace(ctx context.Context, root, relPath string, rec *FileRecord) (bool, error) {
	target, err := relpath.Join(root, relPath)
	if err != nil {
		return false, err
	}
	if err := checkRootDir(root); err != nil {
		return false, err
	}
	return safeToReplaceTarget(ctx, target, relPath, rec)
}

// safeToReplaceTarget is SafeToReplace of the path target, whose root the
// caller has checked.
func safeToReplaceTarget(ctx context.Context, target, relPath string, rec *FileRecord) (bool, error) {
	if rec != nil && rec.Pending {
		return false, nil
	}
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		// Nothing to lose, unless the file vanished since it was recorded:
		// that is a local deletion not yet pushed.
		return rec == nil || rec.Deleted, nil
	}
	if err != nil {
		return false, fmt.Errorf("client: stat %q: %w", relPath, err)
	}
	if rec == nil || rec.Deleted || !fi.Mode().IsRegular() {
		return false, nil // a local file (or other thing) the state does not know
	}
	st := statOf(fi)
	if st.Same(rec.Stat) && !IsRacy(st, rec.ScannedAt, DefaultRacyMargin) {
		return true, nil
	}
	if st.Mode != rec.Stat.Mode || st.Size != rec.Stat.Size {
		return false, nil
	}
	f, _, err := openRegular(target)
	if err != nil {
		return false, fmt.Errorf("client: open %q: %w", relPath, err)
	}
	defer f.Close()
	h, _, err := hashContent(ctx, f)
	if err != nil {
		return false, fmt.Errorf("client: hash %q: %w", relPath, err)
	}
	return h == rec.Hash, nil
}

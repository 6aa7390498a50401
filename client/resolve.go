package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/atomicfile"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// Resolver is what conflict and history actions need from a session
// beyond [Remote]; *syncproto.Client has it. An Engine finds it on its
// session by type assertion, so sessions that only sync need not have it.
type Resolver interface {
	ListConflicts(ctx context.Context, root, path string) ([]*syncpb.Conflict, error)
	ResolveConflict(ctx context.Context, root, path, keep string) (*syncpb.FileHead, error)
	History(ctx context.Context, root, path string, limit uint32) ([]*syncpb.HistoryEntry, error)
	Restore(ctx context.Context, root, path, hashPrefix string) (head *syncpb.FileHead, committed bool, err error)
}

var _ Resolver = (*syncproto.Client)(nil)

func (e *Engine) resolver() (Resolver, error) {
	rs, ok := e.remote.(Resolver)
	if !ok {
		return nil, ErrNoResolver
	}
	return rs, nil
}

// LocalUpdateError is returned with a head by [Engine.ResolveConflict]
// and [Engine.Rollback] when the server made the change but the local
// copy could not be brought to it: the next sync (or force-sync notice)
// does it.
type LocalUpdateError struct {
	Root, Path string
	Err        error
}

func (e *LocalUpdateError) Error() string {
	return fmt.Sprintf("root %q: %s changed on the server, but the local copy was not updated: %v", e.Root, e.Path, e.Err)
}

func (e *LocalUpdateError) Unwrap() error { return e.Err }

// ResolveConflict resolves the conflict on path in root by keeping one
// side (keep: "server", "client" for this client's own candidate, a
// client name or ID, or a hex prefix of at least 8 digits of a
// candidate's hash), then brings the local copy to the new head at once,
// as a force-sync does ([Engine.ForceSync]): the replaced local content
// is in the server's history. When the server resolved the conflict but
// the local copy could not be replaced, the head is returned with a
// *LocalUpdateError.
func (e *Engine) ResolveConflict(ctx context.Context, root, path, keep string) (*syncpb.FileHead, error) {
	rs, err := e.resolver()
	if err != nil {
		return nil, err
	}
	head, err := rs.ResolveConflict(ctx, root, path, keep)
	if err != nil {
		return nil, err
	}
	return head, e.applyHead(ctx, root, path, head)
}

// Rollback makes the version of path whose content hash starts with
// hashPrefix (at least 8 hex digits, naming one content) the new head of
// path, a new version pushed to every client, and brings the local copy
// to it at once. committed is false when the head already had that
// content. Errors are as for [Engine.ResolveConflict].
func (e *Engine) Rollback(ctx context.Context, root, path, hashPrefix string) (head *syncpb.FileHead, committed bool, err error) {
	rs, err := e.resolver()
	if err != nil {
		return nil, false, err
	}
	head, committed, err = rs.Restore(ctx, root, path, hashPrefix)
	if err != nil {
		return nil, false, err
	}
	return head, committed, e.applyHead(ctx, root, path, head)
}

// applyHead force-syncs path to head, reporting a failure as a
// LocalUpdateError.
func (e *Engine) applyHead(ctx context.Context, root, path string, head *syncpb.FileHead) error {
	err := fmt.Errorf("%w: the server answered with the head of %q", syncproto.ErrBadRequest, head.GetPath())
	if head.GetPath() == path {
		err = e.ForceSync(ctx, root, head)
	}
	if err != nil {
		return &LocalUpdateError{Root: root, Path: path, Err: err}
	}
	return nil
}

// SaveOptions tune [Engine.SaveVersion].
type SaveOptions struct {
	// Mode is the saved file's permission bits; 0 means 0644.
	Mode fs.FileMode
	// MTime is its modification time; zero leaves the time of writing.
	MTime time.Time
	// Overwrite allows replacing an existing file at the destination.
	// Without it an existing destination fails with an error wrapping
	// fs.ErrExist, checked before the download and again right before
	// the rename.
	Overwrite bool
}

// SaveVersion writes the content whose hash is hash, a version in the
// history of path in root or a candidate of its conflict, to the local
// file dest (outside or inside a root: it is an ordinary file either
// way). Chunks are copied from local files that hold them where possible
// and fetched otherwise; each is verified, the whole content is checked
// against hash, and dest is written atomically (a temporary file renamed
// over it), so it is never left partial. It returns the bytes written.
func (e *Engine) SaveVersion(ctx context.Context, root, path string, hash cas.ID, dest string, opts SaveOptions) (int64, error) {
	if err := relpath.Check(path); err != nil {
		return 0, err
	}
	if hash.IsZero() {
		return 0, fmt.Errorf("client: %q: a deletion has no content to save", path)
	}
	if opts.Mode == 0 {
		opts.Mode = 0o644
	}
	if err := checkDest(dest, opts.Overwrite); err != nil {
		return 0, err
	}
	if _, err := e.st.Root(ctx, root); err != nil {
		return 0, err
	}
	size, refs, err := e.remote.ChunkList(ctx, root, path, hash)
	if err != nil {
		return 0, fmt.Errorf("chunk list of %s of %q: %w", hash.Short(), path, err)
	}
	reuse, err := BuildReuseIndex(ctx, e.st, root)
	if err != nil {
		return 0, err
	}
	if rec, err := e.record(ctx, root, path); err == nil && rec != nil && !rec.Deleted {
		defer reuse.AddFile(path, rec.Chunks)() // the version most like the one saved
	}
	f, err := atomicfile.Create(dest, TempPrefix+"*")
	if err != nil {
		return 0, fmt.Errorf("client: save %s: %w", dest, err)
	}
	if err := e.fill(ctx, root, reuse, refs, size, hash, nil, ctxWriter{ctx, f}, &pass{root: root}); err != nil {
		f.Abort()
		return 0, fmt.Errorf("download %s of %q: %w", hash.Short(), path, err)
	}
	if err := checkDest(dest, opts.Overwrite); err != nil {
		f.Abort()
		return 0, err
	}
	if _, err := f.Commit(opts.Mode.Perm(), opts.MTime); err != nil {
		return 0, fmt.Errorf("client: save %s: %w", dest, err)
	}
	if err := atomicfile.SyncDir(filepath.Dir(dest)); err != nil {
		return 0, fmt.Errorf("client: save %s: %w", dest, err)
	}
	return size, nil
}

// checkDest refuses a destination that is a directory, or that exists
// when overwrite is not set.
func checkDest(dest string, overwrite bool) error {
	fi, err := os.Lstat(dest)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("client: %s: %w", dest, err)
	case fi.IsDir():
		return fmt.Errorf("%w: %s", ErrTargetIsDir, dest)
	case !overwrite:
		return fmt.Errorf("client: %s: %w (not overwritten)", dest, fs.ErrExist)
	}
	return nil
}

package client

import (
	"context"
	"errors"
	"fmt"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// ErrNotHeld means a need-content notice names a version this client does not
// hold unchanged on disk, so it has nothing to send.
var ErrNotHeld = errors.New("client: version not held locally")

// maxQueuedNeeds bounds the need-content notices waiting for the worker
// of a session; the server repeats a request that is still needed.
const maxQueuedNeeds = 64

// ResendContent answers a need-content notice: the server lost or found
// corrupt chunks of the version head names (path and content hash). If
// the local file of that path is exactly that content and unchanged since
// it was recorded, every chunk of it is uploaded again, bypassing the
// HaveChunks check (the server believes it has the damaged chunks, and
// the notice does not say which ones they are); each chunk is re-read and
// checked against its ID before it is sent. It returns the number of
// chunks sent, or an error wrapping ErrNotHeld when this client does not
// hold the version, ErrRootMissing when it does not sync root.
func (e *Engine) ResendContent(ctx context.Context, root string, head *syncpb.FileHead) (int, error) {
	path := head.GetPath()
	if err := relpath.Check(path); err != nil {
		return 0, fmt.Errorf("need-content for %.64q: %w", path, err)
	}
	hash, err := headHash(head)
	if err != nil || hash.IsZero() {
		return 0, fmt.Errorf("%w: need-content for %q: hash of %d bytes", syncproto.ErrBadRequest, path, len(head.GetHash()))
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.st.Root(ctx, root)
	if err != nil {
		return 0, err
	}
	rec, err := e.st.File(ctx, root, path)
	switch {
	case errors.Is(err, ErrFileNotFound):
		return 0, fmt.Errorf("%w: no local file %q", ErrNotHeld, path)
	case err != nil:
		return 0, err
	}
	if rec.Deleted || rec.Hash != hash {
		return 0, fmt.Errorf("%w: local %q is not version %s", ErrNotHeld, path, hash.Short())
	}
	// SafeToReplace answers "does the file still hold the recorded
	// content", which is the question here; a pending change of mode
	// only does not matter, so the pending flag is left out.
	check := rec
	check.Pending = false
	same, err := SafeToReplace(ctx, r.Dir, path, &check)
	if err != nil {
		return 0, err
	}
	if !same {
		return 0, fmt.Errorf("%w: %q changed since it was scanned", ErrNotHeld, path)
	}
	return e.sendAll(ctx, r, rec)
}

// sendAll uploads every distinct chunk of rec in batches of at most
// UploadBatchBytes, one batch in memory at a time.
func (e *Engine) sendAll(ctx context.Context, r Root, rec FileRecord) (int, error) {
	seen := make(cas.IDSet)
	var batch []chunkSource
	batchBytes, sent := 0, 0
	buf := new(uploadBuf)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		res, err := e.putStream(ctx, r, batchReader{dir: r.Dir, verify: true}, batch, buf, nil)
		if err != nil {
			return err
		}
		if len(res.changed) > 0 {
			return fmt.Errorf("%w: %q changed while it was read", ErrNotHeld, rec.Path)
		}
		sent += res.sent
		batch, batchBytes = batch[:0], 0
		return nil
	}
	var off int64
	for _, c := range rec.Chunks {
		if !seen.Has(c.ID) {
			seen.Insert(c.ID)
			if len(batch) > 0 && batchBytes+int(c.Size) > e.opts.UploadBatchBytes {
				if err := flush(); err != nil {
					return sent, err
				}
			}
			batch = append(batch, chunkSource{id: c.ID, path: rec.Path, off: off, size: c.Size})
			batchBytes += int(c.Size)
		}
		off += int64(c.Size)
	}
	if err := flush(); err != nil {
		return sent, err
	}
	return sent, nil
}

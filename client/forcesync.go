package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// maxQueuedForces bounds the force-sync notices waiting for the worker of
// a session (one per root and path: a newer head replaces an older one).
const maxQueuedForces = 1024

// forceKey names the file a force-sync notice is about.
type forceKey struct{ root, path string }

// force queues a force-sync notice for the worker. A notice for a file
// already queued replaces the older head; beyond maxQueuedForces files the
// notice is dropped (the file then stays pending, and its next push is
// refused as a conflict: nothing is lost).
func (w *work) force(root string, head *syncpb.FileHead) {
	w.mu.Lock()
	k := forceKey{root: root, path: head.GetPath()}
	old, queued := w.forces[k]
	switch {
	case queued && old.GetSeq() > head.GetSeq():
		w.mu.Unlock()
		return
	case !queued && len(w.forces) >= maxQueuedForces:
		w.mu.Unlock()
		return
	}
	if w.forces == nil {
		w.forces = make(map[forceKey]*syncpb.FileHead)
	}
	w.forces[k] = head
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *work) takeForces() map[forceKey]*syncpb.FileHead {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.forces
	w.forces = nil
	return t
}

// answerForce applies one force-sync notice. Only a failure of the
// session is returned; a file that cannot be forced now is logged and
// stays as it is (pending, so nothing is lost).
func answerForce(ctx context.Context, eng *Engine, k forceKey, head *syncpb.FileHead, opts RunOptions) error {
	err := eng.ForceSync(ctx, k.root, head)
	switch {
	case err == nil:
		opts.Logger.Info("qic: force-synced", "root", k.root, "path", k.path, "seq", head.GetSeq())
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case isFatal(err):
		return err
	default:
		opts.Logger.Warn("qic: force-sync not applied", "root", k.root, "path", k.path, "err", err)
	}
	return nil
}

// localFile is what is on disk at a path right now.
type localFile struct {
	absent    bool
	hash      cas.ID
	chunks    []syncproto.ChunkRef
	stat      FileStat
	scannedAt int64
}

// record returns the record of what was read, to check with
// SafeToReplace that the file is still that (nil when it was absent).
func (l *localFile) record(path string) *FileRecord {
	if l.absent {
		return nil
	}
	return &FileRecord{Path: path, Hash: l.hash, Chunks: l.chunks, Stat: l.stat, ScannedAt: l.scannedAt}
}

// ForceSync answers a force-sync notice: a conflict on head's path was
// resolved on the server, and head (the chosen version, or a deletion) is
// to replace the local copy, even one with a pending local change. Such a
// change is not lost: the server refused it as a conflict and keeps it as
// a candidate of that conflict, and a resolution keeps every losing
// candidate in the file's history (ARCHITECTURE.md §7).
//
// A local edit the server may not have seen (the file was changed after
// the last scan, or its change was never proposed) is never dropped
// silently: when the file on disk (re-hashed now) differs from head and
// is not its base version, it is first proposed on the record's base. The
// server keeps it as a conflict candidate again, finds it already in the
// history (superseded: the newest head is taken), or commits it or finds
// it converged, and then the local file stays and the record follows the
// server's answer. Only then is the file replaced, through the same
// download path as a pull, and its record set to head, no longer pending.
// If the proposal fails, nothing is replaced.
//
// A record whose base is already head or later is left to the normal
// passes: a pending change on top of head is an ordinary push.
func (e *Engine) ForceSync(ctx context.Context, root string, head *syncpb.FileHead) error {
	if err := checkHead(head); err != nil {
		return fmt.Errorf("force-sync: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	r, err := e.st.Root(ctx, root)
	if err != nil {
		return err
	}
	return e.forceLocked(ctx, r, head, nil, &pass{root: root})
}

// checkHead refuses a head whose path or hash cannot be applied.
func checkHead(head *syncpb.FileHead) error {
	path := head.GetPath()
	if err := relpath.Check(path); err != nil {
		return fmt.Errorf("head of %.64q: %w", path, err)
	}
	hash, err := headHash(head)
	if err != nil || (!head.GetDeleted() && hash.IsZero()) {
		return fmt.Errorf("%w: head of %q: hash of %d bytes", syncproto.ErrBadRequest, path, len(head.GetHash()))
	}
	return nil
}

// keptContent is local content the server said it keeps in the file's
// history (a superseded proposal): the file is zero for a deletion.
type keptContent struct {
	deleted bool
	hash    cas.ID
}

func (k *keptContent) matches(disk localFile) bool {
	return k != nil && disk.absent == k.deleted && (disk.absent || disk.hash == k.hash)
}

// forceLocked replaces the local copy of head's path with head (checked
// by checkHead), as ForceSync describes, with the engine's lock held. It
// counts what it wrote or removed in p.
//
// kept, when set, is what the caller's proposal just sent and the server
// answered superseded. A local file that is neither that nor head nor the
// base then changed since that proposal: it is not proposed (the next scan
// pushes it, and the server decides), nothing is replaced, and the error
// wraps errLocalChanged.
func (e *Engine) forceLocked(ctx context.Context, r Root, head *syncpb.FileHead, kept *keptContent, p *pass) error {
	path := head.GetPath()
	hash, err := headHash(head)
	if err != nil {
		return fmt.Errorf("%w: head of %q: %w", syncproto.ErrBadRequest, path, err)
	}
	rec, err := e.record(ctx, r.Name, path)
	if err != nil {
		return err
	}
	if rec != nil && rec.BaseSeq >= head.GetSeq() {
		return nil
	}
	disk, err := e.readLocal(ctx, r, path)
	if err != nil {
		return err
	}
	lastUpdate := uint64(0)
	if rec != nil {
		lastUpdate = rec.LastUpdate
	}
	sameAsHead := disk.absent == head.GetDeleted() && (disk.absent || disk.hash == hash)
	// The server has the base version: a file that is still its base, or
	// one deleted before the server ever saw it, has nothing to keep.
	// Nor does content the server already kept as this client's conflict
	// candidate, or in the history: proposing it again would reopen the
	// conflict that this force-sync closes.
	known := (disk.absent && (rec == nil || rec.BaseSeq == 0)) ||
		(!disk.absent && rec != nil && rec.BaseSeq != 0 && disk.hash == rec.BaseHash) ||
		(rec != nil && rec.HasCandidate && disk.absent == rec.Deleted && (disk.absent || disk.hash == rec.Candidate)) ||
		kept.matches(disk)
	if !sameAsHead && !known {
		if kept != nil {
			return fmt.Errorf("replace %q: %w", path, errLocalChanged)
		}
		resp, lu, err := e.proposeLocal(ctx, r, path, rec, disk, p)
		lastUpdate = lu
		switch {
		case errors.Is(err, syncproto.ErrConflict):
			// Kept as a candidate: the file may be replaced.
		case err != nil:
			return fmt.Errorf("force-sync of %q: keep the local version first: %w", path, err)
		case resp.GetOutcome() == syncpb.CommitResponse_OUTCOME_SUPERSEDED:
			// Already in the history: the file may be replaced, by the
			// newest head if the answer carries a newer one.
			if newer := resp.GetHead(); newer.GetSeq() > head.GetSeq() && newer.GetPath() == path && checkHead(newer) == nil {
				head = newer
				hash, _ = headHash(head)
				sameAsHead = disk.absent == head.GetDeleted() && (disk.absent || disk.hash == hash)
			}
		default:
			// Committed, or converged with the current head: the local
			// file is (the content of) the head, and stays.
			return e.acceptLocal(ctx, r.Name, path, disk, resp.GetHead(), lastUpdate)
		}
	}
	if head.GetDeleted() {
		if !disk.absent {
			safe, err := SafeToReplace(ctx, r.Dir, path, disk.record(path))
			if err != nil {
				return err
			}
			if !safe {
				return fmt.Errorf("force-sync of %q: %w", path, errLocalChanged)
			}
			if err := RemoveFile(ctx, r.Dir, path); err != nil {
				return err
			}
			p.count(func(s *Stats) { s.FilesDeleted++ })
		}
		if rec == nil {
			return nil
		}
		return e.st.DeleteFile(ctx, r.Name, path)
	}
	nrec := FileRecord{Path: path, BaseSeq: head.GetSeq(), BaseHash: hash, Hash: hash, LastUpdate: lastUpdate}
	if sameAsHead && disk.stat.Mode == head.GetMode() {
		// Already the head's content and mode: only the record moves.
		nrec.Chunks, nrec.Stat, nrec.ScannedAt = disk.chunks, disk.stat, disk.scannedAt
		return e.st.PutFile(ctx, r.Name, nrec)
	}
	reuse, err := BuildReuseIndex(ctx, e.st, r.Name)
	if err != nil {
		return err
	}
	if !disk.absent {
		defer reuse.AddFile(path, disk.chunks)()
	}
	// Still what was read (and kept on the server) above when replaced?
	nrec.Chunks, nrec.Stat, nrec.ScannedAt, err = e.download(ctx, r, reuse, head, hash, disk.record(path), p)
	if errors.Is(err, errLocalChanged) {
		// Written after it was read: the next scan finds it and pushes it.
		return fmt.Errorf("force-sync of %q: %w", path, errLocalChanged)
	}
	if err != nil {
		return err
	}
	if err := e.st.PutFile(ctx, r.Name, nrec); err != nil {
		return err
	}
	p.count(func(s *Stats) { s.FilesDownloaded++ })
	return nil
}

// readLocal stats and hashes the file at path as it is now. A path that
// holds something other than a regular file is an error: it is neither
// replaced nor removed.
func (e *Engine) readLocal(ctx context.Context, r Root, path string) (localFile, error) {
	name, err := relpath.Join(r.Dir, path)
	if err != nil {
		return localFile{}, err
	}
	if err := checkRootDir(r.Dir); err != nil {
		return localFile{}, err
	}
	fi, err := os.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return localFile{absent: true}, nil
	case err != nil:
		return localFile{}, fmt.Errorf("%w: %q: %w", ErrUnreadable, path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return localFile{}, fmt.Errorf("%w: %q is a symlink; it is not replaced", ErrSymlink, path)
	case fi.IsDir():
		return localFile{}, fmt.Errorf("%w: %q", ErrTargetIsDir, path)
	}
	ch, err := newContentHasher(r.Chunking)
	if err != nil {
		return localFile{}, err
	}
	scannedAt := e.opts.Now().UnixNano()
	f, pre, err := openRegular(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return localFile{absent: true}, nil
	case err != nil:
		return localFile{}, fmt.Errorf("%q: %w", path, err)
	}
	defer f.Close()
	h, err := ch.hashChunks(ctx, f)
	if err != nil {
		return localFile{}, fmt.Errorf("%w: %q: %w", ErrUnreadable, path, err)
	}
	post, err := f.stat()
	if err != nil {
		return localFile{}, fmt.Errorf("%w: %q: %w", ErrUnreadable, path, err)
	}
	if !post.Same(pre) || h.n != pre.Size {
		return localFile{}, fmt.Errorf("%w: %q", ErrChangedWhileReading, path)
	}
	return localFile{hash: h.hash, chunks: h.chunks, stat: pre, scannedAt: scannedAt}, nil
}

// proposeLocal proposes what is on disk at path on the record's base
// (none without a record), uploading the chunks the server lacks. It
// returns the server's answer and the logical clock the proposal carried.
func (e *Engine) proposeLocal(ctx context.Context, r Root, path string, rec *FileRecord, disk localFile, p *pass) (*syncpb.CommitResponse, uint64, error) {
	prop := FileRecord{Path: path, Deleted: disk.absent}
	if !disk.absent {
		prop.Hash, prop.Chunks, prop.Stat = disk.hash, disk.chunks, disk.stat
	}
	if rec != nil {
		prop.BaseSeq, prop.BaseHash, prop.LastUpdate = rec.BaseSeq, rec.BaseHash, rec.LastUpdate
	}
	if rec == nil || rec.Deleted != disk.absent || (!disk.absent && rec.Hash != disk.hash) {
		prop.LastUpdate++ // a change the record has not seen
	}
	send := func() (*syncpb.CommitResponse, error) {
		if !disk.absent {
			changed, err := e.upload(ctx, r, []FileRecord{prop}, p)
			if err != nil {
				return nil, err
			}
			if changed[path] {
				return nil, errLocalChanged
			}
		}
		return e.remote.Propose(ctx, proposal(r.Name, &prop), prop.Chunks)
	}
	resp, err := send()
	if errors.Is(err, syncproto.ErrMissingChunks) {
		resp, err = send() // a chunk was collected since HaveChunks: once more
	}
	return resp, prop.LastUpdate, err
}

// acceptLocal records that the server committed the local file, or found
// it converged with its head: the file stays, its record follows head.
func (e *Engine) acceptLocal(ctx context.Context, root, path string, disk localFile, head *syncpb.FileHead, lastUpdate uint64) error {
	hash, err := headHash(head)
	if err != nil {
		return fmt.Errorf("%w: commit of %q: head hash: %w", syncproto.ErrBadRequest, path, err)
	}
	if disk.absent {
		return e.st.DeleteFile(ctx, root, path)
	}
	return e.st.PutFile(ctx, root, FileRecord{
		Path: path, BaseSeq: head.GetSeq(), BaseHash: hash, Hash: disk.hash, Chunks: disk.chunks,
		Stat: disk.stat, ScannedAt: disk.scannedAt, LastUpdate: lastUpdate,
	})
}

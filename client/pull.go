package client

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// errLocalChanged stops a download whose target changed locally since its
// record: the local version is pushed instead, and the server decides.
var errLocalChanged = errors.New("client: local file changed since its base")

// A file's missing chunks are fetched in runs of fetchRun consecutive
// chunks, each run a GetChunks transaction on its own stream, with up to
// fetchAhead runs in flight: one lost packet stalls one run, not the file,
// and memory stays at a few runs whatever the file's size.
const (
	fetchRun   = 32
	fetchAhead = 4
)

// parallelPulls is how many files one pass downloads at once.
const parallelPulls = 4

// pullPage is how many heads a pull asks of a server at a time: a pull
// holds one page of heads, however many files changed (a new device's
// first pull of a root of millions of files).
var pullPage = 16384

// HeadsPager lists a root's heads a page at a time (see
// syncproto.Client.HeadsPage).
type HeadsPager interface {
	HeadsPage(ctx context.Context, root string, afterSeq uint64, limit int) ([]*syncpb.FileHead, uint64, bool, error)
}

var _ HeadsPager = (*syncproto.Client)(nil)

// pull applies the heads that changed on the server since the root's
// cursor, a page at a time. It returns the cursor to save; ok is false
// when a file could not be pulled and the cursor must stay so the next
// pass tries again. Deletions wait for the downloads of their page: a
// rename whose two halves land in different pages fetches the moved file
// instead of copying it. While every page so far was applied whole, the
// cursor is saved after each one: an interrupted first pull of a large
// root resumes after its last page instead of listing everything again.
func (e *Engine) pull(ctx context.Context, r Root, p *pass) (cursor uint64, ok bool, err error) {
	// The reuse index reads every chunk list of the root: built only once
	// a head really needs a download, not for the echo of our own commits
	// or a base that only moves.
	reuse := sync.OnceValues(func() (*ReuseIndex, error) { return BuildReuseIndex(ctx, e.st, r.Name) })
	ok = true
	after := r.Cursor
	for {
		heads, resume, more, err := e.headsPage(ctx, r.Name, after)
		if err != nil {
			return 0, false, err
		}
		if more && resume <= after {
			return 0, false, fmt.Errorf("%w: a page of heads after %d resumes at %d", syncproto.ErrBadRequest, after, resume)
		}
		pageOK, err := e.pullHeads(ctx, r, reuse, heads, p)
		if err != nil {
			return 0, false, err
		}
		ok = ok && pageOK
		if !more {
			return resume, ok, nil
		}
		if ok {
			if err := e.saveCursor(ctx, r.Name, resume); err != nil {
				return 0, false, err
			}
		}
		after = resume
	}
}

// saveCursor moves the root's saved cursor forward to seq, durably: the
// records of the page before it are written first, so they survive too.
func (e *Engine) saveCursor(ctx context.Context, root string, seq uint64) error {
	err := e.st.UpdateRoot(ctx, root, func(rr *Root) error {
		if seq > rr.Cursor {
			rr.Cursor = seq
		}
		return nil
	})
	if err != nil {
		return err
	}
	return e.st.Flush()
}

// headsPage asks the heads changed after seq after, a page of them when
// the remote pages.
func (e *Engine) headsPage(ctx context.Context, root string, after uint64) ([]*syncpb.FileHead, uint64, bool, error) {
	if hp, ok := e.remote.(HeadsPager); ok {
		return hp.HeadsPage(ctx, root, after, pullPage)
	}
	heads, resume, err := e.remote.Heads(ctx, root, after)
	return heads, resume, false, err
}

// pullHeads applies one page of heads; ok is false when a file failed.
func (e *Engine) pullHeads(ctx context.Context, r Root, reuse func() (*ReuseIndex, error), heads []*syncpb.FileHead, p *pass) (ok bool, err error) {
	if len(heads) == 0 {
		return true, nil
	}
	// Path order: a page comes in the order of the last changes, which
	// scatters a directory's files over its batches. Deletions go last: a
	// renamed file's new path reuses the chunks of the old one before it
	// is removed.
	slices.SortFunc(heads, func(x, y *syncpb.FileHead) int {
		if x.GetDeleted() != y.GetDeleted() {
			return cmp.Compare(b2i(x.GetDeleted()), b2i(y.GetDeleted()))
		}
		return strings.Compare(x.GetPath(), y.GetPath())
	})
	// Files download in parallel (each on its own streams), deletions after
	// all of them. A fatal error cancels the rest of the pass.
	var failed atomic.Bool
	pullAll := func(heads []*syncpb.FileHead, limit int) error {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(limit)
		for _, h := range heads {
			if gctx.Err() != nil {
				break
			}
			g.Go(func() error {
				if err := e.pullHead(gctx, r, reuse, h, p); err != nil {
					if isFatal(err) {
						return fmt.Errorf("%q: %w", h.GetPath(), err)
					}
					e.warn(p, h.GetPath(), err)
					failed.Store(true)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		return ctx.Err()
	}
	firstDeletion := slices.IndexFunc(heads, (*syncpb.FileHead).GetDeleted)
	if firstDeletion < 0 {
		firstDeletion = len(heads)
	}
	batches, rest, planned := e.splitBatchable(ctx, r, heads[:firstDeletion], p.progress.to != nil)
	p.progress.plan(Download, planned)
	batchFailed, err := e.pullBatches(ctx, r, reuse, batches, p)
	if err != nil {
		return false, err
	}
	if batchFailed {
		failed.Store(true)
	}
	if err := pullAll(rest, parallelPulls); err != nil {
		return false, err
	}
	if err := pullAll(heads[firstDeletion:], 1); err != nil {
		return false, err
	}
	return !failed.Load(), nil
}

// isFatal tells errors that end a pass (the session or the local state
// failed) from those that concern one file.
func isFatal(err error) bool {
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syncproto.ErrConnClosed),
		errors.Is(err, syncproto.ErrUnauthenticated), errors.Is(err, syncproto.ErrForbidden),
		errors.Is(err, syncproto.ErrTimeout),
		errors.Is(err, ErrRootMissing), errors.Is(err, ErrCorrupt):
		return true
	case errors.Is(err, syncproto.ErrUnavailable):
		// Answered on the transaction (content damaged on the server and
		// being re-requested, or an overloaded server): only this file
		// waits. A server going away closes the connection: ErrConnClosed.
		return false
	}
	var ce *syncproto.Error
	if errors.As(err, &ce) {
		return false // the server answered about this file
	}
	// A transport failure (connection lost) has no error code: it ends the pass.
	return errors.Is(err, syncproto.ErrInternal) || isNetErr(err)
}

// isNetErr reports a failure below the protocol: the connection is gone.
func isNetErr(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne)
}

// headHash returns a head's content hash (zero for a deletion).
func headHash(h *syncpb.FileHead) (cas.ID, error) {
	if len(h.GetHash()) == 0 {
		return cas.ID{}, nil
	}
	return cas.IDFromBytes(h.GetHash())
}

// pullAction is what pulling one head does to the local tree.
type pullAction int

const (
	pullNothing  pullAction = iota // already there, or a local change the push sends
	pullDeletion                   // remove the local file
	pullBase                       // same content and mode: only the base moves
	pullContent                    // write the head's content
)

// decidePull says what pulling head h, whose content hash is hash, does
// over the local record rec (nil when there is none).
func decidePull(rec *FileRecord, h *syncpb.FileHead, hash cas.ID) pullAction {
	switch {
	case rec != nil && rec.BaseSeq >= h.GetSeq():
		return pullNothing // our own commit, or pulled before
	case rec != nil && rec.Pending:
		return pullNothing // pushed next; the server decides
	case h.GetDeleted():
		return pullDeletion
	case rec != nil && !rec.Deleted && rec.Hash == hash && rec.Stat.Mode == h.GetMode():
		return pullBase
	}
	return pullContent
}

// record returns the local record of path in root, nil when there is none.
func (e *Engine) record(ctx context.Context, root, path string) (*FileRecord, error) {
	rec, err := e.st.File(ctx, root, path)
	switch {
	case err == nil:
		return &rec, nil
	case errors.Is(err, ErrFileNotFound):
		return nil, nil
	}
	return nil, err
}

// pullHead brings one remote head into the local tree, unless the local
// file changed since its base.
func (e *Engine) pullHead(ctx context.Context, r Root, reuseIndex func() (*ReuseIndex, error), h *syncpb.FileHead, p *pass) error {
	path := h.GetPath()
	hash, err := headHash(h)
	if err != nil {
		return fmt.Errorf("%w: head hash: %w", syncproto.ErrBadRequest, err)
	}
	rec, err := e.record(ctx, r.Name, path)
	if err != nil {
		return err
	}
	switch decidePull(rec, h, hash) {
	case pullNothing:
		return nil
	case pullDeletion:
		return e.pullDeletion(ctx, r, rec, path, p)
	case pullBase:
		rec.BaseSeq, rec.BaseHash = h.GetSeq(), hash
		return e.st.PutFile(ctx, r.Name, *rec)
	}
	reuse, err := reuseIndex()
	if err != nil {
		return err
	}
	if rec != nil && !rec.Deleted {
		defer reuse.AddFile(path, rec.Chunks)()
	}
	refs, st, scannedAt, err := e.download(ctx, r, reuse, h, hash, rec, p)
	if errors.Is(err, errLocalChanged) {
		return nil // the next scan finds the change and pushes it
	}
	if err != nil {
		return err
	}
	nrec := FileRecord{
		Path: path, BaseSeq: h.GetSeq(), BaseHash: hash, Hash: hash, Chunks: refs,
		Stat: st, ScannedAt: scannedAt,
	}
	if rec != nil {
		nrec.LastUpdate = rec.LastUpdate
	}
	if err := e.st.PutFile(ctx, r.Name, nrec); err != nil {
		return err
	}
	var old []syncproto.ChunkRef
	if rec != nil {
		old = rec.Chunks
	}
	reuse.replaceFile(path, old, refs)
	p.count(func(s *Stats) { s.FilesDownloaded++ })
	return nil
}

// download writes the content of head (whose content hash is hash) over
// the local file at its path, reusing local chunks. Right before the
// rename it checks that the local file still matches expect, the record
// the caller decided on; if not it fails with errLocalChanged and the file
// is untouched. It returns the chunk list, the new file's stat and the
// scan time to record with it.
func (e *Engine) download(ctx context.Context, r Root, reuse *ReuseIndex, head *syncpb.FileHead, hash cas.ID, expect *FileRecord, p *pass) (refs []syncproto.ChunkRef, st FileStat, scannedAt int64, err error) {
	path := head.GetPath()
	size, refs, dicts, release, err := e.chunkList(ctx, r, reuse, path, hash, expect)
	defer release()
	if err != nil {
		return nil, FileStat{}, 0, err
	}
	scannedAt = e.opts.Now().UnixNano()
	mode := fs.FileMode(head.GetMode()).Perm()
	st, err = WriteFileAtomic(ctx, r.Dir, path, mode, time.Unix(0, head.GetMtime()), func(w io.Writer) error {
		if err := e.fill(ctx, r.Name, reuse, refs, size, hash, dicts, progressWriter{w: w, pr: &p.progress}, p); err != nil {
			return err
		}
		safe, err := SafeToReplace(ctx, r.Dir, path, expect)
		if err != nil {
			return err
		}
		if !safe {
			return errLocalChanged
		}
		return nil
	})
	return refs, st, scannedAt, err
}

// pullDeletion removes the local file of a deleted head if it is still
// the base.
func (e *Engine) pullDeletion(ctx context.Context, r Root, rec *FileRecord, path string, p *pass) error {
	if rec == nil {
		return nil // never had it
	}
	safe, err := SafeToReplace(ctx, r.Dir, path, rec)
	if err != nil || !safe {
		return err
	}
	if err := RemoveFile(ctx, r.Dir, path); err != nil {
		return err
	}
	if err := e.st.DeleteFile(ctx, r.Name, path); err != nil {
		return err
	}
	p.count(func(s *Stats) { s.FilesDeleted++ })
	return nil
}

// fill writes the content of a file with chunk list refs into w: each
// chunk from a verified local copy when there is one, else fetched from
// the server (see fetchRun). Every chunk is checked against its ID and the
// whole content against hash.
func (e *Engine) fill(parent context.Context, root string, reuse *ReuseIndex, refs []syncproto.ChunkRef, size int64, hash cas.ID, dicts map[cas.ID][]cas.ID, w io.Writer, p *pass) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	// segs holds the pieces of the file in order; its capacity bounds how
	// many are fetched or read ahead of the writer.
	segs := make(chan *segment, fetchAhead)
	g.Go(func() error {
		defer close(segs)
		var run []syncproto.ChunkRef
		emit := func(s *segment) error {
			select {
			case segs <- s:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		emitRun := func() error {
			if len(run) == 0 {
				return nil
			}
			s := &segment{refs: run, done: make(chan struct{})}
			run = nil
			if err := emit(s); err != nil {
				return err
			}
			g.Go(func() error {
				defer close(s.done)
				s.data, s.err = e.fetchRun(gctx, root, s.refs, reuse, dicts, p)
				return s.err
			})
			return nil
		}
		for _, c := range refs {
			if data, ok := reuse.ReadLocal(gctx, c.ID); ok && len(data) == int(c.Size) {
				if err := emitRun(); err != nil {
					return err
				}
				s := &segment{data: [][]byte{data}, done: make(chan struct{})}
				close(s.done)
				if err := emit(s); err != nil {
					return err
				}
				p.count(func(s *Stats) { s.ChunksReused++ })
				continue
			}
			run = append(run, c)
			if len(run) >= fetchRun {
				if err := emitRun(); err != nil {
					return err
				}
			}
		}
		return emitRun()
	})

	h := blake3.New()
	out := io.MultiWriter(w, h)
	var written int64
	var writeErr error
	for s := range segs {
		if writeErr != nil {
			continue // drain so the producer can finish
		}
		select {
		case <-s.done:
		case <-gctx.Done():
			// A fetch failed (its error comes from Wait below, not as
			// the group's cancellation), or the caller gave up.
			writeErr = errFetchStopped
			cancel()
			continue
		}
		if s.err != nil {
			writeErr = s.err
			cancel()
			continue
		}
		for _, d := range s.data {
			if _, err := out.Write(d); err != nil {
				writeErr = err
				cancel()
				break
			}
			written += int64(len(d))
		}
	}
	if err := g.Wait(); err != nil && (writeErr == nil || writeErr == errFetchStopped) {
		writeErr = err
	}
	if err := parent.Err(); writeErr == errFetchStopped && err != nil {
		writeErr = err
	}
	if writeErr != nil {
		return writeErr
	}
	return checkDownloaded(h, written, size, hash)
}

// checkDownloaded checks that the n bytes written into h are the content
// of size bytes hashing to hash.
func checkDownloaded(h *blake3.Hasher, n, size int64, hash cas.ID) error {
	var got cas.ID
	h.Sum(got[:0])
	if n != size || got != hash {
		return fmt.Errorf("%w: downloaded %d bytes hashing to %s, want %d bytes hashing to %s",
			syncproto.ErrHashMismatch, n, got.Short(), size, hash.Short())
	}
	return nil
}

// errFetchStopped marks, inside fill, a download whose fetches stopped:
// the error that stopped them replaces it.
var errFetchStopped = errors.New("client: fetch stopped")

// segment is a piece of a file being downloaded: chunks read from a local
// copy, or a run fetched from the server once done is closed.
type segment struct {
	refs []syncproto.ChunkRef
	done chan struct{}
	data [][]byte
	err  error
}

// fetchRun downloads one run of chunks on its own stream, each decoded and
// verified against its ID and its size in the chunk list. A chunk with
// dictionaries in dicts whose bytes are at hand locally may come
// delta-encoded against them.
func (e *Engine) fetchRun(ctx context.Context, root string, run []syncproto.ChunkRef, reuse *ReuseIndex, dicts map[cas.ID][]cas.ID, p *pass) ([][]byte, error) {
	ids := make([]cas.ID, len(run))
	for i, c := range run {
		ids[i] = c.ID
	}
	asked, local := localDicts(ctx, run, reuse, dicts)
	out := make([][]byte, 0, len(run))
	fn := func(ch syncproto.Chunk) error {
		i := len(out)
		if i >= len(run) {
			return fmt.Errorf("%w: more chunks than asked for", syncproto.ErrBadRequest)
		}
		var data []byte
		var err error
		if ch.Codec == syncproto.ChunkDelta {
			data, err = decodeWithLocal(ch, local)
		} else {
			data, err = cas.Stored{Codec: cas.Codec(ch.Codec), Data: ch.Data, RawLen: ch.RawLen}.Decode(ch.ID)
		}
		if err != nil {
			return fmt.Errorf("%w: chunk %s: %w", syncproto.ErrHashMismatch, ch.ID.Short(), err)
		}
		if ch.ID != run[i].ID || len(data) != int(run[i].Size) {
			return fmt.Errorf("%w: chunk %s (%d bytes) where the list has %s (%d bytes)",
				syncproto.ErrBadRequest, ch.ID.Short(), len(data), run[i].ID.Short(), run[i].Size)
		}
		if ch.Codec == syncproto.ChunkRaw {
			data = bytes.Clone(data) // raw data aliases the stream's frame buffer
		}
		out = append(out, data)
		return nil
	}
	var err error
	if dr, ok := e.deltaRemote(); ok && asked != nil {
		err = dr.GetChunksDict(ctx, root, ids, asked, fn)
	} else {
		err = e.remote.GetChunks(ctx, root, ids, fn)
	}
	if err != nil {
		return nil, err
	}
	if len(out) != len(run) {
		return nil, fmt.Errorf("%w: %d of %d chunks arrived", syncproto.ErrBadRequest, len(out), len(run))
	}
	p.count(func(s *Stats) { s.ChunksFetched += len(run) })
	return out, nil
}

// localDicts reads the dictionaries of the chunks of run from the local
// tree: a chunk is asked with dictionaries only when all of them are at
// hand. asked is nil when none is.
func localDicts(ctx context.Context, run []syncproto.ChunkRef, reuse *ReuseIndex, dicts map[cas.ID][]cas.ID) (asked [][]cas.ID, local map[cas.ID][]byte) {
	if len(dicts) == 0 || reuse == nil {
		return nil, nil
	}
	local = map[cas.ID][]byte{}
	for i, c := range run {
		ds := dicts[c.ID]
		if len(ds) == 0 {
			continue
		}
		ok := true
		for _, d := range ds {
			if _, have := local[d]; have {
				continue
			}
			data, found := reuse.ReadLocal(ctx, d)
			if !found {
				ok = false
				break
			}
			local[d] = data
		}
		if !ok {
			continue
		}
		if asked == nil {
			asked = make([][]cas.ID, len(run))
		}
		asked[i] = ds
	}
	return asked, local
}

// decodeWithLocal decodes a dictionary-encoded chunk with the local
// copies of its dictionaries.
func decodeWithLocal(ch syncproto.Chunk, local map[cas.ID][]byte) ([]byte, error) {
	ids, err := syncproto.DeltaSources(ch)
	if err != nil {
		return nil, err
	}
	sources := make([][]byte, len(ids))
	for i, id := range ids {
		if sources[i] = local[id]; sources[i] == nil {
			return nil, fmt.Errorf("%w: dictionary %s not asked for", syncproto.ErrDeltaSource, id.Short())
		}
	}
	return syncproto.DecodeDelta(ch, sources)
}

// chunkList fetches the chunk list of the version hash of path. When the
// local tree holds another server version of the file (the record's
// content, or the same content under another path), the list comes as a
// delta against it, and the chunks that replaced some of its chunks get
// those as dictionaries for the download.
//
// A base found under another path is added to reuse for the download
// (see ReuseIndex.AddFile); the caller calls release once it is done.
func (e *Engine) chunkList(ctx context.Context, r Root, reuse *ReuseIndex, path string, hash cas.ID, rec *FileRecord) (size int64, refs []syncproto.ChunkRef, dicts map[cas.ID][]cas.ID, release func(), err error) {
	release = func() {}
	dr, ok := e.deltaRemote()
	if !ok {
		size, refs, err := e.remote.ChunkList(ctx, r.Name, path, hash)
		return size, refs, nil, release, err
	}
	base, basePath := localVersion(rec), ""
	if base == nil && reuse != nil {
		if other, found := reuse.versionPath(hash); found && other != path {
			orec, err := e.record(ctx, r.Name, other)
			if err != nil {
				return 0, nil, nil, release, err
			}
			if base = localVersion(orec); base != nil {
				basePath = other
				release = reuse.AddFile(other, orec.Chunks)
			}
		}
	}
	if base == nil {
		size, refs, err := e.remote.ChunkList(ctx, r.Name, path, hash)
		return size, refs, nil, release, err
	}
	size, refs, err = dr.ChunkListFrom(ctx, r.Name, path, hash, basePath, base.Hash, base.Chunks)
	if err != nil {
		return 0, nil, nil, release, err
	}
	return size, refs, dictionaries(base.Chunks, refs), release, nil
}

// localVersion returns rec when its local content is a server version of
// its path with chunks, nil otherwise.
func localVersion(rec *FileRecord) *FileRecord {
	if rec == nil || rec.Deleted || rec.BaseSeq == 0 || rec.Hash != rec.BaseHash || len(rec.Chunks) == 0 {
		return nil
	}
	return rec
}

// dictionaries pairs the chunks of refs that replaced chunks of base with
// those chunks (see aroundSources).
func dictionaries(base, refs []syncproto.ChunkRef) map[cas.ID][]cas.ID {
	d := syncproto.DiffChunkLists(base, refs)
	out := map[cas.ID][]cas.ID{}
	for _, rp := range replacements(base, d) {
		for id, srcs := range aroundSources(rp) {
			ids := make([]cas.ID, len(srcs))
			for i, s := range srcs {
				ids[i] = s.ID
			}
			out[id] = ids
		}
	}
	return out
}

// replaceFile records that path, which held the chunks old, now holds
// refs: its old locations are stale, and its chunks can be copied from it
// by the files pulled after it.
func (x *ReuseIndex) replaceFile(path string, old, refs []syncproto.ChunkRef) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dropPath(path, old)
	if !x.partial { // a partial index holds the sources of downloads only
		x.addChunks(path, refs)
	}
}

// dropPath removes the locations in path of chunks; callers hold x.mu.
func (x *ReuseIndex) dropPath(path string, chunks []syncproto.ChunkRef) {
	for _, c := range chunks {
		id := c.ID
		locs, ok := x.locs[id]
		if !ok {
			continue
		}
		kept := slices.DeleteFunc(locs, func(l location) bool { return l.path == path })
		if len(kept) == 0 {
			delete(x.locs, id)
		} else {
			x.locs[id] = kept
		}
	}
}

// b2i orders false before true.
func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

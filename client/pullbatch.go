package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/atomicfile"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// New small files are pulled in batches: their chunk lists in one
// ChunkListBatch, their chunks in a few GetChunks runs, written next to
// their targets and made durable together (one syncfs on Linux) before
// they are renamed into place and recorded in one transaction. A new
// device's first pull of a root of many small files then costs a few round
// trips and syncs per batch instead of two streams and two fsyncs per
// file. A file over batchPullFileMax is pulled on its own. A file whose
// local copy is a server version (an edit pulled) names it as its base, so
// its changed chunks may come delta-encoded against the old ones.
const (
	batchPullFiles   = 256
	batchPullBytes   = 8 << 20
	batchPullFileMax = 1 << 20
	// batchFetchIDs and batchFetchBytes bound one GetChunks run of a
	// batch; batchesAhead batches are in flight at once.
	batchFetchIDs   = 256
	batchFetchBytes = 2 << 20
	batchesAhead    = 2
)

// ListBatchRemote answers many chunk lists in one transaction (see
// syncproto.Client.ChunkListBatch).
type ListBatchRemote interface {
	ChunkListBatch(ctx context.Context, root string, items []syncproto.ChunkListItem) ([]syncproto.ChunkListResult, error)
}

var _ ListBatchRemote = (*syncproto.Client)(nil)

// listBatchRemote returns the remote's chunk list batches, unless it has
// none or its server answered that it takes none.
func (e *Engine) listBatchRemote() (ListBatchRemote, bool) {
	if e.noListBatches.Load() {
		return nil, false
	}
	b, ok := e.remote.(ListBatchRemote)
	return b, ok
}

// pullItem is a head to download and what the local state held for it
// when it was decided; base is a local server version of the file (its
// record, or another path's with the same content as the head), basePath
// its path.
type pullItem struct {
	head     *syncpb.FileHead
	hash     cas.ID
	rec      *FileRecord
	base     *FileRecord
	basePath string
}

// splitBatchable sorts the heads (no deletions) into batches of small
// files to download and the heads left to pullHead, reading each record
// once; planned is the bytes the heads will download, counted when plan
// is set (someone follows the progress).
func (e *Engine) splitBatchable(ctx context.Context, r Root, heads []*syncpb.FileHead, plan bool) (batches [][]pullItem, rest []*syncpb.FileHead, planned int64) {
	_, batching := e.listBatchRemote()
	if !batching && !plan {
		return nil, heads, 0
	}
	var cur []pullItem
	var curBytes int64
	for _, h := range heads {
		hash, err := headHash(h)
		if err != nil || ctx.Err() != nil {
			rest = append(rest, h)
			continue
		}
		rec, err := e.record(ctx, r.Name, h.GetPath())
		content := err == nil && decidePull(rec, h, hash) == pullContent
		if content {
			planned += h.GetSize()
		}
		if !content || !batching || h.GetSize() > batchPullFileMax || h.GetSize() < 0 {
			rest = append(rest, h) // pullHead decides again, or reports the error
			continue
		}
		if len(cur) == batchPullFiles || curBytes+h.GetSize() > batchPullBytes {
			batches = append(batches, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, pullItem{head: h, hash: hash, rec: rec})
		curBytes += h.GetSize()
	}
	if len(cur) > 0 {
		batches = append(batches, cur)
	}
	return batches, rest, planned
}

// pullBatches downloads batches, batchesAhead at once. A file that fails
// on its own is warned about and reported in the returned flag; an error
// return ends the pass.
func (e *Engine) pullBatches(ctx context.Context, r Root, reuse func() (*ReuseIndex, error), batches [][]pullItem, p *pass) (failed bool, err error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(batchesAhead)
	var anyFailed atomic.Bool
	for _, b := range batches {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			ok, err := e.pullBatch(gctx, r, reuse, b, p)
			if !ok {
				anyFailed.Store(true)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return anyFailed.Load(), err
	}
	return anyFailed.Load(), ctx.Err()
}

// pullBatch downloads one batch. Items the batch cannot take (their list
// failed, or the server has no batches) go through pullHead one by one.
func (e *Engine) pullBatch(ctx context.Context, r Root, reuseIndex func() (*ReuseIndex, error), items []pullItem, p *pass) (ok bool, err error) {
	ok = true
	fail := func(path string, err error) error {
		if isFatal(err) {
			return fmt.Errorf("%q: %w", path, err)
		}
		e.warn(p, path, err)
		ok = false
		return nil
	}
	alone := func(its []pullItem) error {
		for _, it := range its {
			if err := e.pullHead(ctx, r, reuseIndex, it.head, p); err != nil {
				if err := fail(it.head.GetPath(), err); err != nil {
					return err
				}
			}
		}
		return nil
	}
	// A failure of the batch's own requests that concerns files, not the
	// session (a damaged chunk the server is having re-sent, a list it
	// refuses), sends the batch's files one by one: then it fails the
	// file it concerns alone, with a warning.
	reuse, err := reuseIndex()
	if err != nil {
		return false, err
	}
	release, err := e.batchBases(ctx, r, reuse, items)
	defer release()
	if err != nil {
		return false, err
	}
	lists, err := e.batchLists(ctx, r, items)
	if errors.Is(err, syncproto.ErrUnsupported) {
		e.noListBatches.Store(true)
		return ok, alone(items)
	}
	if err != nil {
		if isFatal(err) {
			return false, err
		}
		return ok, alone(items)
	}
	var solo []pullItem
	kept := items[:0:0]
	var keptLists []syncproto.ChunkListResult
	for i, l := range lists {
		if l.Err != nil || l.Size != items[i].head.GetSize() {
			solo = append(solo, items[i]) // its own ChunkList reports why
			continue
		}
		kept = append(kept, items[i])
		keptLists = append(keptLists, l)
	}
	if err := alone(solo); err != nil {
		return ok, err
	}
	if len(kept) == 0 {
		return ok, nil
	}
	chunks, err := e.batchChunks(ctx, r, reuse, kept, keptLists, p)
	if err != nil {
		if isFatal(err) {
			return false, err
		}
		return ok, alone(kept)
	}
	staged, err := e.stageBatch(ctx, r, kept, keptLists, chunks, fail, p)
	if err != nil {
		return false, err
	}
	return ok, e.publishBatch(ctx, r, reuse, staged, fail, p)
}

// batchBases finds each item's base, as chunkList does for a file pulled
// alone: its own record when that is a server version, else a local file
// with the head's content under another path (a rename or a copy). A base
// is added to reuse for the batch; release takes them out again.
func (e *Engine) batchBases(ctx context.Context, r Root, reuse *ReuseIndex, items []pullItem) (release func(), err error) {
	var releases []func()
	release = func() {
		for _, f := range releases {
			f()
		}
	}
	for i := range items {
		it := &items[i]
		path := it.head.GetPath()
		if b := localVersion(it.rec); b != nil {
			it.base = b
			releases = append(releases, reuse.AddFile(path, b.Chunks))
			continue
		}
		other, found := reuse.versionPath(it.hash)
		if !found || other == path {
			continue
		}
		orec, err := e.record(ctx, r.Name, other)
		if err != nil {
			return release, err
		}
		if b := localVersion(orec); b != nil {
			it.base, it.basePath = b, other
			releases = append(releases, reuse.AddFile(other, b.Chunks))
		}
	}
	return release, nil
}

// batchLists asks the chunk lists of items in one transaction.
func (e *Engine) batchLists(ctx context.Context, r Root, items []pullItem) ([]syncproto.ChunkListResult, error) {
	lb, ok := e.listBatchRemote()
	if !ok {
		return nil, syncproto.ErrUnsupported
	}
	req := make([]syncproto.ChunkListItem, len(items))
	for i, it := range items {
		req[i] = syncproto.ChunkListItem{Path: it.head.GetPath(), Hash: it.hash}
		if it.base != nil {
			req[i].BasePath, req[i].BaseHash = it.basePath, it.base.Hash
		}
	}
	return lb.ChunkListBatch(ctx, r.Name, req)
}

// batchChunks returns every chunk of lists: from a verified local copy
// where there is one, else fetched in runs of up to batchFetchIDs chunks,
// fetchAhead runs at once, each chunk once however many files hold it. A
// chunk that replaced chunks of its item's base may come delta-encoded
// against them.
func (e *Engine) batchChunks(ctx context.Context, r Root, reuse *ReuseIndex, items []pullItem, lists []syncproto.ChunkListResult, p *pass) (map[cas.ID][]byte, error) {
	dicts := make(map[cas.ID][]cas.ID)
	for i, it := range items {
		if it.base != nil {
			maps.Copy(dicts, dictionaries(it.base.Chunks, lists[i].Chunks))
		}
	}
	have := make(map[cas.ID][]byte)
	var runs [][]syncproto.ChunkRef
	var run []syncproto.ChunkRef
	var runBytes int
	asked := make(map[cas.ID]bool)
	for _, l := range lists {
		for _, c := range l.Chunks {
			if _, dup := have[c.ID]; dup || asked[c.ID] {
				continue
			}
			if data, ok := reuse.ReadLocal(ctx, c.ID); ok && len(data) == int(c.Size) {
				have[c.ID] = data
				p.count(func(s *Stats) { s.ChunksReused++ })
				continue
			}
			if len(run) == batchFetchIDs || runBytes+int(c.Size) > batchFetchBytes && len(run) > 0 {
				runs = append(runs, run)
				run, runBytes = nil, 0
			}
			asked[c.ID] = true
			run = append(run, c)
			runBytes += int(c.Size)
		}
	}
	if len(run) > 0 {
		runs = append(runs, run)
	}
	fetched := make([][][]byte, len(runs))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(fetchAhead)
	for i, run := range runs {
		g.Go(func() error {
			data, err := e.fetchRun(gctx, r.Name, run, reuse, dicts, p)
			fetched[i] = data
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, run := range runs {
		for j, c := range run {
			have[c.ID] = fetched[i][j]
		}
	}
	return have, nil
}

// stagedItem is a batch's file written next to its target.
type stagedItem struct {
	pullItem
	refs      []syncproto.ChunkRef
	file      *StagedFile
	scannedAt int64
}

// stageBatch writes each file of the batch next to its target after
// checking its content against its hash; fsynced one by one only where
// the file system cannot be synced whole. A file that cannot be written
// goes to fail.
func (e *Engine) stageBatch(ctx context.Context, r Root, items []pullItem, lists []syncproto.ChunkListResult, chunks map[cas.ID][]byte, fail func(string, error) error, p *pass) ([]stagedItem, error) {
	staged := make([]stagedItem, 0, len(items))
	checked := make(map[string]bool) // directories made and checked by this batch
	abortAll := func() {
		for _, s := range staged {
			s.file.Abort()
		}
	}
	for i, it := range items {
		path := it.head.GetPath()
		pieces := make([][]byte, len(lists[i].Chunks))
		for j, c := range lists[i].Chunks {
			pieces[j] = chunks[c.ID]
		}
		scannedAt := e.opts.Now().UnixNano()
		mode := fs.FileMode(it.head.GetMode()).Perm()
		err := checkContent(pieces, lists[i].Chunks, lists[i].Size, it.hash)
		var f *StagedFile
		if err == nil {
			f, err = StageFile(ctx, r.Dir, path, mode, time.Unix(0, it.head.GetMtime()), !atomicfile.CanSyncFS, pieces, checked)
		}
		if err != nil {
			if err := fail(path, err); err != nil {
				abortAll()
				return nil, err
			}
			continue
		}
		staged = append(staged, stagedItem{pullItem: it, refs: lists[i].Chunks, file: f, scannedAt: scannedAt})
		p.progress.moved(Download, lists[i].Size)
	}
	return staged, nil
}

// checkContent checks that pieces, the chunks of list, are size bytes
// hashing to hash. A one-chunk file's hash is its chunk's ID, which the
// chunk was checked against when it arrived.
func checkContent(pieces [][]byte, list []syncproto.ChunkRef, size int64, hash cas.ID) error {
	if len(list) == 1 && list[0].ID == hash && int64(len(pieces[0])) == size {
		return nil
	}
	h := blake3.New()
	var n int64
	for _, d := range pieces {
		_, _ = h.Write(d) // a hasher never fails
		n += int64(len(d))
	}
	return checkDownloaded(h, n, size, hash)
}

// publishBatch makes the staged files durable, renames each into place
// unless its local file changed since it was decided, makes the renames
// durable and records the files in one transaction. A crash before the
// records leaves complete files in place without records, as a crash
// between WriteFileAtomic and its record does: the next scan finds them
// and their content equals the server's.
func (e *Engine) publishBatch(ctx context.Context, r Root, reuse *ReuseIndex, staged []stagedItem, fail func(string, error) error, p *pass) error {
	if len(staged) == 0 {
		return nil
	}
	abortFrom := func(i int) {
		for _, s := range staged[i:] {
			s.file.Abort()
		}
	}
	if err := checkRootDir(r.Dir); err != nil {
		abortFrom(0)
		return err
	}
	if atomicfile.CanSyncFS {
		if err := atomicfile.SyncFS(r.Dir); err != nil {
			abortFrom(0)
			return fmt.Errorf("client: sync the files of %q: %w", r.Dir, err)
		}
	}
	recs := make([]FileRecord, 0, len(staged))
	var olds [][]syncproto.ChunkRef
	dirs := make(map[string]bool)
	for i, s := range staged {
		path := s.head.GetPath()
		safe, err := safeToReplaceTarget(ctx, s.file.target, path, s.rec)
		if err == nil && !safe {
			s.file.Abort() // the next scan finds the local change and pushes it
			continue
		}
		var st FileStat
		if err == nil {
			st, err = s.file.Publish()
		}
		if err != nil {
			s.file.Abort()
			if err := fail(path, err); err != nil {
				abortFrom(i + 1)
				return err
			}
			continue
		}
		dirs[filepath.Dir(s.file.target)] = true
		rec := FileRecord{
			Path: path, BaseSeq: s.head.GetSeq(), BaseHash: s.hash, Hash: s.hash, Chunks: s.refs,
			Stat: st, ScannedAt: s.scannedAt,
		}
		var old []syncproto.ChunkRef
		if s.rec != nil {
			rec.LastUpdate = s.rec.LastUpdate
			old = s.rec.Chunks
		}
		recs = append(recs, rec)
		olds = append(olds, old)
	}
	if err := syncDirs(r.Dir, dirs); err != nil {
		return err
	}
	if err := e.st.PutFiles(ctx, r.Name, recs); err != nil {
		return err
	}
	for i, rec := range recs {
		reuse.replaceFile(rec.Path, olds[i], rec.Chunks)
	}
	p.count(func(s *Stats) { s.FilesDownloaded += len(recs) })
	return nil
}

// syncDirs makes the renames into dirs durable: one syncfs of the root
// where there is one, else an fsync per directory.
func syncDirs(root string, dirs map[string]bool) error {
	if len(dirs) == 0 {
		return nil
	}
	if atomicfile.CanSyncFS {
		if err := atomicfile.SyncFS(root); err != nil {
			return fmt.Errorf("client: sync the renames in %q: %w", root, err)
		}
		return nil
	}
	for d := range dirs {
		if err := atomicfile.SyncDir(d); err != nil {
			return fmt.Errorf("client: sync directory %q: %w", d, err)
		}
	}
	return nil
}

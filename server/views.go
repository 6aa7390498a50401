package server

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/conflict"
	"github.com/quic-s/quics/internal/atomicfile"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
)

// Subdirectories of a root's view.
const (
	latestDir   = "latest"
	conflictDir = "conflict"
	historyDir  = "history"
)

// viewWorkers is how many files are materialized at once.
const viewWorkers = 2

// tempPrefix starts the names of files being written into a view.
const tempPrefix = ".quics-view-"

// views materializes heads and conflict candidates under DataDir/sync.
// Views are projections of the manifest: every job re-reads what it
// materializes when it runs, so jobs can be coalesced and run in any
// order, and the last job for a path always leaves the current state.
// A failure is logged and never reaches the client: deleting the views
// loses nothing.
type views struct {
	viewWriter
	ctx  context.Context
	stop context.CancelFunc

	mu    sync.Mutex
	work  *sync.Cond // a job was queued, or closing
	idle  *sync.Cond // no job queued or running
	state map[viewJob]jobState
	fifo  []viewJob
	// running are the jobs the workers hold now.
	running []viewJob
	// gone are removed roots, whose jobs are discarded: their folders
	// were deleted and must stay deleted.
	gone map[manifest.RootID]struct{}
	done bool
	wg   sync.WaitGroup
}

type viewKind uint8

const (
	viewLatest viewKind = iota + 1
	viewConflict
)

type viewJob struct {
	kind     viewKind
	root     manifest.RootID
	rootName string
	path     string
}

type jobState uint8

const (
	jobQueued  jobState = iota + 1
	jobRunning          // and nothing new since it started
	jobRerun            // running, and queued again
)

func newViews(s *Server, dir string) *views {
	ctx, stop := context.WithCancel(context.Background())
	v := &views{viewWriter: viewWriter{s: s, dir: dir}, ctx: ctx, stop: stop, state: make(map[viewJob]jobState), gone: make(map[manifest.RootID]struct{})}
	v.work = sync.NewCond(&v.mu)
	v.idle = sync.NewCond(&v.mu)
	for range viewWorkers {
		v.wg.Go(v.worker)
	}
	return v
}

func (v *views) updateLatest(root manifest.RootID, rootName, p string) {
	v.enqueue(viewJob{kind: viewLatest, root: root, rootName: rootName, path: p})
}

func (v *views) updateConflict(root manifest.RootID, rootName, p string) {
	v.enqueue(viewJob{kind: viewConflict, root: root, rootName: rootName, path: p})
}

func (v *views) enqueue(j viewJob) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, gone := v.gone[j.root]; gone || v.done {
		return
	}
	switch v.state[j] {
	case jobQueued, jobRerun:
	case jobRunning:
		// Queued now, in commit order with other paths' jobs; next
		// holds it back until the running one ends.
		v.state[j] = jobRerun
		v.fifo = append(v.fifo, j)
		v.work.Signal()
	default:
		v.state[j] = jobQueued
		v.fifo = append(v.fifo, j)
		v.work.Signal()
	}
}

func (v *views) worker() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for {
		var j viewJob
		for !v.done {
			var ok bool
			if j, ok = v.take(); ok {
				break
			}
			v.work.Wait()
		}
		if v.done {
			return
		}
		v.mu.Unlock()
		v.run(j)
		v.mu.Lock()
		v.running = slices.DeleteFunc(v.running, func(r viewJob) bool { return r == j })
		if v.state[j] == jobRerun && !v.done {
			v.state[j] = jobQueued // and in the queue since enqueue
		} else {
			delete(v.state, j)
		}
		// Another worker may be waiting for this job's path to be free.
		v.work.Broadcast()
		// Every end of a job, not only the last: dropRoot waits for the
		// jobs of one root.
		v.idle.Broadcast()
	}
}

// take removes the next job a worker may start (see next) from the
// queue and marks it running. v.mu is held.
func (v *views) take() (viewJob, bool) {
	i := v.next()
	if i < 0 {
		return viewJob{}, false
	}
	j := v.fifo[i]
	if i == 0 {
		// The usual case, and O(1): a queue of a whole tree's jobs
		// must not be copied once per job.
		v.fifo[0] = viewJob{}
		v.fifo = v.fifo[1:]
	} else {
		v.fifo = slices.Delete(v.fifo, i, i+1)
	}
	v.state[j] = jobRunning
	v.running = append(v.running, j)
	return j, true
}

// nextScan bounds how far into the queue a worker looks for a job it may
// start, so that many jobs held back by one running job cost little.
const nextScan = 64

// next returns the index in v.fifo of the first job that clashes with no
// running job and with no job queued before it, or -1. A file "c" and a
// file "c/d" share a place in the view (the one written last wins), so
// they must be written one after the other, in the order of their
// commits. v.mu is held.
func (v *views) next() int {
	var held []viewJob
	for i, j := range v.fifo[:min(len(v.fifo), nextScan)] {
		if clashesAny(j, v.running) || clashesAny(j, held) {
			held = append(held, j)
			continue
		}
		return i
	}
	return -1
}

func clashesAny(j viewJob, others []viewJob) bool {
	for _, o := range others {
		if o.kind == j.kind && o.root == j.root && pathsClash(o.path, j.path) {
			return true
		}
	}
	return false
}

// pathsClash reports whether a and b are the same path or one lies under
// the other.
func pathsClash(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return strings.HasPrefix(b, a) && (len(a) == len(b) || b[len(a)] == '/')
}

// wait returns when no job is queued or running.
func (v *views) wait() {
	v.mu.Lock()
	defer v.mu.Unlock()
	for len(v.state) > 0 && !v.done {
		v.idle.Wait()
	}
}

// dropRoot discards the queued jobs of root, waits for its running ones
// and refuses any later ones: the root was removed, and its folder is
// deleted once this returns.
func (v *views) dropRoot(root manifest.RootID) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.gone[root] = struct{}{}
	v.fifo = slices.DeleteFunc(v.fifo, func(j viewJob) bool { return j.root == root })
	for j, st := range v.state {
		switch {
		case j.root != root:
		case st == jobQueued:
			delete(v.state, j)
		default:
			v.state[j] = jobRunning // no rerun
		}
	}
	v.idle.Broadcast() // wait() may have been waiting for the discarded jobs
	for v.busyWith(root) && !v.done {
		v.idle.Wait()
	}
}

// busyWith reports whether a job of root is running. v.mu is held.
func (v *views) busyWith(root manifest.RootID) bool {
	for j := range v.state {
		if j.root == root {
			return true
		}
	}
	return false
}

// close abandons queued jobs, interrupts running ones and waits for the
// workers.
func (v *views) close() {
	v.mu.Lock()
	v.done = true
	v.fifo = nil
	v.work.Broadcast()
	v.idle.Broadcast()
	v.mu.Unlock()
	v.stop()
	v.wg.Wait()
}

func (v *views) run(j viewJob) {
	// A rebuild of the views (RebuildViews) runs alone.
	v.s.viewLock.RLock()
	defer v.s.viewLock.RUnlock()
	var err error
	switch j.kind {
	case viewLatest:
		err = v.materializeLatest(v.ctx, j)
	case viewConflict:
		err = v.materializeConflict(v.ctx, j)
	}
	if err != nil && v.ctx.Err() == nil {
		v.s.log.Warn("server: view not updated", "root", j.rootName, "path", j.path, "err", err)
	}
}

// viewWriter materializes files under dir (DataDir/sync): what the
// background views do job by job, and RebuildViews and ExportHistory do
// on request.
type viewWriter struct {
	s   *Server
	dir string
}

func (s *Server) viewWriter() viewWriter {
	return viewWriter{s: s, dir: filepath.Join(s.dataDir, SyncDir)}
}

// rootDir is DataDir/sync/<root>/<sub>, confined like a sync path.
func (v viewWriter) rootDir(rootName, sub string) (string, error) {
	return relpath.Join(v.dir, rootName+"/"+sub)
}

// materializeLatest makes DataDir/sync/<root>/latest/<path> the file's
// current head, or removes it if the head is a deletion.
func (v viewWriter) materializeLatest(ctx context.Context, j viewJob) error {
	base, err := v.rootDir(j.rootName, latestDir)
	if err != nil {
		return err
	}
	target, err := relpath.Join(base, j.path)
	if err != nil {
		return err
	}
	head, err := v.s.db.Head(ctx, j.root, j.path)
	if errors.Is(err, manifest.ErrNotFound) || (err == nil && head.Deleted) {
		return removeFile(base, target)
	}
	if err != nil {
		return err
	}
	err = v.s.writeView(ctx, base, j.path, head.Hash, head.Mode, head.MTime)
	v.askIfDamaged(ctx, j, head.Hash, err)
	return err
}

// askIfDamaged asks the root's clients for the content of hash when err
// says the store lost or corrupted one of its chunks.
func (v viewWriter) askIfDamaged(ctx context.Context, j viewJob, hash cas.ID, err error) {
	if !errors.Is(err, cas.ErrCorrupt) && !errors.Is(err, cas.ErrMissing) {
		return
	}
	if _, aerr := v.s.RequestContent(ctx, j.rootName, j.path, hash); aerr != nil {
		v.s.log.Warn("server: cannot ask for damaged content", "root", j.rootName, "path", j.path, "err", aerr)
	}
}

// materializeConflict writes every side of the path's conflict to
// DataDir/sync/<root>/conflict/<path>/<candidate name> and removes files
// of sides that are gone; with no conflict left, the directory goes.
func (v viewWriter) materializeConflict(ctx context.Context, j viewJob) error {
	base, err := v.rootDir(j.rootName, conflictDir)
	if err != nil {
		return err
	}
	dir, err := relpath.Join(base, j.path)
	if err != nil {
		return err
	}
	c, err := v.s.db.Conflict(ctx, j.root, j.path)
	if errors.Is(err, manifest.ErrNotFound) {
		return removeCandidates(dir, nil)
	}
	if err != nil {
		return err
	}
	keep := make(map[string]bool)
	var errs []error
	for _, cand := range c.Candidates {
		if cand.Deleted {
			continue // a deletion has nothing to show
		}
		name := v.s.candidateName(ctx, j.path, cand)
		keep[name] = true
		if err := v.s.writeView(ctx, base, j.path+"/"+name, cand.Hash, cand.Mode, cand.MTime); err != nil {
			v.askIfDamaged(ctx, j, cand.Hash, err)
			errs = append(errs, err)
		}
	}
	if err := removeCandidates(dir, keep); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// sideName is the name a candidate's file starts with: "server", or the
// proposing client's device name (its ID if it has none or is gone).
func (s *Server) sideName(ctx context.Context, c manifest.Candidate) string {
	if c.Kind == manifest.CandidateServer {
		return conflict.ServerSide
	}
	if cl, err := s.db.Client(ctx, c.Client); err == nil && cl.Name != "" {
		return cl.Name
	}
	if c.Client == uuid.Nil {
		return "client"
	}
	return c.Client.String()
}

// candidateName is the file name of a candidate of the conflict on p, in
// the conflict view and in listings.
func (s *Server) candidateName(ctx context.Context, p string, c manifest.Candidate) string {
	return conflict.CandidateName(s.sideName(ctx, c), c.Hash, path.Base(p))
}

// removeCandidates removes the regular files in dir that keep does not
// name (nil keep: all of them, and then dir if it is empty). Directories
// inside belong to the conflicts of longer paths and stay.
func removeCandidates(dir string, keep map[string]bool) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscallNotDir) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() || keep[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if keep == nil {
		_ = os.Remove(dir) // only if empty
	}
	return errors.Join(errs...)
}

// writeView atomically writes the content hash (read chunk by chunk from
// the store and verified) to base/rel: a temporary file in the target
// directory, fsync, rename. Whatever stands in the way — a file where a
// directory is needed, a directory or symlink where the file goes — is a
// stale projection and is removed.
func (s *Server) writeView(ctx context.Context, base, rel string, hash cas.ID, mode uint32, mtime time.Time) (err error) {
	target, err := relpath.Join(base, rel)
	if err != nil {
		return err
	}
	if _, err := makeParents(base, rel); err != nil {
		return err
	}
	f, err := atomicfile.Create(target, tempPrefix+"*")
	if err != nil {
		return err
	}
	defer f.Abort() // after Commit, a no-op
	if err := s.WriteContent(ctx, hash, f); err != nil {
		return err
	}
	if fi, lerr := os.Lstat(target); lerr == nil && fi.IsDir() {
		if err := os.RemoveAll(target); err != nil {
			return err
		}
	}
	_, err = f.Commit(fs.FileMode(mode&0o777|0o600), mtime)
	return err
}

// makeParents creates the directories of rel's parent under base (base
// itself with MkdirAll), replacing any file or symlink in the way, and
// returns the parent directory.
func makeParents(base, rel string) (string, error) {
	if err := os.MkdirAll(base, 0o755); err != nil {
		return "", err
	}
	cur := base
	segs := strings.Split(rel, "/")
	for _, seg := range segs[:len(segs)-1] {
		cur = filepath.Join(cur, seg)
		fi, err := os.Lstat(cur)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			if err := os.Remove(cur); err != nil {
				return "", err
			}
		case !errors.Is(err, fs.ErrNotExist):
			return "", err
		}
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return cur, nil
}

// removeFile removes target and then its parents up to base while they
// are empty.
func removeFile(base, target string) error {
	fi, err := os.Lstat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscallNotDir):
		return nil
	case err != nil:
		return err
	case fi.IsDir():
		// A directory of other files' views: the deleted file is not
		// what is shown here.
		return nil
	}
	if err := os.Remove(target); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for dir := filepath.Dir(target); dir != base && strings.HasPrefix(dir, base+string(filepath.Separator)); dir = filepath.Dir(dir) {
		if os.Remove(dir) != nil {
			break // not empty, or gone
		}
	}
	return nil
}

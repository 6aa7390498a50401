package client

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// Session is a server session as continuous mode needs it: the engine's
// transactions, the watch stream, and its end.
type Session interface {
	Remote
	Watch(ctx context.Context, cursors []*syncpb.WatchRequest_Cursor, fn func(*syncpb.Notice) error) error
	Done() <-chan struct{}
	Close() error
}

var _ Session = (*syncproto.Client)(nil)

// Defaults of continuous mode.
const (
	DefaultScanInterval = 5 * time.Minute
	DefaultDebounce     = 100 * time.Millisecond
	minBackoff          = 250 * time.Millisecond
	maxBackoff          = 30 * time.Second
)

// RunOptions configure [Run].
type RunOptions struct {
	// Dial opens a new session; Run calls it again, with backoff, whenever
	// the session ends.
	Dial func(ctx context.Context) (Session, error)
	// ScanInterval is the period of full passes over every root; 0 means
	// DefaultScanInterval.
	ScanInterval time.Duration
	// Debounce is how long local file events settle before a root is
	// scanned; 0 means DefaultDebounce.
	Debounce time.Duration
	// Engine tunes the sync engine of each session.
	Engine EngineOptions
	// OnPass, when set, is told the outcome of every pass.
	OnPass func(root string, res PassResult, err error)
	// OnNeedContent, when set, is told the outcome of every need-content
	// notice answered ([Engine.ResendContent]): chunks sent, or the error.
	OnNeedContent func(root, path string, sent int, err error)
	// OnConflict, when set, is told of every conflict notice: a conflict
	// appeared on path (whichever client's change caused it).
	OnConflict func(root, path string)
	// Logger receives connection reports; nil means slog.Default.
	Logger *slog.Logger
}

// Run keeps every root of st in sync until ctx ends: it listens to the
// server's watch stream (a must-sync notice pulls that root, a force-sync
// notice replaces one file: [Engine.ForceSync], a conflict notice is
// logged), to local file events (debounced, then the paths they name are
// scanned and pushed: [Engine.SyncPaths]; the whole root after an event
// queue overflow or more than maxEventPaths paths), and runs a full pass
// over every root at start and every ScanInterval. A lost session is
// dialed again with exponential backoff. It returns nil when ctx ends, and
// an error only when the server refuses the client for good (unknown
// client or token, or a changed certificate).
func Run(ctx context.Context, st *State, opts RunOptions) error {
	if opts.Dial == nil {
		return errors.New("client: run: no Dial")
	}
	if opts.ScanInterval <= 0 {
		opts.ScanInterval = DefaultScanInterval
	}
	if opts.Debounce <= 0 {
		opts.Debounce = DefaultDebounce
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	backoff := minBackoff
	for {
		sess, err := opts.Dial(ctx)
		if err == nil {
			backoff = minBackoff
			err = runSession(ctx, st, sess, opts)
			_ = sess.Close()
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, syncproto.ErrUnauthenticated) || errors.Is(err, tlsutil.ErrFingerprintMismatch) {
			return err
		}
		opts.Logger.Warn("qic: session ended; reconnecting", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// work is what the worker of a session has to do next, per root: a pull
// (after a notice), a pass over some paths (after local events) or a full
// pass (after a timer), and
// the versions the server asked to be sent again.
type work struct {
	mu   sync.Mutex
	full map[string]bool // root → full pass (true) or pull only (false)
	// paths holds, for a root with no full pass due, the sync paths file
	// events named: a pass scans those only (Engine.SyncPaths).
	paths map[string]map[string]bool
	// eventsPartial: some directory could not be watched, or file events
	// failed altogether (see fullPassGap).
	eventsPartial atomic.Bool
	needs         []needContent
	forces        map[forceKey]*syncpb.FileHead // see force
	signal        chan struct{}
}

// needContent is a need-content notice waiting for the worker.
type needContent struct {
	root string
	head *syncpb.FileHead
}

// need queues a need-content notice, unless the same one is queued or
// the queue is full (the server asks again while it still needs it).
func (w *work) need(root string, head *syncpb.FileHead) {
	w.mu.Lock()
	for _, n := range w.needs {
		if n.root == root && n.head.GetPath() == head.GetPath() && string(n.head.GetHash()) == string(head.GetHash()) {
			w.mu.Unlock()
			return
		}
	}
	if len(w.needs) >= maxQueuedNeeds {
		w.mu.Unlock()
		return
	}
	w.needs = append(w.needs, needContent{root: root, head: head})
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *work) takeNeeds() []needContent {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.needs
	w.needs = nil
	return t
}

func newWork() *work {
	return &work{full: map[string]bool{}, paths: map[string]map[string]bool{}, signal: make(chan struct{}, 1)}
}

// maxEventPaths is how many distinct paths of one root a pass follows
// before it scans the whole root instead.
const maxEventPaths = 1024

// addPaths asks for a pass over root that scans paths (sync paths).
func (w *work) addPaths(root string, paths []string) {
	w.mu.Lock()
	if !w.full[root] {
		set := w.paths[root]
		if set == nil {
			set = map[string]bool{}
			w.paths[root] = set
		}
		for _, p := range paths {
			set[p] = true
		}
		if len(set) > maxEventPaths {
			delete(w.paths, root)
			w.full[root] = true
		}
	}
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *work) add(root string, full bool) {
	w.mu.Lock()
	w.full[root] = w.full[root] || full
	if full {
		delete(w.paths, root) // the full pass covers them
	}
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

// take returns the passes due, per root: a full pass (full), one that
// scans the paths in paths, or a pull only; and clears them.
func (w *work) take() (full map[string]bool, paths map[string][]string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	full, w.full = w.full, map[string]bool{}
	paths = map[string][]string{}
	for root, set := range w.paths {
		paths[root] = slices.Sorted(maps.Keys(set))
	}
	clear(w.paths)
	return full, paths
}

// runSession runs continuous mode on one session until it ends.
func runSession(ctx context.Context, st *State, sess Session, opts RunOptions) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	eng := NewEngine(st, sess, opts.Engine)
	roots, err := st.Roots(ctx)
	if err != nil {
		return err
	}
	w := newWork()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel(nil)

	// Watch stream: notices from the server.
	cursors := make([]*syncpb.WatchRequest_Cursor, 0, len(roots))
	for _, r := range roots {
		cursors = append(cursors, &syncpb.WatchRequest_Cursor{Root: r.Name, AfterSeq: r.Cursor})
	}
	wg.Go(func() {
		err := sess.Watch(ctx, cursors, func(n *syncpb.Notice) error {
			switch n.GetKind() {
			case syncpb.Notice_KIND_MUST_SYNC:
				w.add(n.GetRoot(), false)
			case syncpb.Notice_KIND_FORCE_SYNC:
				if n.GetHead() == nil {
					w.add(n.GetRoot(), false)
				} else {
					w.force(n.GetRoot(), n.GetHead())
				}
			case syncpb.Notice_KIND_FULL_SCAN:
				w.add(n.GetRoot(), true)
			case syncpb.Notice_KIND_NEED_CONTENT:
				w.need(n.GetRoot(), n.GetHead())
			case syncpb.Notice_KIND_CONFLICT:
				// Nothing to sync: the head stays until someone resolves
				// it, but whoever runs this client should know.
				opts.Logger.Warn("qic: conflict; see qic conflict list", "root", n.GetRoot(), "path", n.GetHead().GetPath())
				if opts.OnConflict != nil {
					opts.OnConflict(n.GetRoot(), n.GetHead().GetPath())
				}
			}
			return nil
		})
		cancel(fmt.Errorf("watch: %w", err))
	})
	// Local events.
	wg.Go(func() {
		if err := watchLocal(ctx, roots, opts.Debounce, w); err != nil && ctx.Err() == nil {
			w.eventsPartial.Store(true)
			opts.Logger.Warn("qic: local file events unavailable; relying on periodic scans", "err", err)
		}
	})
	// Periodic full passes, the first at once; then each root's next one
	// is due fullPassGap after its last.
	for _, r := range roots {
		w.add(r.Name, true)
	}
	fullDue := map[string]time.Time{}
	ticker := time.NewTicker(opts.ScanInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-sess.Done():
			return errors.New("connection closed")
		case <-ticker.C:
			now := time.Now()
			for _, r := range roots {
				if !now.Before(fullDue[r.Name]) {
					w.add(r.Name, true)
				}
			}
		case <-w.signal:
			// Content the server lost first: other clients' downloads
			// wait for it.
			for _, n := range w.takeNeeds() {
				if err := answerNeed(ctx, eng, n, opts); err != nil {
					return err
				}
			}
			// Resolved conflicts before pulls: a pass would push the
			// losing local change again.
			for k, head := range w.takeForces() {
				if err := answerForce(ctx, eng, k, head, opts); err != nil {
					return err
				}
			}
			full, paths := w.take()
			for root := range paths {
				if _, ok := full[root]; !ok {
					full[root] = false
				}
			}
			for root, whole := range full {
				var res PassResult
				var err error
				switch {
				case whole:
					res, err = eng.SyncRoot(ctx, root)
					if err == nil {
						fullDue[root] = time.Now().Add(fullPassGap(opts.ScanInterval, res.ScanMS, w.eventsPartial.Load()))
					}
				case paths[root] != nil:
					res, err = eng.SyncPaths(ctx, root, paths[root])
				default:
					res, err = eng.PullRoot(ctx, root)
				}
				if opts.OnPass != nil {
					opts.OnPass(root, res, err)
				}
				if err != nil {
					if ctx.Err() != nil {
						return context.Cause(ctx)
					}
					opts.Logger.Warn("qic: sync pass failed", "root", root, "err", err)
					if isFatal(err) {
						return err
					}
				}
			}
		}
	}
}

// The periodic full passes of `qic run` spend at most about 1/fullScanShare
// of the time scanning, or 1/partialScanShare when file events do not
// cover every directory (then these scans are what finds changes there).
// A root whose full scan takes longer than that share of the scan
// interval is scanned whole less often; file events, which scan only the
// paths they name, keep it in sync meanwhile.
const (
	fullScanShare    = 100
	partialScanShare = 10
)

// fullPassGap returns the time from one periodic full pass of a root to
// the next: the scan interval, or the share's multiple of the last full
// scan (in ms), whichever is longer. A root of millions of files whose
// full scan takes a minute is then scanned whole every 100 minutes, not
// every 5.
func fullPassGap(interval time.Duration, scanMS int64, eventsPartial bool) time.Duration {
	share := time.Duration(fullScanShare)
	if eventsPartial {
		share = partialScanShare
	}
	return max(interval, time.Duration(scanMS)*time.Millisecond*share)
}

// answerNeed re-sends the content a need-content notice asks for, if this
// client holds it. Only a failure of the session is returned.
func answerNeed(ctx context.Context, eng *Engine, n needContent, opts RunOptions) error {
	sent, err := eng.ResendContent(ctx, n.root, n.head)
	if opts.OnNeedContent != nil {
		opts.OnNeedContent(n.root, n.head.GetPath(), sent, err)
	}
	switch {
	case err == nil:
		opts.Logger.Info("qic: re-sent content the server asked for", "root", n.root, "path", n.head.GetPath(), "chunks", sent)
	case errors.Is(err, ErrNotHeld), errors.Is(err, ErrRootMissing):
		opts.Logger.Debug("qic: cannot answer need-content", "root", n.root, "path", n.head.GetPath(), "err", err)
	case ctx.Err() != nil:
		return context.Cause(ctx)
	case isFatal(err):
		return err
	default:
		opts.Logger.Warn("qic: need-content not answered", "root", n.root, "path", n.head.GetPath(), "err", err)
	}
	return nil
}

// watchLocal turns file events under the roots into passes over the paths
// they name, debounced. New directories are watched as they
// appear; the client's own temporary files are ignored.
func watchLocal(ctx context.Context, roots []Root, debounce time.Duration, w *work) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	for _, r := range roots {
		if failed, why := addTree(fw, r.Dir, w); failed > 0 {
			slog.Warn("qic: some directories cannot be watched; changes in them are found by the periodic scans (on Linux, raise fs.inotify.max_user_watches)",
				"root", r.Name, "directories", failed, "err", why)
		}
	}
	// rootOf returns the root of an event's file name and its sync path
	// there ("" for the root directory itself).
	rootOf := func(name string) (root, path string, ok bool) {
		for _, r := range roots {
			if name == r.Dir {
				return r.Name, "", true
			}
			if rel, found := strings.CutPrefix(name, r.Dir+string(filepath.Separator)); found {
				return r.Name, filepath.ToSlash(rel), true
			}
		}
		return "", "", false
	}
	// dirty holds, per root, the sync paths events named; nil for the
	// whole root.
	dirty := map[string]map[string]bool{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-fw.Errors:
			if !ok {
				return nil
			}
			// An overflow loses events: scan everything.
			slog.Debug("qic: file events", "err", err)
			for _, r := range roots {
				dirty[r.Name] = nil
			}
			timer.Reset(debounce)
		case ev, ok := <-fw.Events:
			if !ok {
				return nil
			}
			if IsTempName(filepath.Base(ev.Name)) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
					if failed, why := addTree(fw, ev.Name, w); failed > 0 {
						slog.Debug("qic: new directories not watched", "dir", ev.Name, "directories", failed, "err", why)
					}
				}
			}
			if root, path, ok := rootOf(ev.Name); ok {
				set, seen := dirty[root]
				switch {
				case path == "":
					dirty[root] = nil // the root directory itself
				case !seen:
					dirty[root] = map[string]bool{path: true}
				case set != nil:
					set[path] = true
				}
				timer.Reset(debounce)
			}
		case <-timer.C:
			for root, set := range dirty {
				if set == nil {
					w.add(root, true)
				} else {
					w.addPaths(root, slices.Collect(maps.Keys(set)))
				}
			}
			clear(dirty)
		}
	}
}

// addTree watches dir and every directory below it, not following
// symlinks. Directories that cannot be watched are left to the periodic
// scan.
//
// It returns how many directories could not be watched, and why the first
// could not.
func addTree(fw *fsnotify.Watcher, dir string, w *work) (failed int, why error) {
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			return nil
		}
		if err := fw.Add(path); err != nil {
			// Out of watches (fs.inotify.max_user_watches), say: the
			// periodic scans must come as often as the interval says.
			w.eventsPartial.Store(true)
			if failed++; why == nil {
				why = err
			}
		}
		return nil
	})
	return failed, why
}

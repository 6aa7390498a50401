package client

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"golang.org/x/sync/errgroup"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/syncproto"
)

// ChangeKind says how a file changed since the scan before.
type ChangeKind uint8

// Change kinds.
const (
	// ChangeNew is a file the state had no (live) record of.
	ChangeNew ChangeKind = iota + 1
	// ChangeModified is a file whose content changed.
	ChangeModified
	// ChangeDeleted is a recorded file that is gone.
	ChangeDeleted
	// ChangeMode is a file whose permission bits changed, content equal.
	ChangeMode
)

func (k ChangeKind) String() string {
	switch k {
	case ChangeNew:
		return "new"
	case ChangeModified:
		return "modified"
	case ChangeDeleted:
		return "deleted"
	case ChangeMode:
		return "mode"
	}
	return fmt.Sprintf("ChangeKind(%d)", uint8(k))
}

// FileChange is a local change found by a scan. The same change is also
// recorded in the state as pending, so it survives a crash before the push.
type FileChange struct {
	Path string
	Kind ChangeKind
	// Hash, Size, Mode, MTime (Unix ns) and Chunks describe the new local
	// content; zero for ChangeDeleted.
	Hash   cas.ID
	Size   int64
	Mode   uint32
	MTime  int64
	Chunks []syncproto.ChunkRef
}

// Warning is a local file or directory the scan skipped, and why (the error
// wraps ErrSymlink, ErrInvalidName, ErrNotRegular, ErrUnreadable or
// ErrChangedWhileReading).
type Warning struct {
	Root string
	// Path is the skipped name relative to the root, '/'-separated; it may
	// be exactly what the sync path rule refused.
	Path string
	Err  error
}

func (w Warning) String() string {
	return fmt.Sprintf("root %q: skipping %q: %v", w.Root, w.Path, w.Err)
}

// ScanOptions tune a Scanner. The zero value is usable.
type ScanOptions struct {
	// Workers is how many files are hashed at once; 0 means GOMAXPROCS.
	Workers int
	// RacyMargin is the timestamp granularity of the racy rule ([IsRacy]);
	// 0 means DefaultRacyMargin.
	RacyMargin time.Duration
	// Warn receives every skipped file, in walk order and from one
	// goroutine at a time; nil logs them with slog.Default.
	Warn func(Warning)
	// Now is the clock for ScannedAt; nil means time.Now. Tests fake it.
	Now func() time.Time
}

// Scanner finds local changes of a root by comparing its directory with
// the state's records, and records what it finds.
type Scanner struct {
	st   *State
	opts ScanOptions
}

// NewScanner returns a Scanner over st.
func NewScanner(st *State, opts ScanOptions) *Scanner {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.RacyMargin <= 0 {
		opts.RacyMargin = DefaultRacyMargin
	}
	if opts.Warn == nil {
		opts.Warn = func(w Warning) {
			slog.Warn("skipping local file", "root", w.Root, "path", w.Path, "err", w.Err)
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Scanner{st: st, opts: opts}
}

// ScanResult is what one scan found.
type ScanResult struct {
	// Changes are the changes found, in path order.
	Changes []FileChange
	// Files counts the regular files seen, Unchanged those a stat proved
	// unchanged, Hashed those read (HashedBytes bytes), Skipped the
	// warnings.
	Files, Unchanged, Hashed, Skipped int
	HashedBytes                       int64
}

// hashJob is a file the stat could not prove unchanged, or a warning of
// the walk (jobNoted), on its way from the walk to the recorder.
type hashJob struct {
	path string // sync path
	name string // local file name

	// Filled in by the worker:
	outcome jobOutcome
	done    chan struct{} // closed once the outcome is known; nil for a note
	// warning explains a jobSkipped or a jobNoted. Warnings are delivered
	// by the recorder, in walk order, so Warn need not be safe for
	// concurrent use.
	warning   error
	keep      bool // a jobNoted whose record must stay as it is
	stat      FileStat
	scannedAt int64
	hashed    hashed
}

type jobOutcome uint8

const (
	jobHashed  jobOutcome = iota + 1
	jobGone               // vanished after it was listed
	jobSkipped            // warned about; its record stays as it was
	jobNoted              // a warning of the walk; nothing to read
)

// scanWalk is the state of one walk over a root. The walk's goroutine
// owns seen, kept, res.Files and res.Unchanged; the recorder's owns keep,
// gone and the rest of res. Both are done before recordGone reads them.
type scanWalk struct {
	root    Root
	dir     string
	records map[string]scanEntry
	seed    maphash.Seed // of the entries' sums
	// seen holds the recorded paths the walk found.
	seen map[string]bool
	// gone holds the paths found gone when they were to be read.
	gone map[string]bool
	// scopes, if not nil, are the sync paths a ScanPaths looks at.
	scopes []string
	// keep holds paths, and kept holds directory prefixes (ending in "/"),
	// whose records must stay untouched: they could not be read this time.
	keep      map[string]bool
	kept      []string
	res       ScanResult
	filesGone int
	// enqueue hands a job to the hash workers (unless it is a note) and
	// then to the recorder.
	enqueue func(*hashJob) error
	// cleanTemps removes the temporary files a crash left, on the way:
	// a sync pass would otherwise walk the tree twice.
	cleanTemps bool
	// keepChanges lists the changes in res.Changes; a sync pass, which
	// needs none, does not hold every new chunk list until the end.
	keepChanges bool
}

// scanEntry is what a scan holds of a stored record: what the walk compares
// a stat with, and a sum of the record's bytes by which the recorder knows
// the record is still the one the walk compared with. A tree of millions
// of files costs a few dozen bytes each, not a whole record.
type scanEntry struct {
	stat      FileStat
	scannedAt int64
	sum       uint64
	deleted   bool
}

// note hands the recorder a warning about path; with keep, path's record
// stays as it is.
func (w *scanWalk) note(path string, err error, keep bool) error {
	return w.enqueue(&hashJob{path: path, outcome: jobNoted, warning: err, keep: keep})
}

// Scan walks root's directory, hashes and chunks every new or changed file,
// records the changes as pending in the state and returns them.
//
// Symlinks are never followed; they are skipped with a warning, as are
// names the sync path rule refuses (with everything below them), devices,
// sockets and pipes, and files that cannot be read. Files and directories
// whose name starts with TempPrefix are the client's own and are skipped
// silently. Nothing else is skipped. Directories are not recorded: a
// directory exists on the other side once it holds a file.
//
// A file that could not be read keeps its record as it was; it is not
// reported deleted. If the root directory itself is missing, Scan fails
// with ErrRootMissing instead of reporting every file deleted.
func (s *Scanner) Scan(ctx context.Context, rootName string) (ScanResult, error) {
	return s.scan(ctx, rootName, false, nil)
}

// ScanPaths is Scan limited to the given sync paths and what is under
// each: the files there are compared with their records, and only the
// records there can be found deleted. It is how `qic run` follows file
// events without walking a whole large tree for each. A path under a
// symlink, a refused name or a temporary directory is skipped, as a full
// scan would skip it.
func (s *Scanner) ScanPaths(ctx context.Context, rootName string, paths []string) (ScanResult, error) {
	return s.scan(ctx, rootName, false, scopesOf(paths))
}

// scopesOf returns paths without those under another of them, sorted;
// nil if one is the whole root ("" or ".").
func scopesOf(paths []string) []string {
	out := make([]string, 0, len(paths))
	for _, p := range paths {
		if p == "" || p == "." {
			return nil
		}
		out = append(out, p)
	}
	slices.Sort(out)
	kept := out[:0]
	for _, p := range out {
		if n := len(kept); n > 0 && (p == kept[n-1] || strings.HasPrefix(p, kept[n-1]+"/")) {
			continue
		}
		kept = append(kept, p)
	}
	return kept
}

// scan is Scan, or ScanPaths when scopes is not nil. For a sync pass
// (forPass), it also removes the temporary files a crash left (see
// CleanTemps for when that is safe), and leaves ScanResult.Changes empty.
func (s *Scanner) scan(ctx context.Context, rootName string, forPass bool, scopes []string) (ScanResult, error) {
	root, err := s.st.Root(ctx, rootName)
	if err != nil {
		return ScanResult{}, err
	}
	dir, err := filepath.EvalSymlinks(root.Dir)
	if err != nil {
		return ScanResult{}, fmt.Errorf("%w: root %q: %w", ErrRootMissing, rootName, err)
	}
	if err := checkRootDir(dir); err != nil {
		return ScanResult{}, fmt.Errorf("root %q: %w", rootName, err)
	}
	w := &scanWalk{
		root: root, dir: dir, records: map[string]scanEntry{}, seed: maphash.MakeSeed(),
		seen: map[string]bool{}, gone: map[string]bool{}, keep: map[string]bool{},
		cleanTemps: forPass, keepChanges: !forPass,
	}
	load := func(under string, in func(path string) bool) error {
		return s.st.files(ctx, rootName, under, false, func(rec FileRecord, stored []byte) error {
			if in(rec.Path) {
				w.records[rec.Path] = scanEntry{
					stat: rec.Stat, scannedAt: rec.ScannedAt, deleted: rec.Deleted,
					sum: maphash.Bytes(w.seed, stored),
				}
			}
			return nil
		})
	}
	if scopes == nil {
		err = load("", func(string) bool { return true })
	} else {
		w.scopes = scopes
		for _, scope := range scopes {
			if err = load(scope, func(p string) bool { return inScope(p, scope) }); err != nil {
				break
			}
		}
	}
	if err != nil {
		return ScanResult{}, fmt.Errorf("root %q: load records: %w", rootName, err)
	}
	if err := s.walkAndRecord(ctx, w); err != nil {
		return ScanResult{}, fmt.Errorf("root %q: %w", rootName, err)
	}
	w.res.Files -= w.filesGone
	if err := s.recordGone(ctx, w); err != nil {
		return ScanResult{}, fmt.Errorf("root %q: %w", rootName, err)
	}
	sort.Slice(w.res.Changes, func(i, j int) bool { return w.res.Changes[i].Path < w.res.Changes[j].Path })
	return w.res, nil
}

func (s *Scanner) warn(w *scanWalk, path string, err error) {
	w.res.Skipped++
	s.opts.Warn(Warning{Root: w.root.Name, Path: path, Err: err})
}

// visit is the WalkDir callback: it decides for each entry whether it is
// skipped, unchanged, or to be hashed. It runs on the walk's goroutine,
// and hands hash jobs and warnings to the recorder (w.enqueue) in walk
// order.
func (s *Scanner) visit(ctx context.Context, w *scanWalk, name string, d fs.DirEntry, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if name == w.dir {
		return err // an unreadable root is an error, not a warning
	}
	rel, rerr := filepath.Rel(w.dir, name)
	if rerr != nil {
		return rerr
	}
	path := filepath.ToSlash(rel)
	if err != nil {
		// A directory that cannot be listed (or an entry that cannot be
		// stat'ed): keep whatever was recorded below it.
		w.kept = append(w.kept, path+"/")
		if qerr := w.note(path, fmt.Errorf("%w: %w", ErrUnreadable, err), true); qerr != nil {
			return qerr
		}
		if d != nil && d.IsDir() {
			return fs.SkipDir
		}
		return nil
	}
	if IsTempName(d.Name()) {
		if d.IsDir() {
			return fs.SkipDir
		}
		if w.cleanTemps && d.Type().IsRegular() {
			return removeTemp(name)
		}
		return nil
	}
	if d.Type()&fs.ModeSymlink != 0 {
		return w.note(path, fmt.Errorf("%w: not followed", ErrSymlink), false)
	}
	if cerr := relpath.Check(path); cerr != nil {
		if qerr := w.note(path, fmt.Errorf("%w: %w", ErrInvalidName, cerr), false); qerr != nil {
			return qerr
		}
		if d.IsDir() {
			return fs.SkipDir
		}
		return nil
	}
	if d.IsDir() {
		return nil
	}
	if !d.Type().IsRegular() {
		return w.note(path, fmt.Errorf("%w: %s", ErrNotRegular, describeMode(d.Type())), false)
	}
	if rec, ok := w.records[path]; !ok || rec.deleted {
		// Nothing to compare a stat with: the one the hash takes will do.
		w.res.Files++
		return w.enqueue(&hashJob{path: path, name: name})
	}
	fi, err := d.Info()
	if errors.Is(err, fs.ErrNotExist) {
		return nil // gone since the directory was listed: deleted
	}
	if err != nil {
		return w.note(path, fmt.Errorf("%w: %w", ErrUnreadable, err), true)
	}
	if !fi.Mode().IsRegular() { // replaced since the directory was listed
		return w.note(path, fmt.Errorf("%w: %s", ErrNotRegular, describeMode(fi.Mode())), false)
	}
	w.res.Files++
	w.seen[path] = true
	st := statOf(fi)
	if rec := w.records[path]; rec.stat.Same(st) && !IsRacy(rec.stat, rec.scannedAt, s.opts.RacyMargin) {
		w.res.Unchanged++
		return nil
	}
	return w.enqueue(&hashJob{path: path, name: name})
}

// A scan records what it hashed in batches of at most recordFiles files
// or recordBytes bytes read, in walk order: a scan interrupted after hours
// of hashing keeps what it recorded (the next one finds those files
// unchanged), and only a batch's chunk lists are held at once. Variables
// for tests.
var (
	recordFiles       = 1024
	recordBytes int64 = 256 << 20
)

// walkQueue is how many jobs the walk may be ahead of the recorder.
const walkQueue = 4096

// walkAndRecord walks the root's directory, hashes the files the walk
// cannot prove unchanged on a pool of workers (each reusing one
// contentHasher, so memory is Workers × the chunker's buffer) and records
// them in batches as they are done. Memory holds the jobs between the walk
// and the recorder, not every file of the tree. The recorder, one
// goroutine, delivers the warnings in walk order.
func (s *Scanner) walkAndRecord(ctx context.Context, w *scanWalk) error {
	queue := make(chan *hashJob, walkQueue)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(queue)
		hashers := make(chan *contentHasher, s.opts.Workers)
		hg, hctx := errgroup.WithContext(gctx)
		hg.SetLimit(s.opts.Workers)
		w.enqueue = func(job *hashJob) error {
			if job.outcome == 0 {
				job.done = make(chan struct{})
				hg.Go(func() error {
					defer close(job.done)
					var ch *contentHasher
					select {
					case ch = <-hashers:
					default:
						var err error
						if ch, err = newContentHasher(w.root.Chunking); err != nil {
							return err
						}
					}
					err := s.hashOne(hctx, ch, job)
					hashers <- ch
					return err
				})
			}
			select {
			case queue <- job:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		visit := func(name string, d fs.DirEntry, err error) error {
			return s.visit(hctx, w, name, d, err) // stops when a worker fails too
		}
		var err error
		if w.scopes == nil {
			err = filepath.WalkDir(w.dir, visit)
		}
		for _, scope := range w.scopes {
			if err = s.walkScope(w, scope, visit); err != nil {
				break
			}
		}
		if herr := hg.Wait(); herr != nil {
			return herr // the walk stopped for it
		}
		if err != nil {
			return fmt.Errorf("walk %s: %w", w.dir, err)
		}
		return nil
	})
	g.Go(func() error { return s.recordQueue(gctx, w, queue) })
	return g.Wait()
}

// inScope reports whether path is scope or under it.
func inScope(path, scope string) bool {
	return path == scope || (strings.HasPrefix(path, scope) && path[len(scope)] == '/')
}

// walkScope walks the sync path scope as the walk of the whole root would
// meet it: not at all when a directory above it is a symlink, a refused
// name or a temporary directory, or is gone (its records are then found
// deleted, as they would be).
func (s *Scanner) walkScope(w *scanWalk, scope string, visit fs.WalkDirFunc) error {
	if relpath.Check(scope) != nil {
		return nil
	}
	parts := strings.Split(scope, "/")
	name := w.dir
	for i, part := range parts {
		if IsTempName(part) {
			return nil
		}
		name = filepath.Join(name, part)
		if i == len(parts)-1 {
			break
		}
		fi, err := os.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			// What the full walk would do with an unreadable directory.
			return visit(name, nil, err)
		}
		if !fi.IsDir() { // a symlink or a file: nothing below it is synced
			return nil
		}
	}
	if _, err := os.Lstat(name); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(name, visit)
}

// recordQueue records the jobs of queue, in order, in batches.
func (s *Scanner) recordQueue(ctx context.Context, w *scanWalk, queue <-chan *hashJob) error {
	var batch []*hashJob
	var batchBytes int64
	flush := func() error {
		err := s.record(ctx, w, batch)
		batch, batchBytes = batch[:0], 0
		return err
	}
	for job := range queue {
		if job.done != nil {
			select {
			case <-job.done:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		batch = append(batch, job)
		batchBytes += job.hashed.n
		if len(batch) == recordFiles || batchBytes >= recordBytes {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return flush()
}

// hashOne reads one file. Its stat and ScannedAt are taken before the read:
// a write during or after the read then either changes the stat seen after
// it (the file is skipped this time) or leaves an mtime that the racy rule
// catches at the next scan.
func (s *Scanner) hashOne(ctx context.Context, ch *contentHasher, job *hashJob) error {
	job.outcome = jobSkipped
	scannedAt := s.opts.Now().UnixNano()
	f, pre, err := openRegular(job.name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		job.outcome = jobGone
		return nil
	case errors.Is(err, ErrNotRegular):
		job.warning = err
		return nil
	case err != nil:
		job.warning = fmt.Errorf("%w: %w", ErrUnreadable, err)
		return nil
	}
	defer f.Close()
	// Read up to the size only: a file that grew since shows in the stat
	// after the read, and the read that would find EOF is saved.
	h, err := ch.hashSized(ctx, f, pre.Size)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		job.warning = fmt.Errorf("%w: %w", ErrUnreadable, err)
		return nil
	}
	post, err := f.stat()
	if err != nil {
		job.warning = fmt.Errorf("%w: %w", ErrUnreadable, err)
		return nil
	}
	if !post.Same(pre) || h.n != pre.Size {
		job.warning = fmt.Errorf("%w: size %d, read %d bytes", ErrChangedWhileReading, post.Size, h.n)
		return nil
	}
	job.outcome, job.stat, job.scannedAt, job.hashed = jobHashed, pre, scannedAt, h
	return nil
}

// kept reports whether path's record must stay as it is.
func (w *scanWalk) isKept(path string) bool {
	if w.keep[path] {
		return true
	}
	for _, pre := range w.kept {
		if strings.HasPrefix(path, pre) {
			return true
		}
	}
	return false
}

// scanUpdate is one record to write, if the stored record is still the
// one the scan compared with.
type scanUpdate struct {
	path string
	had  bool   // a record was there when the scan began
	sum  uint64 // its sum (see scanEntry)
	// What the scan found: a hashed file, or a deletion.
	deleted   bool
	hashed    hashed
	stat      FileStat
	scannedAt int64
}

// next returns the record that replaces old (nil if none), and the change
// it records (nil if none: a new stat of the same content).
func (up *scanUpdate) next(old *FileRecord) (FileRecord, *FileChange) {
	if up.deleted {
		rec := FileRecord{
			Path: up.path, BaseSeq: old.BaseSeq, BaseHash: old.BaseHash,
			ScannedAt: up.scannedAt, LastUpdate: old.LastUpdate + 1,
			Pending: true, Deleted: true,
			HasCandidate: old.HasCandidate, Candidate: old.Candidate,
		}
		return rec, &FileChange{Path: up.path, Kind: ChangeDeleted}
	}
	rec := FileRecord{
		Path: up.path, Hash: up.hashed.hash, Chunks: up.hashed.chunks,
		Stat: up.stat, ScannedAt: up.scannedAt,
	}
	kind := ChangeNew
	if old != nil {
		rec.BaseSeq, rec.BaseHash = old.BaseSeq, old.BaseHash
		rec.LastUpdate, rec.Pending = old.LastUpdate, old.Pending
		rec.HasCandidate, rec.Candidate = old.HasCandidate, old.Candidate
		switch {
		case old.Deleted:
		case old.Hash != rec.Hash:
			kind = ChangeModified
		case old.Stat.Mode != rec.Stat.Mode:
			kind = ChangeMode
		default:
			return rec, nil
		}
	}
	rec.LastUpdate++
	rec.Pending = true
	return rec, &FileChange{
		Path: rec.Path, Kind: kind, Hash: rec.Hash, Size: rec.Stat.Size,
		Mode: rec.Stat.Mode, MTime: rec.Stat.MTime, Chunks: rec.Chunks,
	}
}

// record turns a batch of hashed files into record updates and changes,
// and writes them.
func (s *Scanner) record(ctx context.Context, w *scanWalk, jobs []*hashJob) error {
	ups := make([]scanUpdate, 0, len(jobs))
	for _, job := range jobs {
		switch job.outcome {
		case jobNoted:
			s.warn(w, job.path, job.warning)
			if job.keep {
				w.keep[job.path] = true
			}
			continue
		case jobSkipped:
			if job.warning != nil {
				s.warn(w, job.path, job.warning)
			}
			w.keep[job.path] = true
			continue
		case jobGone:
			w.gone[job.path] = true
			w.filesGone++
			continue
		}
		w.res.Hashed++
		w.res.HashedBytes += job.hashed.n
		old, had := w.records[job.path]
		ups = append(ups, scanUpdate{
			path: job.path, had: had, sum: old.sum,
			hashed: job.hashed, stat: job.stat, scannedAt: job.scannedAt,
		})
	}
	return s.apply(ctx, w, ups)
}

// recordGone records as deleted every record whose file the walk did not
// find (and could read the directory of).
func (s *Scanner) recordGone(ctx context.Context, w *scanWalk) error {
	var ups []scanUpdate
	for path, old := range w.records {
		if old.deleted || (w.seen[path] && !w.gone[path]) || w.isKept(path) {
			continue
		}
		ups = append(ups, scanUpdate{path: path, had: true, sum: old.sum, deleted: true, scannedAt: s.opts.Now().UnixNano()})
	}
	return s.apply(ctx, w, ups)
}

// apply writes the updates whose stored record is still the one the scan
// compared with: a record changed meanwhile (by a pull that wrote the
// file, say) is left alone, and the next scan looks at that file again.
// It lists the changes written when the scan keeps its changes.
func (s *Scanner) apply(ctx context.Context, w *scanWalk, ups []scanUpdate) error {
	if len(ups) == 0 {
		return nil
	}
	root := w.root.Name
	changes := make([]*FileChange, len(ups))
	err := s.st.updateInBatches(ctx, len(ups), func(txn *badger.Txn, i int) error {
		changes[i] = nil
		up := &ups[i]
		var old *FileRecord
		var before []byte
		item, err := txn.Get(pathKey(prefixFile, root, up.path))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			if up.had {
				return nil
			}
		case err != nil:
			return err
		default:
			if before, err = item.ValueCopy(nil); err != nil {
				return err
			}
			if !up.had || maphash.Bytes(w.seed, before) != up.sum {
				return nil
			}
			rec, err := decodeFile(up.path, before)
			if err != nil {
				return err
			}
			old = &rec
		}
		rec, change := up.next(old)
		if err := keepBaseTxn(txn, root, before, &rec); err != nil {
			return err
		}
		changes[i] = change
		return putFileTxn(txn, root, &rec)
	})
	if err != nil {
		return fmt.Errorf("record scan results: %w", err)
	}
	if w.keepChanges {
		for _, c := range changes {
			if c != nil {
				w.res.Changes = append(w.res.Changes, *c)
			}
		}
	}
	return nil
}

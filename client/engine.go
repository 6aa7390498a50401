package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// Remote is what the sync engine needs from a server session: the
// transactions of *syncproto.Client that push and pull use.
type Remote interface {
	Heads(ctx context.Context, root string, afterSeq uint64) ([]*syncpb.FileHead, uint64, error)
	ChunkList(ctx context.Context, root, path string, hash cas.ID) (int64, []syncproto.ChunkRef, error)
	GetChunks(ctx context.Context, root string, ids []cas.ID, fn func(syncproto.Chunk) error) error
	HaveChunks(ctx context.Context, root string, ids []cas.ID) ([]bool, error)
	PutChunks(ctx context.Context, root string, chunks []syncproto.Chunk) error
	Propose(ctx context.Context, req *syncpb.ProposeRequest, chunks []syncproto.ChunkRef) (*syncpb.CommitResponse, error)
	WireStats() (sent, received uint64)
}

var _ Remote = (*syncproto.Client)(nil)

// Stats counts what sync passes did. Bytes are counted at the UDP socket
// of the session (protocol overhead and retransmissions included).
type Stats struct {
	FilesUploaded   int   `json:"files_uploaded"`
	FilesDownloaded int   `json:"files_downloaded"`
	FilesDeleted    int   `json:"files_deleted"`
	ChunksSent      int   `json:"chunks_sent"`
	ChunksSkipped   int   `json:"chunks_skipped"`
	ChunksReused    int   `json:"chunks_reused"`
	ChunksFetched   int   `json:"chunks_fetched"`
	BytesSent       int64 `json:"bytes_sent"`
	BytesReceived   int64 `json:"bytes_received"`
	Conflicts       int   `json:"conflicts"`
	Superseded      int   `json:"superseded"` // see [Superseded]; also counted as downloaded or deleted
	Skipped         int   `json:"skipped"`
	DurationMS      int64 `json:"duration_ms"`
	// ScanMS is the part of DurationMS spent scanning the local tree.
	ScanMS int64 `json:"scan_ms"`
}

// Add adds o's counters to s.
func (s *Stats) Add(o Stats) {
	s.FilesUploaded += o.FilesUploaded
	s.FilesDownloaded += o.FilesDownloaded
	s.FilesDeleted += o.FilesDeleted
	s.ChunksSent += o.ChunksSent
	s.ChunksSkipped += o.ChunksSkipped
	s.ChunksReused += o.ChunksReused
	s.ChunksFetched += o.ChunksFetched
	s.BytesSent += o.BytesSent
	s.BytesReceived += o.BytesReceived
	s.Conflicts += o.Conflicts
	s.Superseded += o.Superseded
	s.Skipped += o.Skipped
	s.DurationMS += o.DurationMS
	s.ScanMS += o.ScanMS
}

// Conflict is a local change the server refused because the file's head
// moved since the change's base: the server keeps it as a candidate, and
// the local file stays as it is until the conflict is resolved.
type Conflict struct {
	Root string `json:"root"`
	Path string `json:"path"`
}

// Superseded is a local change the server did not take because its
// content was already in the file's history after the change's base: a
// conflict over it was resolved (another side kept), or the file was
// replaced since. The local copy was replaced by the head, version Seq;
// the superseded content stays in the server's history
// (qic history list / download).
type Superseded struct {
	Root string `json:"root"`
	Path string `json:"path"`
	Seq  uint64 `json:"seq"`
}

// PassResult is the outcome of a sync pass.
type PassResult struct {
	Stats
	// ConflictList names the files in conflict, in the order found.
	ConflictList []Conflict `json:"conflict_list,omitempty"`
	// SupersededList names the local copies replaced because their
	// change was superseded, in the order found.
	SupersededList []Superseded `json:"superseded_list,omitempty"`
}

// EngineOptions tune an Engine. The zero value is usable.
type EngineOptions struct {
	// Warn receives files skipped by scans, pushes and pulls; nil logs
	// them with slog.Default.
	Warn func(Warning)
	// UploadStreams is how many PutChunks streams run at once; 0 means 4.
	UploadStreams int
	// UploadBatchBytes bounds the raw bytes of chunks one PutChunks
	// stream carries; 0 means 8 MiB.
	UploadBatchBytes int
	// Proposals is how many Propose transactions run at once; 0 means 8.
	Proposals int
	// Scan tunes the scanner (its Warn is replaced by Warn).
	Scan ScanOptions
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Progress, if set, is told the bytes each pass (SyncRoot, PullRoot,
	// SyncAll) plans to move and has moved. Force-syncs and re-sent
	// content are not reported.
	Progress Progress
}

// Engine runs sync passes for the roots of a local state against a server
// session: scan, pull remote heads, push local changes. One pass runs at a
// time; concurrent callers wait.
type Engine struct {
	st      *State
	remote  Remote
	opts    EngineOptions
	scanner *Scanner
	// noBatches is set once the server answered that it takes no batch
	// proposals.
	noBatches atomic.Bool
	// noListBatches is set once the server answered that it gives no
	// chunk list batches.
	noListBatches atomic.Bool

	mu sync.Mutex // one pass at a time
}

// NewEngine returns an Engine over the local state st and the server
// session remote.
func NewEngine(st *State, remote Remote, opts EngineOptions) *Engine {
	if opts.Warn == nil {
		opts.Warn = func(w Warning) {
			slog.Warn("skipping file", "root", w.Root, "path", w.Path, "err", w.Err)
		}
	}
	if opts.UploadStreams <= 0 {
		opts.UploadStreams = 4
	}
	if opts.UploadBatchBytes <= 0 {
		opts.UploadBatchBytes = 8 << 20
	}
	if opts.Proposals <= 0 {
		opts.Proposals = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	scanOpts := opts.Scan
	scanOpts.Warn = opts.Warn
	return &Engine{st: st, remote: remote, opts: opts, scanner: NewScanner(st, scanOpts)}
}

// pass collects one pass's counters and conflicts; push and pull update it
// from several goroutines.
type pass struct {
	root     string
	progress progress
	mu       sync.Mutex
	res      PassResult
	// committed are the root seqs of the versions this pass committed.
	committed []uint64
	// bufs are upload buffers (a chunk each) free for the next batch,
	// kept for the pass only: an idle `qic run` holds none.
	bufs chan *uploadBuf
}

// uploadBuf returns a free upload buffer of the pass.
func (p *pass) uploadBuf() *uploadBuf {
	select {
	case b := <-p.bufs:
		return b
	default:
		return new(uploadBuf)
	}
}

// doneWith keeps b for another batch of the pass, unless enough are kept.
func (p *pass) doneWith(b *uploadBuf) {
	select {
	case p.bufs <- b:
	default:
	}
}

func (p *pass) committedSeq(seq uint64) {
	p.mu.Lock()
	p.committed = append(p.committed, seq)
	p.mu.Unlock()
}

// advanceCursor moves a pull cursor over the seqs this client committed
// itself right after it: the next pull need not fetch the echo of its own
// commits. Seqs are consecutive per root, so a seq that is not ours (a
// commit by someone else, interleaved) stops the advance, and the next
// pull fetches everything from there.
func advanceCursor(cursor uint64, own []uint64) uint64 {
	own = slices.Clone(own)
	slices.Sort(own)
	for _, s := range own {
		switch {
		case s <= cursor:
		case s == cursor+1:
			cursor = s
		default:
			return cursor
		}
	}
	return cursor
}

func (p *pass) count(fn func(s *Stats)) {
	p.mu.Lock()
	fn(&p.res.Stats)
	p.mu.Unlock()
}

func (p *pass) conflict(path string) {
	p.mu.Lock()
	p.res.Conflicts++
	p.res.ConflictList = append(p.res.ConflictList, Conflict{Root: p.root, Path: path})
	p.mu.Unlock()
}

// SyncAll runs a full pass ([Engine.SyncRoot]) over every root, in name
// order, and returns the summed result. A root that fails does not stop
// the others; the errors are joined.
func (e *Engine) SyncAll(ctx context.Context) (PassResult, error) {
	roots, err := e.st.Roots(ctx)
	if err != nil {
		return PassResult{}, err
	}
	var total PassResult
	var errs []error
	for _, r := range roots {
		res, err := e.SyncRoot(ctx, r.Name)
		total.Add(res.Stats)
		total.ConflictList = append(total.ConflictList, res.ConflictList...)
		total.SupersededList = append(total.SupersededList, res.SupersededList...)
		if err != nil {
			errs = append(errs, fmt.Errorf("root %q: %w", r.Name, err))
		}
	}
	return total, errors.Join(errs...)
}

// SyncRoot runs one full pass over root: scan the local directory, pull
// the heads that changed on the server since the cursor, push the local
// changes, and save the cursor and the time of the pass.
func (e *Engine) SyncRoot(ctx context.Context, root string) (PassResult, error) {
	return e.run(ctx, root, true, nil)
}

// SyncPaths is SyncRoot with a scan of the given sync paths only (see
// Scanner.ScanPaths): `qic run` follows file events with it. The root's
// last sync time stays that of its last full pass.
func (e *Engine) SyncPaths(ctx context.Context, root string, paths []string) (PassResult, error) {
	scopes := scopesOf(paths)
	return e.run(ctx, root, true, scopes)
}

// PullRoot pulls what changed on the server since the cursor, without
// scanning: the answer to a must-sync notice. Pending local changes are
// pushed too, since they are known without a scan.
func (e *Engine) PullRoot(ctx context.Context, root string) (PassResult, error) {
	return e.run(ctx, root, false, nil)
}

// run runs one pass over root: with scan, after a scan of the whole root
// (scopes nil) or of the sync paths scopes.
func (e *Engine) run(ctx context.Context, root string, scan bool, scopes []string) (PassResult, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := e.opts.Now()
	sent0, recv0 := e.remote.WireStats()
	p := &pass{root: root, progress: progress{to: e.opts.Progress}, bufs: make(chan *uploadBuf, 2*e.opts.UploadStreams)}
	err := e.runLocked(ctx, root, scan, scopes, p)
	sent1, recv1 := e.remote.WireStats()
	p.res.BytesSent = int64(sent1 - sent0)
	p.res.BytesReceived = int64(recv1 - recv0)
	p.res.DurationMS = e.opts.Now().Sub(start).Milliseconds()
	return p.res, err
}

func (e *Engine) runLocked(ctx context.Context, root string, scan bool, scopes []string, p *pass) error {
	r, err := e.st.Root(ctx, root)
	if err != nil {
		return err
	}
	if scan {
		// The scan removes the temporary files a crash left: no write
		// is in progress before the pass (the home lock keeps other qic
		// processes out).
		start := e.opts.Now()
		res, err := e.scanner.scan(ctx, root, true, scopes)
		p.res.ScanMS = e.opts.Now().Sub(start).Milliseconds()
		if err != nil {
			return fmt.Errorf("scan: %w", err)
		}
		p.res.Skipped += res.Skipped
	}
	cursor, pullOK, err := e.pull(ctx, r, p)
	// Settled after the pull and after the push: a listener sees each
	// transfer end before the next starts.
	p.progress.settle()
	if err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	err = e.push(ctx, r, p)
	p.progress.settle()
	if err != nil {
		return fmt.Errorf("push: %w", err)
	}
	p.mu.Lock()
	cursor = advanceCursor(cursor, p.committed)
	p.mu.Unlock()
	now := e.opts.Now()
	err = e.st.UpdateRoot(ctx, root, func(rr *Root) error {
		if pullOK && cursor > rr.Cursor {
			rr.Cursor = cursor
		}
		if scan && scopes == nil {
			rr.LastSync = now
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Once per pass rather than per file: a power failure loses at most
	// the pass under way, which the next one redoes.
	return e.st.Flush()
}

// warn reports a file skipped by push or pull.
func (e *Engine) warn(p *pass, path string, err error) {
	p.count(func(s *Stats) { s.Skipped++ })
	e.opts.Warn(Warning{Root: p.root, Path: path, Err: err})
}

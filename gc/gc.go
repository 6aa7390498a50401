package gc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
)

// Store is the chunk store side of a collection: what it enumerates,
// deletes and compacts. *cas.Store implements it.
type Store interface {
	Stats(ctx context.Context) (cas.Stats, error)
	Packs(ctx context.Context) ([]cas.PackInfo, error)
	ForEachChunk(ctx context.Context, fn func(id cas.ID, loc cas.Location) error) error
	DeleteChunksChecked(ctx context.Context, ids []cas.ID, writtenBy time.Time, check cas.DeleteCheck) (cas.DeleteResult, error)
	Repack(ctx context.Context, pack uint64, keep func(cas.ID) bool) (cas.RepackReport, error)
	RemovePack(ctx context.Context, pack uint64) error
}

// References is the metadata side: what points at chunks. *manifest.DB
// implements it.
type References interface {
	// ForEachRef walks every version and conflict candidate from one
	// snapshot and returns its watermark.
	ForEachRef(ctx context.Context, fn func(manifest.Ref) error) (manifest.Watermark, error)
	// ForEachChunkList walks the stored chunk lists want accepts.
	ForEachChunkList(ctx context.Context, want func(cas.ID) bool, fn func(cas.ID, []manifest.Chunk) error) error
	// RefsSince reports, inside a deletion transaction, the versions
	// committed after a watermark, and fences the transaction against
	// commits that land after its snapshot (see manifest.DB.RefsSince).
	RefsSince(txn *badger.Txn, wm manifest.Watermark, fn func(manifest.Ref, []manifest.Chunk) error) (manifest.Watermark, error)
	// ListRoots names the roots for the report.
	ListRoots(ctx context.Context) ([]manifest.Root, error)
}

// Pins is the registry of chunks that uploads in flight rely on (the
// server's). A collection starts tracking before it reads anything.
type Pins interface {
	Track() PinTracker
}

// PinTracker answers, until Stop, whether a chunk was pinned when
// tracking started or has been pinned since, even if released meanwhile.
type PinTracker interface {
	Pinned(id cas.ID) bool
	Stop()
}

// Defaults of the policy.
const (
	// DefaultMargin is the age below which an unreferenced chunk is kept
	// anyway. Pins and the commit fence already protect uploads in
	// flight; the margin is a second line, and costs only space.
	DefaultMargin = time.Hour
	// DefaultRepackThreshold repacks a pack once less than half of it is
	// live.
	DefaultRepackThreshold = 0.5
)

// Options are a collection's policy.
type Options struct {
	// Margin: an unreferenced chunk is deleted only if its pack was last
	// written at least Margin before the collection started (so a chunk
	// indexed after the start is always kept). 0 is allowed, also while
	// clients sync.
	Margin time.Duration
	// RepackThreshold: a pack whose live bytes are less than this share
	// of its records is rewritten without its dead records. 0 never
	// repacks (packs with no live chunk are still removed); 1 repacks any
	// pack with a dead byte.
	RepackThreshold float64
	// DryRun reports what a collection would delete and free and changes
	// nothing.
	DryRun bool
	// Clock says when the collection starts; nil means time.Now.
	Clock func() time.Time
	// Seed makes the mark filters' false positives reproducible; 0 picks
	// a random seed, so a chunk a false positive kept is not kept again.
	Seed uint64
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// DefaultOptions returns the default policy: a one-hour margin and a
// 50 % repack threshold.
func DefaultOptions() Options {
	return Options{Margin: DefaultMargin, RepackThreshold: DefaultRepackThreshold}
}

func (o Options) normalized() (Options, error) {
	if o.Margin < 0 {
		return o, fmt.Errorf("gc: negative margin %v", o.Margin)
	}
	if o.RepackThreshold < 0 || o.RepackThreshold > 1 || o.RepackThreshold != o.RepackThreshold {
		return o, fmt.Errorf("gc: repack threshold %v outside [0, 1]", o.RepackThreshold)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	for o.Seed == 0 {
		o.Seed = rand.Uint64()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Report says what a collection did (or, in a dry run, would do). Byte
// counts of chunks are record bytes in packs (header and stored payload).
type Report struct {
	DryRun          bool      `json:"dry_run"`
	Started         time.Time `json:"started"`
	DurationMS      int64     `json:"duration_ms"`
	MarginMS        int64     `json:"margin_ms"`
	RepackThreshold float64   `json:"repack_threshold"`

	// ChunksTotal is the index entries the sweep looked at.
	ChunksTotal uint64 `json:"chunks_total"`
	// ChunksMarked are kept because something references them.
	ChunksMarked uint64 `json:"chunks_marked"`
	BytesMarked  int64  `json:"bytes_marked"`
	// ChunksPinned are unreferenced but pinned by an upload in flight;
	// ChunksYoung unreferenced but younger than the margin. Both are
	// kept.
	ChunksPinned uint64 `json:"chunks_pinned"`
	ChunksYoung  uint64 `json:"chunks_young"`
	// ChunksDeleted left the index (swept); BytesDeleted is the space
	// their records take until their packs are rewritten or removed.
	ChunksDeleted uint64 `json:"chunks_deleted"`
	BytesDeleted  int64  `json:"bytes_deleted"`
	// ChunksRemarked were found referenced by commits that landed while
	// the collection ran (the fence), and kept.
	ChunksRemarked uint64 `json:"chunks_remarked"`

	PacksDeleted   int `json:"packs_deleted"`
	PacksRewritten int `json:"packs_rewritten"`
	// ChunksRepacked and BytesRepacked are the live records copied out of
	// rewritten packs.
	ChunksRepacked uint64 `json:"chunks_repacked"`
	BytesRepacked  int64  `json:"bytes_repacked"`
	// BytesFreed is pack bytes on disk given back: removed packs, and
	// rewritten packs minus what was copied out of them.
	BytesFreed      int64 `json:"bytes_freed"`
	PackBytesBefore int64 `json:"pack_bytes_before"`
	PackBytesAfter  int64 `json:"pack_bytes_after"`

	// MarkBytes is the memory of the mark filters, MarkBytesPerChunk the
	// same per index entry.
	MarkBytes         int64   `json:"mark_bytes"`
	MarkBytesPerChunk float64 `json:"mark_bytes_per_chunk"`

	// Roots is how much each root's history holds.
	Roots []RootUsage `json:"roots"`
	// Warnings are packs that could not be rewritten or removed (damage
	// hiding live records); the rest of the collection went on.
	Warnings []string `json:"warnings,omitempty"`
}

// RootUsage is what one root's history holds: its files, its versions and
// conflict candidates, and their logical size (a content counts once per
// version that has it).
type RootUsage struct {
	ID         uint64 `json:"id"`
	Name       string `json:"name"`
	Files      uint64 `json:"files"`
	Versions   uint64 `json:"versions"`
	Candidates uint64 `json:"candidates"`
	Bytes      uint64 `json:"bytes"`
}

// sweepBatch is how many deletion candidates go to the store at once.
const sweepBatch = 1000

// collection is one run's state.
type collection struct {
	store  Store
	refs   References
	pins   PinTracker
	opts   Options
	log    *slog.Logger
	cutoff time.Time

	marks *markSet
	wm    manifest.Watermark
	rep   Report
	// dead is, in a dry run, what the sweep would take out of each pack.
	dead map[uint64]packDelta
}

type packDelta struct {
	chunks uint64
	bytes  int64
}

// Run collects garbage: it marks every chunk that a version, a conflict
// candidate or a pin reaches, deletes the index entries of the others
// whose packs are older than the margin, then rewrites packs whose live
// share fell under the threshold and removes packs with no live chunk.
// It runs alongside uploads, commits and downloads (see the package
// documentation for why that is safe). pins may be nil when no upload can
// be in flight (an offline data directory).
func Run(ctx context.Context, store Store, refs References, pins Pins, opts Options) (Report, error) {
	opts, err := opts.normalized()
	if err != nil {
		return Report{}, err
	}
	c := &collection{store: store, refs: refs, opts: opts, log: opts.Logger, pins: noPins{}}
	start := opts.Clock()
	c.cutoff = start.Add(-opts.Margin)
	c.rep = Report{DryRun: opts.DryRun, Started: start, MarginMS: opts.Margin.Milliseconds(), RepackThreshold: opts.RepackThreshold}
	if pins != nil {
		// Before anything is read: a chunk pinned from now on is kept.
		c.pins = pins.Track()
	}
	defer c.pins.Stop()

	if err := c.mark(ctx); err != nil {
		return c.rep, err
	}
	if err := c.sweep(ctx); err != nil {
		return c.rep, err
	}
	if err := c.compact(ctx); err != nil {
		return c.rep, err
	}
	st, err := store.Stats(ctx)
	if err != nil {
		return c.rep, fmt.Errorf("gc: %w", err)
	}
	c.rep.PackBytesAfter = st.PackBytes
	if opts.DryRun {
		c.rep.PackBytesAfter = c.rep.PackBytesBefore - c.rep.BytesFreed
	}
	c.rep.DurationMS = opts.Clock().Sub(start).Milliseconds()
	c.log.Info("gc: done", "dry_run", opts.DryRun, "chunks_deleted", c.rep.ChunksDeleted, "bytes_freed", c.rep.BytesFreed,
		"packs_deleted", c.rep.PacksDeleted, "packs_rewritten", c.rep.PacksRewritten, "duration_ms", c.rep.DurationMS)
	return c.rep, nil
}

type noPins struct{}

func (noPins) Pinned(cas.ID) bool { return false }
func (noPins) Stop()              {}

// mark fills the mark set from the references: the contents that
// versions and candidates name, then the chunks of those contents.
func (c *collection) mark(ctx context.Context) error {
	st, err := c.store.Stats(ctx)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	c.rep.PackBytesBefore = st.PackBytes
	expected := st.Chunks + uint64(st.Pending)
	c.marks = newMarkSet(expected, c.opts.Seed)
	// Contents are fewer than chunks in any store worth collecting; the
	// filter grows if not.
	contents := newMarkSet(expected/4, mix(c.opts.Seed))

	usage := map[manifest.RootID]*RootUsage{}
	var lastRoot manifest.RootID
	var lastPath string
	c.wm, err = c.refs.ForEachRef(ctx, func(r manifest.Ref) error {
		u := usage[r.Root]
		if u == nil {
			u = &RootUsage{ID: uint64(r.Root)}
			usage[r.Root] = u
		}
		if r.Candidate {
			u.Candidates++
		} else {
			u.Versions++
			if r.Root != lastRoot || r.Path != lastPath {
				u.Files++
				lastRoot, lastPath = r.Root, r.Path
			}
		}
		u.Bytes += r.Size
		if r.HasChunks() {
			contents.Add(r.Hash)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: walk references: %w", err)
	}
	err = c.refs.ForEachChunkList(ctx, contents.Has, func(_ cas.ID, chunks []manifest.Chunk) error {
		for _, ch := range chunks {
			c.marks.Add(ch.ID)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gc: walk chunk lists: %w", err)
	}
	c.rep.MarkBytes = c.marks.Bytes() + contents.Bytes()

	roots, err := c.refs.ListRoots(ctx)
	if err != nil {
		return fmt.Errorf("gc: list roots: %w", err)
	}
	for _, r := range roots {
		u := usage[r.ID]
		if u == nil {
			u = &RootUsage{ID: uint64(r.ID)}
		}
		u.Name = r.Name
		c.rep.Roots = append(c.rep.Roots, *u)
	}
	slices.SortFunc(c.rep.Roots, func(a, b RootUsage) int { return cmp.Compare(a.Name, b.Name) })
	c.log.Info("gc: marked", "chunks", c.marks.Len(), "contents", contents.Len(), "mark_bytes", c.rep.MarkBytes)
	return nil
}

// sweep walks the index and deletes, in fenced batches, the entries that
// are neither marked, pinned nor young.
func (c *collection) sweep(ctx context.Context) error {
	packs, err := c.store.Packs(ctx)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	written := make(map[uint64]time.Time, len(packs))
	for _, p := range packs {
		written[p.Number] = p.Written
	}
	c.dead = map[uint64]packDelta{}
	var batch []cas.ID
	err = c.store.ForEachChunk(ctx, func(id cas.ID, loc cas.Location) error {
		c.rep.ChunksTotal++
		size := recordBytes(loc)
		switch w, known := written[loc.Pack]; {
		case c.marks.Has(id):
			c.rep.ChunksMarked++
			c.rep.BytesMarked += size
			return nil
		case c.pins.Pinned(id):
			c.rep.ChunksPinned++
			return nil
		case !known || w.After(c.cutoff):
			// A pack created or written since the start holds chunks
			// younger than the margin, whatever it was before.
			c.rep.ChunksYoung++
			return nil
		}
		if c.opts.DryRun {
			c.rep.ChunksDeleted++
			c.rep.BytesDeleted += size
			d := c.dead[loc.Pack]
			d.chunks++
			d.bytes += size
			c.dead[loc.Pack] = d
			return nil
		}
		batch = append(batch, id)
		if len(batch) < sweepBatch {
			return nil
		}
		err := c.delete(ctx, batch)
		batch = batch[:0]
		return err
	})
	if err == nil && len(batch) > 0 {
		err = c.delete(ctx, batch)
	}
	if err != nil {
		return fmt.Errorf("gc: sweep: %w", err)
	}
	if c.rep.ChunksTotal > 0 {
		c.rep.MarkBytesPerChunk = float64(c.rep.MarkBytes) / float64(c.rep.ChunksTotal)
	}
	c.log.Info("gc: swept", "chunks", c.rep.ChunksTotal, "deleted", c.rep.ChunksDeleted, "pinned", c.rep.ChunksPinned,
		"young", c.rep.ChunksYoung, "remarked", c.rep.ChunksRemarked)
	return nil
}

// delete removes a batch of candidates, fenced: inside each deletion
// transaction the versions committed since the mark walk are marked too
// (and the transaction conflicts with any commit that lands meanwhile),
// pins are consulted again, and only what is still unmarked goes.
func (c *collection) delete(ctx context.Context, batch []cas.ID) error {
	check := func(txn *badger.Txn, ids []cas.ID) (cas.IDSet, error) {
		wm, err := c.refs.RefsSince(txn, c.wm, func(_ manifest.Ref, chunks []manifest.Chunk) error {
			for _, ch := range chunks {
				if c.marks.Add(ch.ID) {
					c.rep.ChunksRemarked++
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("gc: versions committed since the walk: %w", err)
		}
		// Moving the watermark on is right even if this transaction
		// then conflicts: what it marked stays marked, and a retry
		// reads only what came after.
		c.wm = wm
		keep := cas.IDSet{}
		for _, id := range ids {
			if c.marks.Has(id) || c.pins.Pinned(id) {
				keep.Insert(id)
			}
		}
		return keep, nil
	}
	res, err := c.store.DeleteChunksChecked(ctx, batch, c.cutoff, check)
	c.rep.ChunksDeleted += uint64(res.Chunks)
	c.rep.BytesDeleted += res.Bytes
	return err
}

// compact rewrites packs whose live share fell under the threshold and
// removes packs without live chunks. Liveness is the index's, read after
// the sweep: every entry still there is kept, whatever the mark set says,
// so a chunk indexed or re-marked meanwhile is never lost. The active pack
// is left alone unless it has not been written since the cutoff.
func (c *collection) compact(ctx context.Context) error {
	packs, err := c.store.Packs(ctx)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	// The active pack first: once it is rewritten or removed, copies out
	// of the other packs start a new one instead of landing in it.
	slices.SortStableFunc(packs, func(a, b cas.PackInfo) int {
		switch {
		case a.Active == b.Active:
			return 0
		case a.Active:
			return -1
		}
		return 1
	})
	keepAll := func(cas.ID) bool { return true }
	for _, p := range packs {
		if p.Active && p.Written.After(c.cutoff) {
			// Still being filled: rewriting it now would only scatter
			// small packs. Once idle for the margin it is fair game, or
			// a quiet server's only pack would never give space back.
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		liveChunks, liveBytes := p.LiveChunks, p.LiveBytes
		if c.opts.DryRun {
			d := c.dead[p.Number]
			liveChunks -= min(d.chunks, liveChunks)
			liveBytes -= min(d.bytes, liveBytes)
		}
		switch {
		case liveChunks == 0:
			if !c.opts.DryRun {
				err := c.store.RemovePack(ctx, p.Number)
				if errors.Is(err, cas.ErrPackInUse) {
					// Indexed again since Packs: an upload or a rebuild.
					continue
				}
				if err != nil {
					return fmt.Errorf("gc: %w", err)
				}
			}
			c.rep.PacksDeleted++
			c.rep.BytesFreed += p.Size
		case liveShare(p.Size, liveBytes) < c.opts.RepackThreshold:
			if c.opts.DryRun {
				c.rep.PacksRewritten++
				c.rep.ChunksRepacked += liveChunks
				c.rep.BytesRepacked += liveBytes
				c.rep.BytesFreed += p.Size - liveBytes
				continue
			}
			rr, err := c.store.Repack(ctx, p.Number, keepAll)
			if errors.Is(err, cas.ErrPackInUse) {
				c.rep.Warnings = append(c.rep.Warnings, err.Error())
				c.log.Warn("gc: pack kept", "pack", p.Number, "err", err)
				continue
			}
			if err != nil {
				return fmt.Errorf("gc: %w", err)
			}
			c.rep.PacksRewritten++
			c.rep.ChunksRepacked += uint64(rr.Kept)
			c.rep.BytesRepacked += rr.KeptBytes
			c.rep.BytesFreed += rr.ReclaimedBytes
		}
	}
	return nil
}

// liveShare is the part of a pack's records that is live.
func liveShare(size, liveBytes int64) float64 {
	records := size - cas.PackHeaderSize
	if records <= 0 {
		return 1
	}
	return float64(liveBytes) / float64(records)
}

// recordBytes is the space a chunk's record takes in its pack.
func recordBytes(loc cas.Location) int64 {
	return cas.RecordHeaderSize + int64(loc.StoredLen)
}

package server

import (
	"context"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/gc"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
)

// ErrMaintenanceRunning is returned by GC and Check while another
// collection or check runs. It matches syncproto.ErrUnavailable: try again
// later.
var ErrMaintenanceRunning = fmt.Errorf("%w: a garbage collection or check is already running", syncproto.ErrUnavailable)

// GC runs one garbage collection (package gc) while clients keep syncing:
// it marks what versions, conflict candidates, active share links pinned
// to a version, and the pins of upload sessions and link downloads reach,
// deletes the rest of the chunk index past opts.Margin, rewrites packs
// under opts.RepackThreshold and removes dead ones. One collection
// or check runs at a time (ErrMaintenanceRunning). A collection that is
// not a dry run is counted in the quics_gc_* metrics.
func (s *Server) GC(ctx context.Context, opts gc.Options) (gc.Report, error) {
	if !s.pins.maintenance.TryLock() {
		return gc.Report{}, ErrMaintenanceRunning
	}
	defer s.pins.maintenance.Unlock()
	if opts.Logger == nil {
		opts.Logger = s.log
	}
	rep, err := gc.Run(ctx, s.store, gcRefs{DB: s.db, now: s.now}, gcPins{s.pins}, opts)
	if err != nil {
		return rep, fmt.Errorf("server: %w", err)
	}
	if !opts.DryRun {
		s.RecordGC(rep.BytesFreed)
	}
	return rep, nil
}

// gcRefs is the manifest as the collector sees it, plus the contents that
// active share links pin: a pinned version stays downloadable after
// retention dropped it, so its content is a root of the mark too. Those
// contents join the mark with the chunk lists (not as references, which
// the report counts as versions), and every deletion transaction asks
// again, from its own snapshot, next to the versions committed since.
type gcRefs struct {
	*manifest.DB
	now func() time.Time
}

func (g gcRefs) ForEachChunkList(ctx context.Context, want func(cas.ID) bool, fn func(cas.ID, []manifest.Chunk) error) error {
	pinned, err := g.PinnedShareContents(ctx, g.now())
	if err != nil {
		return fmt.Errorf("server: contents of share links: %w", err)
	}
	if want != nil && len(pinned) > 0 {
		marked := want
		want = func(hash cas.ID) bool { return marked(hash) || pinned.Has(hash) }
	}
	return g.DB.ForEachChunkList(ctx, want, fn)
}

func (g gcRefs) RefsSince(txn *badger.Txn, wm manifest.Watermark, fn func(manifest.Ref, []manifest.Chunk) error) (manifest.Watermark, error) {
	now, err := g.DB.RefsSince(txn, wm, fn)
	if err != nil {
		return nil, err
	}
	if err := g.PinnedSharesTxn(txn, g.now(), fn); err != nil {
		return nil, fmt.Errorf("server: contents of share links: %w", err)
	}
	return now, nil
}

// gcPins hands the collector the server's pin registry.
type gcPins struct{ p *Pins }

func (g gcPins) Track() gc.PinTracker { return g.p.Track() }

// Check verifies that metadata, chunk index and packs agree (gc.Check);
// readData re-hashes every chunk. With repair the index is first rebuilt
// from the packs and the report lists the versions whose chunks are lost
// for good (gc.Repair). It excludes collections (ErrMaintenanceRunning);
// clients may keep syncing, though during a repair a commit can find a
// chunk not yet re-indexed and ask for it again.
func (s *Server) Check(ctx context.Context, readData, repair bool) (gc.CheckReport, error) {
	if !s.pins.maintenance.TryLock() {
		return gc.CheckReport{}, ErrMaintenanceRunning
	}
	defer s.pins.maintenance.Unlock()
	var rep gc.CheckReport
	var err error
	if repair {
		rep, err = gc.Repair(ctx, s.store, s.db, readData)
	} else {
		rep, err = gc.Check(ctx, s.store, s.db, readData)
	}
	if err != nil {
		return rep, fmt.Errorf("server: %w", err)
	}
	if !rep.OK {
		s.log.Warn("server: check found problems", "problems", len(rep.Problems), "repair", repair)
	}
	return rep, nil
}

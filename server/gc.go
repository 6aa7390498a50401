package server

import (
	"context"
	"fmt"

	"github.com/quic-s/quics/gc"
	"github.com/quic-s/quics/syncproto"
)

// ErrMaintenanceRunning is returned by GC and Check while another
// collection or check runs. It matches syncproto.ErrUnavailable: try again
// later.
var ErrMaintenanceRunning = fmt.Errorf("%w: a garbage collection or check is already running", syncproto.ErrUnavailable)

// GC runs one garbage collection (package gc) while clients keep syncing:
// it marks what versions, conflict candidates and upload sessions' pins
// reach, deletes the rest of the chunk index past opts.Margin, rewrites
// packs under opts.RepackThreshold and removes dead ones. One collection
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
	rep, err := gc.Run(ctx, s.store, s.db, gcPins{s.pins}, opts)
	if err != nil {
		return rep, fmt.Errorf("server: %w", err)
	}
	if !opts.DryRun {
		s.RecordGC(rep.BytesFreed)
	}
	return rep, nil
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

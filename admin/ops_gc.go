package admin

import (
	"context"
	"fmt"

	"github.com/quic-s/quics/gc"
	"github.com/quic-s/quics/internal/duration"
)

// Garbage collection and consistency checks.
var (
	OpGC    = Op[GCRequest, gc.Report]{"POST", "/v1/gc", runGC}
	OpCheck = Op[CheckRequest, gc.CheckReport]{"POST", "/v1/check", runCheck}
)

// GCRequest is a collection's policy; zero values take the defaults.
type GCRequest struct {
	DryRun bool `json:"dry_run,omitempty"`
	// Margin is a duration ("1h", "30m", "0"); "" is the default hour.
	Margin string `json:"margin,omitempty"`
	// RepackThreshold in [0, 1]; nil is the default 0.5.
	RepackThreshold *float64 `json:"repack_threshold,omitempty"`
}

// CheckRequest says how deep a check goes.
type CheckRequest struct {
	// ReadData re-hashes every chunk.
	ReadData bool `json:"read_data,omitempty"`
	// Repair rebuilds the chunk index from the packs first.
	Repair bool `json:"repair,omitempty"`
}

// GCOptions turns a request into the collector's options.
func GCOptions(req GCRequest) (gc.Options, error) {
	opts := gc.DefaultOptions()
	opts.DryRun = req.DryRun
	if req.Margin != "" {
		d, err := duration.Parse(req.Margin)
		if err != nil || d < 0 {
			return opts, fmt.Errorf("%w: margin %q: want a duration such as 1h, 30m or 0", ErrBadRequest, req.Margin)
		}
		opts.Margin = d
	}
	if req.RepackThreshold != nil {
		t := *req.RepackThreshold
		if !(t >= 0 && t <= 1) {
			return opts, fmt.Errorf("%w: repack threshold %v outside [0, 1]", ErrBadRequest, t)
		}
		opts.RepackThreshold = t
	}
	return opts, nil
}

func runGC(ctx context.Context, b *Backend, req GCRequest) (gc.Report, error) {
	opts, err := GCOptions(req)
	if err != nil {
		return gc.Report{}, err
	}
	return b.Server.GC(ctx, opts)
}

func runCheck(ctx context.Context, b *Backend, req CheckRequest) (gc.CheckReport, error) {
	return b.Server.Check(ctx, req.ReadData, req.Repair)
}

package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
)

// DefaultRetentionInterval is how often the background loop applies every
// root's retention policy when Options.RetentionInterval is 0.
const DefaultRetentionInterval = time.Hour

// PruneReport says what applying retention policies did.
type PruneReport struct {
	// Roots whose policy was applied: those that keep all are skipped.
	Roots int
	// Files whose versions were checked against the policy.
	Files int
	// Dropped is the number of versions dropped.
	Dropped int
}

// SetRootRetention stores root's retention policy and applies it at once.
// A policy that does not validate is syncproto.ErrBadRequest, a missing
// root syncproto.ErrNotFound.
func (s *Server) SetRootRetention(ctx context.Context, root string, ret manifest.Retention) error {
	r, err := s.rootByName(ctx, root)
	if err != nil {
		return err
	}
	return s.setRetention(ctx, r, ret)
}

func (s *Server) setRetention(ctx context.Context, r manifest.Root, ret manifest.Retention) error {
	if err := ret.Validate(); err != nil {
		return fmt.Errorf("%w: retention of root %q: %v", syncproto.ErrBadRequest, r.Name, err)
	}
	if err := s.db.SetRetention(ctx, r.ID, ret); err != nil {
		if errors.Is(err, manifest.ErrNotFound) {
			return fmt.Errorf("%w: root %q", syncproto.ErrNotFound, r.Name)
		}
		return fmt.Errorf("server: set retention of root %q: %w", r.Name, err)
	}
	s.log.Info("server: retention set", "root", r.Name, "policy", ret.Kind.String(), "value", ret.Value)
	r.Retention = ret
	rep, err := s.pruneRoot(ctx, r)
	if err != nil {
		return err
	}
	if rep.Dropped > 0 {
		s.log.Info("server: retention applied", "root", r.Name, "files", rep.Files, "dropped", rep.Dropped)
	}
	return nil
}

// PruneRetention applies the retention policy of root, or of every root
// when root is "", at the server's clock: versions the policy no longer
// keeps are dropped (their records only; the chunks are left to gc).
// The head of a file is never dropped. Conflict candidates are not
// versions and are never touched by a policy, so an unresolved conflict
// keeps its content whatever the policy.
func (s *Server) PruneRetention(ctx context.Context, root string) (PruneReport, error) {
	var roots []manifest.Root
	if root != "" {
		r, err := s.rootByName(ctx, root)
		if err != nil {
			return PruneReport{}, err
		}
		roots = []manifest.Root{r}
	} else {
		var err error
		if roots, err = s.db.ListRoots(ctx); err != nil {
			return PruneReport{}, fmt.Errorf("server: list roots: %w", err)
		}
	}
	var total PruneReport
	for _, r := range roots {
		rep, err := s.pruneRoot(ctx, r)
		total.Roots += rep.Roots
		total.Files += rep.Files
		total.Dropped += rep.Dropped
		if errors.Is(err, syncproto.ErrNotFound) && root == "" {
			continue // removed since the listing
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// pruneRoot applies r's policy to each of its files. The versions are
// read in one snapshot; the drops are decided per file and done in
// transactions that re-read the head, so a commit meanwhile is never
// dropped, and a version that stopped being the head is only dropped on
// a later run.
func (s *Server) pruneRoot(ctx context.Context, r manifest.Root) (PruneReport, error) {
	if r.Retention.Kind == manifest.KeepAll {
		return PruneReport{}, nil
	}
	rep := PruneReport{Roots: 1}
	now := s.now()
	type drop struct {
		path string
		seqs []uint64
	}
	var drops []drop
	var cur string
	var versions []manifest.Version
	decide := func() {
		if len(versions) == 0 {
			return
		}
		rep.Files++
		var seqs []uint64
		for i, keep := range manifest.Retained(r.Retention, versions, now) {
			if !keep {
				seqs = append(seqs, versions[i].Seq)
			}
		}
		if len(seqs) > 0 {
			drops = append(drops, drop{path: cur, seqs: seqs})
		}
		versions = versions[:0]
	}
	err := s.db.ForEachVersion(ctx, r.ID, func(_ manifest.RootID, p string, v manifest.Version) error {
		if p != cur {
			decide()
			cur = p
		}
		versions = append(versions, v)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("server: versions of root %q: %w", r.Name, err)
	}
	decide()
	for _, d := range drops {
		n, err := s.db.DropVersions(ctx, r.ID, d.path, d.seqs)
		rep.Dropped += n
		if err != nil {
			return rep, fmt.Errorf("server: drop versions of %q in root %q: %w", d.path, r.Name, err)
		}
	}
	return rep, nil
}

// pruneFile applies r's policy to one file.
func (s *Server) pruneFile(ctx context.Context, r manifest.Root, p string) (int, error) {
	if r.Retention.Kind == manifest.KeepAll {
		return 0, nil
	}
	versions, err := s.db.Versions(ctx, r.ID, p)
	if err != nil {
		return 0, err
	}
	var seqs []uint64
	for i, keep := range manifest.Retained(r.Retention, versions, s.now()) {
		if !keep {
			seqs = append(seqs, versions[i].Seq)
		}
	}
	if len(seqs) == 0 {
		return 0, nil
	}
	return s.db.DropVersions(ctx, r.ID, p, seqs)
}

// pruneAfterCommit applies r's policy to the file a commit just wrote.
// Best effort: a failure is logged, and the background loop catches up.
func (s *Server) pruneAfterCommit(ctx context.Context, r manifest.Root, p string) {
	if r.Retention.Kind == manifest.KeepAll {
		return
	}
	n, err := s.pruneFile(ctx, r, p)
	if err != nil {
		s.log.Warn("server: retention after commit", "root", r.Name, "path", p, "err", err)
		return
	}
	if n > 0 {
		s.log.Debug("server: retention dropped versions", "root", r.Name, "path", p, "dropped", n)
	}
}

// startRetentionLoop runs PruneRetention for every root every interval
// (0: DefaultRetentionInterval; negative: never) until Close.
func (s *Server) startRetentionLoop(interval time.Duration) {
	if interval < 0 {
		return
	}
	if interval == 0 {
		interval = DefaultRetentionInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stopPrune, s.pruneDone = cancel, make(chan struct{})
	go func() {
		defer close(s.pruneDone)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rep, err := s.PruneRetention(ctx, "")
			switch {
			case err != nil && ctx.Err() == nil:
				s.log.Warn("server: retention", "err", err)
			case rep.Dropped > 0:
				s.log.Info("server: retention applied", "roots", rep.Roots, "files", rep.Files, "dropped", rep.Dropped)
			}
		}
	}()
}

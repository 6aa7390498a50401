package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// HeadsPartLen is the number of heads Heads emits at a time.
const HeadsPartLen = 1000

// Heads emits the heads of a root: all of them for AfterSeq 0 (a full
// scan) or a cursor ahead of the root, else those of the paths changed
// after AfterSeq, each once. It returns the root's sequence as read before
// the walk, so resuming from it can repeat a change but never miss one.
// It ignores req.Limit: see HeadsPage.
func (s *Server) Heads(ctx context.Context, sess *syncproto.Session, req *syncpb.HeadsRequest, emit func([]*syncpb.FileHead) error) (uint64, error) {
	seq, _, err := s.heads(ctx, sess, req.GetRoot(), req.GetAfterSeq(), 0, emit)
	return seq, err
}

// HeadsPage is Heads that stops after req.Limit heads (0: all). A page
// follows the change feed, which holds every path once at its last
// change: a full scan from 0 is the feed from its start. When it stopped
// at the limit, more is true and the sequence returned is the last change
// emitted, to ask the next page after; a path changed meanwhile has moved
// past it, so no change is missed.
func (s *Server) HeadsPage(ctx context.Context, sess *syncproto.Session, req *syncpb.HeadsRequest, emit func([]*syncpb.FileHead) error) (uint64, bool, error) {
	return s.heads(ctx, sess, req.GetRoot(), req.GetAfterSeq(), int(req.GetLimit()), emit)
}

func (s *Server) heads(ctx context.Context, sess *syncproto.Session, root string, after uint64, limit int, emit func([]*syncpb.FileHead) error) (uint64, bool, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return 0, false, err
	}
	r, err := s.memberRoot(ctx, st, root)
	if err != nil {
		return 0, false, err
	}
	part := make([]*syncpb.FileHead, 0, s.headsPart)
	flush := func() error {
		if len(part) == 0 {
			return nil
		}
		err := emit(part)
		part = make([]*syncpb.FileHead, 0, s.headsPart)
		return err
	}
	add := func(p string, h manifest.Head) error {
		part = append(part, fileHead(p, h))
		if len(part) >= s.headsPart {
			return flush()
		}
		return nil
	}
	if after > r.Seq {
		after = 0 // a cursor from before the root was rebuilt: start over
	}
	var last uint64
	var more bool
	switch {
	case limit > 0:
		last, more, err = s.changedHeads(ctx, r.ID, after, limit, add)
	case after == 0:
		err = s.db.ListHeads(ctx, r.ID, add)
	default:
		_, _, err = s.changedHeads(ctx, r.ID, after, 0, add)
	}
	if err == nil {
		err = flush()
	}
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return 0, false, fmt.Errorf("%w: root %q", syncproto.ErrNotFound, r.Name)
	case err != nil:
		return 0, false, fmt.Errorf("server: heads of root %q: %w", r.Name, err)
	case more:
		return last, true, nil
	}
	return r.Seq, false, nil
}

// changedHeads calls add with the head of every path changed after seq
// after, reading the change feed a part at a time, at most limit of them
// (0: all). more is true when it stopped at the limit, last is the seq of
// the last change it read.
func (s *Server) changedHeads(ctx context.Context, root manifest.RootID, after uint64, limit int, add func(string, manifest.Head) error) (last uint64, more bool, err error) {
	seen := 0
	for {
		n := s.headsPart
		if limit > 0 {
			n = min(n, limit-seen)
		}
		changes, err := s.db.Changes(ctx, root, after, n)
		if err != nil {
			return 0, false, err
		}
		paths := make([]string, len(changes))
		for i, c := range changes {
			paths[i] = c.Path
		}
		heads, found, err := s.db.Heads(ctx, root, paths)
		if err != nil {
			return 0, false, err
		}
		for i, h := range heads {
			if !found[i] {
				continue // every feed entry has a head; tolerate damage
			}
			if err := add(paths[i], h); err != nil {
				return 0, false, err
			}
		}
		seen += len(changes)
		if len(changes) > 0 {
			after = changes[len(changes)-1].Seq
		}
		if len(changes) < n {
			return after, false, nil
		}
		if limit > 0 && seen >= limit {
			// More only if the feed goes on past this page.
			next, err := s.db.Changes(ctx, root, after, 1)
			if err != nil {
				return 0, false, err
			}
			return after, len(next) > 0, nil
		}
	}
}

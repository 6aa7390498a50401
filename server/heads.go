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
func (s *Server) Heads(ctx context.Context, sess *syncproto.Session, req *syncpb.HeadsRequest, emit func([]*syncpb.FileHead) error) (uint64, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return 0, err
	}
	r, err := s.memberRoot(ctx, st, req.GetRoot())
	if err != nil {
		return 0, err
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
	after := req.GetAfterSeq()
	if after == 0 || after > r.Seq {
		err = s.db.ListHeads(ctx, r.ID, add)
	} else {
		err = s.changedHeads(ctx, r.ID, after, add)
	}
	if err == nil {
		err = flush()
	}
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return 0, fmt.Errorf("%w: root %q", syncproto.ErrNotFound, r.Name)
	case err != nil:
		return 0, fmt.Errorf("server: heads of root %q: %w", r.Name, err)
	}
	return r.Seq, nil
}

// changedHeads calls add with the head of every path changed after seq
// after, reading the change feed a part at a time.
func (s *Server) changedHeads(ctx context.Context, root manifest.RootID, after uint64, add func(string, manifest.Head) error) error {
	for {
		changes, err := s.db.Changes(ctx, root, after, s.headsPart)
		if err != nil {
			return err
		}
		for _, c := range changes {
			h, err := s.db.Head(ctx, root, c.Path)
			if errors.Is(err, manifest.ErrNotFound) {
				continue // every feed entry has a head; tolerate damage
			}
			if err != nil {
				return err
			}
			if err := add(c.Path, h); err != nil {
				return err
			}
		}
		if len(changes) < s.headsPart {
			return nil
		}
		after = changes[len(changes)-1].Seq
	}
}

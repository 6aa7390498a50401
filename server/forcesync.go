package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// ForceSync tells every client watching root to replace its copy of path
// with the file's current head, even a copy with a local change the
// server has not accepted: a conflict on path was resolved, and the
// chosen version is now the head. The notice (KIND_FORCE_SYNC) carries
// that head. Resolution (issue #5) calls it after committing the chosen
// candidate. A client not watching at that moment misses the notice and
// keeps its pending change, which it proposes again: that is a new
// conflict, so nothing is lost.
//
// It fails with syncproto.ErrNotFound when the root or the path's head
// does not exist, with syncproto.ErrInvalidPath for a hostile path.
func (s *Server) ForceSync(ctx context.Context, root, path string) error {
	if err := relpath.Check(path); err != nil {
		return err
	}
	r, err := s.db.RootByName(ctx, root)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return fmt.Errorf("%w: root %q", syncproto.ErrNotFound, root)
	case err != nil:
		return fmt.Errorf("server: root %q: %w", root, err)
	}
	h, err := s.head(ctx, r.ID, path)
	if err != nil {
		return err
	}
	if h == nil {
		return fmt.Errorf("%w: %q has no version in root %q", syncproto.ErrNotFound, path, root)
	}
	s.broker.publish(r.ID, &syncpb.Notice{
		Kind: syncpb.Notice_KIND_FORCE_SYNC, Root: r.Name, Head: fileHead(path, *h), RootSeq: max(r.Seq, h.Seq),
	})
	s.log.Info("server: force-sync pushed", "root", r.Name, "path", path, "seq", h.Seq)
	return nil
}

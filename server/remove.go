package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
)

// RemoveClient deletes a client and its memberships (manifest
// RemoveClient; an unknown id is manifest.ErrNotFound) and revokes its
// live sessions: their next requests fail with
// syncproto.ErrUnauthenticated, their watches end with it, and their pins
// are released. Requests already running finish. Roots it owns and
// versions it wrote stay.
func (s *Server) RemoveClient(ctx context.Context, id uuid.UUID) error {
	c, err := s.db.Client(ctx, id)
	if err != nil {
		return fmt.Errorf("server: remove client %s: %w", id, err)
	}
	if err := s.db.RemoveClient(ctx, id); err != nil {
		return fmt.Errorf("server: remove client %s: %w", id, err)
	}
	// After the record is gone: a session authenticating meanwhile is
	// either listed already, or finds the record missing (Authenticate).
	revoked := s.revokeClient(id)
	s.log.Info("server: client removed", "client", id, "name", c.Name, "sessions_revoked", revoked)
	return nil
}

// RemoveRoot deletes a root with its files, versions, conflicts and
// memberships (manifest RemoveRoot; an unknown id is manifest.ErrNotFound),
// ends the watch subscriptions to it (a watch left without roots ends),
// and deletes its view folder DataDir/sync/<root>, whether views are on
// or not. Its members' later requests about it are Forbidden. The chunks
// only it referenced are left to garbage collection.
func (s *Server) RemoveRoot(ctx context.Context, id manifest.RootID) error {
	r, err := s.db.RootByID(ctx, id)
	if err != nil {
		return fmt.Errorf("server: remove root %d: %w", id, err)
	}
	if err := s.db.RemoveRoot(ctx, id); err != nil {
		err = fmt.Errorf("server: remove root %q: %w", r.Name, err)
		// The record goes first, in its own transaction; if only the
		// per-file cleanup failed, the root is gone all the same and its
		// watchers and views must follow.
		if _, gerr := s.db.RootByID(ctx, id); !errors.Is(gerr, manifest.ErrNotFound) {
			return err
		}
		return errors.Join(err, s.forgetRoot(r))
	}
	if err := s.forgetRoot(r); err != nil {
		return err
	}
	s.log.Info("server: root removed", "root", r.Name, "id", id)
	return nil
}

// forgetRoot drops what the server holds outside the manifest about a
// removed root: watch subscriptions, view jobs and the view folder.
func (s *Server) forgetRoot(r manifest.Root) error {
	s.broker.dropRoot(r.ID, r.Name)
	if s.views != nil {
		// Before the folder goes, so no job recreates it.
		s.views.dropRoot(r.ID)
	}
	dir, err := relpath.Join(filepath.Join(s.dataDir, SyncDir), r.Name)
	if err != nil {
		return fmt.Errorf("server: view folder of root %q: %w", r.Name, err)
	}
	// After dropRoot, whose wait needs the view jobs to run: a rebuild or
	// an export holding the lock finishes first, and finds the root gone
	// once it gets the lock again.
	s.viewLock.Lock()
	defer s.viewLock.Unlock()
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("server: remove view folder of root %q: %w", r.Name, err)
	}
	return nil
}

package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
)

// contentPresent returns a commit Check that fails unless every chunk of
// the content hash is in the store, read inside the commit's own
// transaction. A commit that reuses stored content (restore, resolution)
// needs it: retention may have dropped the last version holding that
// content and gc deleted its chunks after the server looked it up, and
// the commit must not then point at nothing. The transaction also makes
// the commit conflict with a gc deletion running at the same time.
func (s *Server) contentPresent(ctx context.Context, hash cas.ID, deleted bool) (func(txn *badger.Txn) error, error) {
	if deleted || hash.IsZero() || hash == manifest.EmptyHash {
		return nil, nil
	}
	list, err := s.db.ChunkList(ctx, hash)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return nil, fmt.Errorf("%w: the chunk list of content %s is gone", syncproto.ErrNotFound, hash)
	case err != nil:
		return nil, fmt.Errorf("server: chunk list of %s: %w", hash, err)
	}
	return func(txn *badger.Txn) error {
		for _, c := range list {
			ok, err := s.store.HasTxn(txn, c.ID)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: content %s lost its chunk %s (collected meanwhile?)", syncproto.ErrNotFound, hash, c.ID)
			}
		}
		return nil
	}, nil
}

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
	ids := make([]cas.ID, len(list))
	for i, c := range list {
		ids[i] = c.ID
	}
	return s.chunksPresent(ids, func(missing []cas.ID) error {
		return fmt.Errorf("%w: content %s lost its chunk %s (collected meanwhile?)", syncproto.ErrNotFound, hash, missing[0])
	}), nil
}

// chunksPresent returns a commit Check that reads every one of ids inside
// the commit's transaction and fails with missingErr(the absent ones) if
// any is gone.
func (s *Server) chunksPresent(ids []cas.ID, missingErr func(missing []cas.ID) error) func(txn *badger.Txn) error {
	return func(txn *badger.Txn) error {
		var missing []cas.ID
		for _, id := range ids {
			ok, err := s.store.HasTxn(txn, id)
			if err != nil {
				return err
			}
			if !ok {
				missing = append(missing, id)
			}
		}
		if len(missing) > 0 {
			return missingErr(missing)
		}
		return nil
	}
}

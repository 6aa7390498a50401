package server

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// HaveChunks reports which chunks the store has, and pins those for the
// session until the commit that uses them or the end of the session.
func (s *Server) HaveChunks(ctx context.Context, sess *syncproto.Session, root string, ids []cas.ID) ([]bool, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	if _, err := s.memberRoot(ctx, st, root); err != nil {
		return nil, err
	}
	if len(ids) > syncproto.MaxHaveChunksIDs {
		return nil, fmt.Errorf("%w: %d ids, at most %d", syncproto.ErrBadRequest, len(ids), syncproto.MaxHaveChunksIDs)
	}
	// Pin first, then look: a collection that starts in between sees the
	// pins, so a chunk reported present cannot be swept before the commit.
	// The ones found absent are let go again.
	st.pins.Add(ids...)
	present, err := s.store.Has(ctx, ids)
	if err != nil {
		st.pins.Release(ids...)
		return nil, fmt.Errorf("server: have chunks: %w", err)
	}
	var absent []cas.ID
	for i, ok := range present {
		if !ok {
			absent = append(absent, ids[i])
		}
	}
	st.pins.Release(absent...)
	return present, nil
}

// PutChunks stores uploaded chunks in the form the client compressed them,
// verified against their IDs, pins them for the session, and makes them
// durable before it returns.
func (s *Server) PutChunks(ctx context.Context, sess *syncproto.Session, root string, next func() (syncproto.Chunk, error)) error {
	return s.PutChunkRuns(ctx, sess, root, nil, next)
}

// syncEveryBytes is how many raw bytes one upload stores between syncs of
// the store: a long upload (one large file in one stream) keeps what it
// stored so far durable, and the store's table of unsynced chunks short.
// A variable for tests.
var syncEveryBytes = 256 << 20

// PutChunkRuns is PutChunks that also hashes the upload's whole runs as
// they arrive, so that the proposals of their contents need not read the
// chunks back (see provenLists).
func (s *Server) PutChunkRuns(ctx context.Context, sess *syncproto.Session, root string, runs []syncproto.WholeRun, next func() (syncproto.Chunk, error)) error {
	st, err := sessionOf(sess)
	if err != nil {
		return err
	}
	r, err := s.memberRoot(ctx, st, root)
	if err != nil {
		return err
	}
	maxRaw := int(r.Chunking.Max)
	stored := 0
	var verified func(cas.ID, []byte)
	if len(runs) > 0 {
		rh := newRunHasher(runs, s.proven)
		defer rh.close()
		verified = rh.chunk
	}
	unsynced := 0
	for {
		c, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if c.RawLen > maxRaw {
			return fmt.Errorf("%w: chunk %s of %d bytes, root %q allows at most %d", syncproto.ErrBadRequest, c.ID, c.RawLen, r.Name, maxRaw)
		}
		wire := len(c.Data)
		if c.Codec == syncproto.ChunkDelta {
			if c, err = s.decodeDeltaChunk(ctx, st, c); err != nil {
				return err
			}
		}
		// Pin before storing: a chunk the store already has could
		// otherwise be collected between Put and the pin. A chunk that
		// fails is not stored; its pin is harmless until the session ends.
		st.pins.Add(c.ID)
		added, err := s.store.PutStoredFunc(ctx, c.ID, cas.Stored{Codec: cas.Codec(c.Codec), Data: c.Data, RawLen: c.RawLen}, verified)
		if err == nil && added {
			s.metrics.uploadedBytes.Add(uint64(c.RawLen))
		}
		if err == nil && !added {
			// Clients send what HaveChunks reported missing, so a
			// duplicate is rare: most often a re-send after a
			// need-content notice, whose stored copy is damaged.
			err = s.replaceDamaged(ctx, c)
		}
		switch {
		case errors.Is(err, cas.ErrHashMismatch):
			return fmt.Errorf("%w: chunk %s: the data does not hash to its id", syncproto.ErrHashMismatch, c.ID)
		case errors.Is(err, cas.ErrTooLarge), errors.Is(err, cas.ErrInvalidRecord), errors.Is(err, cas.ErrCorrupt):
			// PutStored decodes the client's bytes before it stores
			// anything: these are the client's mistakes.
			return fmt.Errorf("%w: chunk %s does not decode", syncproto.ErrBadRequest, c.ID)
		case err != nil:
			return fmt.Errorf("server: store chunk %s: %w", c.ID, err)
		}
		stored++
		s.metrics.chunksIn.Add(1)
		s.metrics.chunkBytesIn.Add(uint64(wire))
		if unsynced += c.RawLen; unsynced >= syncEveryBytes {
			if err := s.store.Sync(ctx); err != nil {
				return fmt.Errorf("server: sync uploaded chunks after %d: %w", stored, err)
			}
			unsynced = 0
		}
	}
	if err := s.store.Sync(ctx); err != nil {
		return fmt.Errorf("server: sync %d uploaded chunks: %w", stored, err)
	}
	return nil
}

// ChunkList returns the chunk list of a version of a file. The hash must be
// a version of that path in that root, or one side of its conflict: a
// client never learns the chunks of content it cannot reach. The chunk IDs
// become reachable for the session's GetChunks.
func (s *Server) ChunkList(ctx context.Context, sess *syncproto.Session, req *syncpb.ChunkListRequest) (int64, []syncproto.ChunkRef, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return 0, nil, err
	}
	r, err := s.memberRoot(ctx, st, req.GetRoot())
	if err != nil {
		return 0, nil, err
	}
	return s.chunkList(ctx, st, r, req.GetPath(), req.GetHash())
}

// ChunkListBatch answers the items of a ChunkListBatchRequest as
// ChunkList would, looking the root and the session's membership up once.
func (s *Server) ChunkListBatch(ctx context.Context, sess *syncproto.Session, root string, items []syncproto.ChunkListItem) []syncproto.ChunkListResult {
	out := make([]syncproto.ChunkListResult, len(items))
	st, err := sessionOf(sess)
	var r manifest.Root
	if err == nil {
		r, err = s.memberRoot(ctx, st, root)
	}
	for i, it := range items {
		if err != nil {
			out[i].Err = err
			continue
		}
		size, refs, ierr := s.chunkList(ctx, st, r, it.Path, it.Hash[:])
		out[i] = syncproto.ChunkListResult{Size: size, Chunks: refs, Err: ierr}
	}
	return out
}

// chunkList is ChunkList in root r, of which the session is a member.
func (s *Server) chunkList(ctx context.Context, st *session, r manifest.Root, p string, rawHash []byte) (int64, []syncproto.ChunkRef, error) {
	if err := relpath.Check(p); err != nil {
		return 0, nil, err
	}
	hash, err := cas.IDFromBytes(rawHash)
	if err != nil || hash.IsZero() {
		return 0, nil, fmt.Errorf("%w: chunk list of %q: hash must be 32 bytes", syncproto.ErrBadRequest, p)
	}
	size, found, err := s.versionSize(ctx, r.ID, p, hash)
	if err != nil {
		return 0, nil, err
	}
	notFound := fmt.Errorf("%w: %q in root %q has no version %s", syncproto.ErrNotFound, p, r.Name, hash)
	if !found {
		return 0, nil, notFound
	}
	if hash == manifest.EmptyHash {
		s.metrics.downloads.Add(1)
		return 0, []syncproto.ChunkRef{}, nil
	}
	chunks, err := s.db.ChunkList(ctx, hash)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return 0, nil, notFound
	case err != nil:
		return 0, nil, fmt.Errorf("server: chunk list %s: %w", hash, err)
	}
	refs := make([]syncproto.ChunkRef, len(chunks))
	ids := make([]cas.ID, len(chunks))
	for i, c := range chunks {
		refs[i] = syncproto.ChunkRef{ID: c.ID, Size: c.Size}
		ids[i] = c.ID
	}
	st.markReachable(ids, &chunkOrigin{root: r.Name, path: p, hash: hash})
	s.metrics.downloads.Add(1)
	return int64(size), refs, nil
}

// versionSize finds content hash among the versions of path and the
// candidates of its conflict, and returns its size.
func (s *Server) versionSize(ctx context.Context, root manifest.RootID, p string, hash cas.ID) (uint64, bool, error) {
	prefix, err := cas.ParsePrefix(hash.String())
	if err != nil {
		return 0, false, fmt.Errorf("server: %w", err)
	}
	vs, err := s.db.FindVersionsByPrefix(ctx, root, p, prefix)
	switch {
	case err == nil && len(vs) > 0:
		return vs[0].Size, true, nil
	case err != nil && !errors.Is(err, manifest.ErrNotFound):
		return 0, false, fmt.Errorf("server: versions of %q: %w", p, err)
	}
	c, err := s.db.Conflict(ctx, root, p)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, fmt.Errorf("server: conflict on %q: %w", p, err)
	}
	for _, cand := range c.Candidates {
		if !cand.Deleted && cand.Hash == hash {
			return cand.Size, true, nil
		}
	}
	return 0, false, nil
}

// GetChunks sends chunks in stored form. Each must have been named by one
// of the session's ChunkList answers: the set of chunks a session may
// download is exactly what its roots reference.
func (s *Server) GetChunks(ctx context.Context, sess *syncproto.Session, root string, ids []cas.ID, emit func(syncproto.Chunk) error) error {
	return s.getChunks(ctx, sess, root, ids, nil, emit)
}

// getChunks is GetChunks and GetChunksDict: dicts is nil or names, per
// chunk, the dictionaries to try (see dictEncode).
func (s *Server) getChunks(ctx context.Context, sess *syncproto.Session, root string, ids []cas.ID, dicts [][]cas.ID, emit func(syncproto.Chunk) error) error {
	st, err := sessionOf(sess)
	if err != nil {
		return err
	}
	if _, err := s.memberRoot(ctx, st, root); err != nil {
		return err
	}
	if len(ids) > syncproto.MaxGetChunksIDs {
		return fmt.Errorf("%w: %d ids, at most %d", syncproto.ErrBadRequest, len(ids), syncproto.MaxGetChunksIDs)
	}
	for _, id := range ids {
		if !st.isReachable(id) {
			return fmt.Errorf("%w: chunk %s (ask for the chunk list of a version first)", syncproto.ErrNotFound, id)
		}
	}
	for i, id := range ids {
		stored, err := s.store.GetStored(ctx, id)
		switch {
		case errors.Is(err, cas.ErrNotFound):
			return fmt.Errorf("%w: chunk %s", syncproto.ErrNotFound, id)
		case errors.Is(err, cas.ErrCorrupt), errors.Is(err, cas.ErrMissing):
			return s.damagedChunk(ctx, st, id, err)
		case err != nil:
			return fmt.Errorf("server: read chunk %s: %w", id, err)
		}
		c := syncproto.Chunk{Codec: syncproto.ChunkCodec(stored.Codec), ID: id, RawLen: stored.RawLen, Data: stored.Data}
		if i < len(dicts) && len(dicts[i]) > 0 {
			dc, ok, err := s.dictEncode(ctx, st, id, stored, dicts[i])
			if err != nil {
				return err
			}
			if ok {
				c = dc
			}
		}
		if err := emit(c); err != nil {
			return err
		}
		s.metrics.chunksOut.Add(1)
		s.metrics.chunkBytesOut.Add(uint64(len(c.Data)))
	}
	return nil
}

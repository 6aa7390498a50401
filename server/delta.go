package server

import (
	"context"
	"errors"
	"fmt"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

var _ syncproto.DeltaHandler = (*Server)(nil)

// maxSignatureBytes bounds the signatures of one SignaturesRequest: a
// client asking for tiny blocks of huge chunks is refused before the
// server reads them.
const maxSignatureBytes = 2 << 20

// SourceChunkList returns the chunk list of a version a delta is written
// against: a version (or conflict candidate) of path in a root the
// session's client belongs to, exactly as for ChunkList. Its chunks become
// reachable for the session, so they may serve as delta sources and
// dictionaries, as they may be downloaded.
func (s *Server) SourceChunkList(ctx context.Context, sess *syncproto.Session, root, p string, hash cas.ID) ([]syncproto.ChunkRef, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	r, err := s.memberRoot(ctx, st, root)
	if err != nil {
		return nil, err
	}
	chunks, err := s.versionChunks(ctx, r, p, hash)
	if err != nil {
		return nil, err
	}
	refs := make([]syncproto.ChunkRef, len(chunks))
	ids := make([]cas.ID, len(chunks))
	for i, c := range chunks {
		refs[i] = syncproto.ChunkRef{ID: c.ID, Size: c.Size}
		ids[i] = c.ID
	}
	st.markReachable(ids, &chunkOrigin{root: r.Name, path: p, hash: hash})
	return refs, nil
}

// versionChunks returns the chunk list of content hash as a version or
// conflict candidate of path in r, ErrNotFound when it is neither.
func (s *Server) versionChunks(ctx context.Context, r manifest.Root, p string, hash cas.ID) ([]manifest.Chunk, error) {
	if err := relpath.Check(p); err != nil {
		return nil, err
	}
	notFound := fmt.Errorf("%w: %q in root %q has no version %s", syncproto.ErrNotFound, p, r.Name, hash.Short())
	if hash.IsZero() {
		return nil, notFound
	}
	_, found, err := s.versionSize(ctx, r.ID, p, hash)
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, notFound
	case hash == manifest.EmptyHash:
		return nil, nil
	}
	chunks, err := s.db.ChunkList(ctx, hash)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return nil, notFound
	case err != nil:
		return nil, fmt.Errorf("server: chunk list %s: %w", hash, err)
	}
	return chunks, nil
}

// Signatures returns the block signatures of chunks of versions the
// session's client can reach, so it can upload a changed chunk as a delta
// against the one it replaced. Each chunk must be in its source's version;
// the chunks become reachable for the session, as delta sources.
func (s *Server) Signatures(ctx context.Context, sess *syncproto.Session, req *syncpb.SignaturesRequest) ([][]byte, error) {
	st, err := sessionOf(sess)
	if err != nil {
		return nil, err
	}
	r, err := s.memberRoot(ctx, st, req.GetRoot())
	if err != nil {
		return nil, err
	}
	if _, err := syncproto.CheckSignaturesRequest(req); err != nil {
		return nil, err
	}
	var sigs [][]byte
	total := 0
	for _, src := range req.GetSources() {
		hash, err := cas.IDFromBytes(src.GetHash())
		if err != nil {
			return nil, fmt.Errorf("%w: signatures: %v", syncproto.ErrBadRequest, err)
		}
		ids, err := syncproto.ParseIDs(src.GetIds(), syncproto.MaxSignatureChunks)
		if err != nil {
			return nil, fmt.Errorf("signatures: %w", err)
		}
		chunks, err := s.versionChunks(ctx, r, src.GetPath(), hash)
		if err != nil {
			return nil, err
		}
		sizes := make(map[cas.ID]uint32, len(chunks))
		for _, c := range chunks {
			sizes[c.ID] = c.Size
		}
		bs := int(src.GetBlockSize())
		for _, id := range ids {
			size, ok := sizes[id]
			if !ok {
				return nil, fmt.Errorf("%w: chunk %s is not in version %s of %q", syncproto.ErrNotFound, id.Short(), hash.Short(), src.GetPath())
			}
			if total += syncproto.SignatureLen(int(size), bs); total > maxSignatureBytes {
				return nil, fmt.Errorf("%w: signatures of more than %d bytes; ask for larger blocks or fewer chunks", syncproto.ErrBadRequest, maxSignatureBytes)
			}
		}
		for _, id := range ids {
			data, err := s.readChunk(ctx, st, id)
			if err != nil {
				return nil, err
			}
			sigs = append(sigs, syncproto.Sign(data, bs))
		}
		st.markReachable(ids, &chunkOrigin{root: r.Name, path: src.GetPath(), hash: hash})
	}
	return sigs, nil
}

// readChunk reads a chunk the session refers to, turning the store's
// failures into answers the client understands.
func (s *Server) readChunk(ctx context.Context, st *session, id cas.ID) ([]byte, error) {
	data, err := s.store.Get(ctx, id)
	switch {
	case errors.Is(err, cas.ErrNotFound):
		return nil, fmt.Errorf("%w: chunk %s", syncproto.ErrNotFound, id)
	case errors.Is(err, cas.ErrCorrupt), errors.Is(err, cas.ErrMissing):
		return nil, s.damagedChunk(ctx, st, id, err)
	case err != nil:
		return nil, fmt.Errorf("server: read chunk %s: %w", id, err)
	}
	return data, nil
}

// decodeDeltaChunk turns an uploaded delta-encoded chunk into its stored
// form: its sources must be reachable for the session (named by a
// SignaturesRequest or a chunk list it was given), the result must hash to
// the chunk's ID, and it is then compressed as the store would. A source
// the session may not use, or that is gone, is ErrNotFound; a result that
// hashes wrong is ErrHashMismatch. The client sends such a chunk whole.
func (s *Server) decodeDeltaChunk(ctx context.Context, st *session, c syncproto.Chunk) (syncproto.Chunk, error) {
	ids, err := syncproto.DeltaSources(c)
	if err != nil {
		return c, err
	}
	sources := make([][]byte, len(ids))
	for i, id := range ids {
		if !st.isReachable(id) {
			return c, fmt.Errorf("%w: delta source %s of chunk %s: ask for its signature first, or send the chunk whole",
				syncproto.ErrNotFound, id.Short(), c.ID.Short())
		}
		if sources[i], err = s.readChunk(ctx, st, id); err != nil {
			return c, fmt.Errorf("delta source of chunk %s: %w", c.ID.Short(), err)
		}
	}
	data, err := syncproto.DecodeDelta(c, sources)
	if err != nil {
		return c, err
	}
	stored, err := cas.Compress(data)
	if err != nil {
		return c, fmt.Errorf("server: compress chunk %s: %w", c.ID, err)
	}
	return syncproto.Chunk{Codec: syncproto.ChunkCodec(stored.Codec), ID: c.ID, RawLen: stored.RawLen, Data: stored.Data}, nil
}

// GetChunksDict is GetChunks where a chunk with dictionaries the session
// can reach (chunks of a ChunkListFrom base, which the client holds) is
// sent as a delta against them when that is smaller than its stored form.
func (s *Server) GetChunksDict(ctx context.Context, sess *syncproto.Session, root string, ids []cas.ID, dicts [][]cas.ID, emit func(syncproto.Chunk) error) error {
	return s.getChunks(ctx, sess, root, ids, dicts, emit)
}

// dictEncode returns the chunk id, stored as stored, encoded against the
// dictionaries dict when they are all reachable for the session and that
// is smaller; ok is false otherwise. Failures to read a dictionary only
// mean the stored form is sent.
func (s *Server) dictEncode(ctx context.Context, st *session, id cas.ID, stored cas.Stored, dict []cas.ID) (c syncproto.Chunk, ok bool, err error) {
	for _, d := range dict {
		if !st.isReachable(d) {
			return c, false, nil
		}
	}
	data, err := stored.Decode(id)
	if err != nil {
		return c, false, s.damagedChunk(ctx, st, id, err)
	}
	sources := make([][]byte, len(dict))
	for i, d := range dict {
		if sources[i], err = s.store.Get(ctx, d); err != nil {
			return c, false, nil
		}
	}
	c, ok = syncproto.EncodeDeltaFrom(id, data, dict, sources, len(stored.Data))
	return c, ok, nil
}

package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// NeedContentInterval is how often, at most, the server asks a root's
// clients for the content of one version: every client holding it answers
// with all its chunks, so asking at every failed download would turn one
// damaged chunk into a flood of uploads.
const NeedContentInterval = time.Minute

// maxContentAsks bounds the (root, hash) pairs the rate limit remembers.
// When more distinct versions than that were asked for within one
// interval, further asks wait until old ones expire.
const maxContentAsks = 4096

// askKey names one version's content in one root.
type askKey struct {
	root manifest.RootID
	hash cas.ID
}

// askLimiter remembers when each version's content was last asked for.
type askLimiter struct {
	mu   sync.Mutex
	last map[askKey]time.Time
}

func newAskLimiter() *askLimiter {
	return &askLimiter{last: make(map[askKey]time.Time)}
}

// allow reports whether k may be asked for at now, and if so records it.
func (l *askLimiter) allow(k askKey, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.last[k]; ok && now.Sub(t) < NeedContentInterval && !now.Before(t) {
		return false
	}
	if len(l.last) >= maxContentAsks {
		for old, t := range l.last {
			if now.Sub(t) >= NeedContentInterval || now.Before(t) {
				delete(l.last, old)
			}
		}
		if len(l.last) >= maxContentAsks {
			return false
		}
	}
	l.last[k] = now
	return true
}

// RequestContent asks the clients watching root to upload again the
// chunks of the version of path with content hash: the server found some
// of them lost or corrupt. The notice (KIND_NEED_CONTENT) carries the
// version's head; a client whose local file is exactly that content
// answers with PutChunks, which replaces the damaged chunks. Each (root,
// hash) is asked for at most once per NeedContentInterval; asked is false
// when this call was within the interval of an earlier one.
func (s *Server) RequestContent(ctx context.Context, root, path string, hash cas.ID) (asked bool, err error) {
	if err := relpath.Check(path); err != nil {
		return false, err
	}
	if hash.IsZero() || hash == manifest.EmptyHash {
		return false, fmt.Errorf("%w: request content of %q: no content hash", syncproto.ErrBadRequest, path)
	}
	r, err := s.db.RootByName(ctx, root)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return false, fmt.Errorf("%w: root %q", syncproto.ErrNotFound, root)
	case err != nil:
		return false, fmt.Errorf("server: root %q: %w", root, err)
	}
	head, found, err := s.versionHead(ctx, r.ID, path, hash)
	if err != nil {
		return false, err
	}
	if !found {
		return false, fmt.Errorf("%w: %q in root %q has no version %s", syncproto.ErrNotFound, path, root, hash)
	}
	if !s.contentAsks.allow(askKey{root: r.ID, hash: hash}, s.now()) {
		return false, nil
	}
	s.broker.publish(r.ID, &syncpb.Notice{Kind: syncpb.Notice_KIND_NEED_CONTENT, Root: r.Name, Head: head, RootSeq: r.Seq})
	s.log.Warn("server: asked clients to re-send a version", "root", r.Name, "path", path, "hash", hash.String())
	return true, nil
}

// versionHead describes the version of path with content hash: a
// version, else a side of the path's conflict (which has no seq yet).
func (s *Server) versionHead(ctx context.Context, root manifest.RootID, p string, hash cas.ID) (*syncpb.FileHead, bool, error) {
	prefix, err := cas.ParsePrefix(hash.String())
	if err != nil {
		return nil, false, fmt.Errorf("server: %w", err)
	}
	vs, err := s.db.FindVersionsByPrefix(ctx, root, p, prefix)
	switch {
	case err == nil && len(vs) > 0:
		// Newest last: the seq a client most likely has as its base.
		return fileHead(p, vs[len(vs)-1].Head()), true, nil
	case err != nil && !errors.Is(err, manifest.ErrNotFound):
		return nil, false, fmt.Errorf("server: versions of %q: %w", p, err)
	}
	c, err := s.db.Conflict(ctx, root, p)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("server: conflict on %q: %w", p, err)
	}
	for _, cand := range c.Candidates {
		if !cand.Deleted && cand.Hash == hash {
			return fileHead(p, manifest.Head{Hash: cand.Hash, Size: cand.Size, Mode: cand.Mode, MTime: cand.MTime, Client: cand.Client}), true, nil
		}
	}
	return nil, false, nil
}

// damagedChunk is GetChunks' answer when the store cannot hand out a
// chunk it indexes: the downloader learns the server is at fault (not that
// the chunk never existed), and the clients of the version the session
// found the chunk in are asked to upload it again.
func (s *Server) damagedChunk(ctx context.Context, st *session, id cas.ID, cause error) error {
	s.log.Error("server: damaged chunk", "chunk", id.String(), "client", st.client, "err", cause)
	o, ok := st.originOf(id)
	if !ok {
		return fmt.Errorf("%w: chunk %s is damaged on the server", syncproto.ErrUnavailable, id)
	}
	if _, err := s.RequestContent(ctx, o.root, o.path, o.hash); err != nil {
		s.log.Warn("server: cannot ask for a damaged chunk", "chunk", id.String(), "root", o.root, "path", o.path, "err", err)
		return fmt.Errorf("%w: chunk %s of %q is damaged on the server", syncproto.ErrUnavailable, id, o.path)
	}
	return fmt.Errorf("%w: chunk %s of %q is damaged on the server; asked clients to re-send it", syncproto.ErrUnavailable, id, o.path)
}

// replaceDamaged runs when an upload of c found the chunk already in the
// store, which then kept its own copy. If that copy is damaged (corrupt,
// or its bytes are gone), its index entry is dropped and the uploaded,
// verified bytes are stored in its place; the damaged record becomes
// garbage for the next repack.
func (s *Server) replaceDamaged(ctx context.Context, c syncproto.Chunk) error {
	_, err := s.store.Get(ctx, c.ID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cas.ErrNotFound):
		// Collected since the Put: store it again.
	case errors.Is(err, cas.ErrCorrupt), errors.Is(err, cas.ErrMissing):
		if err := s.store.DeleteChunks(ctx, []cas.ID{c.ID}); err != nil {
			return fmt.Errorf("server: drop damaged chunk %s: %w", c.ID, err)
		}
	default:
		return fmt.Errorf("server: check stored chunk %s: %w", c.ID, err)
	}
	added, err := s.store.PutStored(ctx, c.ID, cas.Stored{Codec: cas.Codec(c.Codec), Data: c.Data, RawLen: c.RawLen})
	if err != nil {
		return err
	}
	if added {
		s.log.Warn("server: damaged chunk replaced by a client's upload", "chunk", c.ID.String())
	}
	return nil
}

package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/conflict"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// rootByName returns the root called name; a missing one is
// syncproto.ErrNotFound. For the operator's calls, which see every root.
func (s *Server) rootByName(ctx context.Context, name string) (manifest.Root, error) {
	r, err := s.db.RootByName(ctx, name)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return manifest.Root{}, fmt.Errorf("%w: root %q", syncproto.ErrNotFound, name)
	case err != nil:
		return manifest.Root{}, fmt.Errorf("server: root %q: %w", name, err)
	}
	return r, nil
}

// FindVersion returns the version of a file whose content hash starts
// with hashPrefix (at least cas.MinPrefixLen hex digits), as git resolves
// an abbreviated commit. Only content versions count, not deletions.
// Several versions with the same content are one answer: the newest of
// them. A prefix of several contents is syncproto.ErrBadRequest naming
// them; no match, or no such root or file, is syncproto.ErrNotFound.
func (s *Server) FindVersion(ctx context.Context, root, p, hashPrefix string) (manifest.Version, error) {
	if err := relpath.Check(p); err != nil {
		return manifest.Version{}, err
	}
	r, err := s.rootByName(ctx, root)
	if err != nil {
		return manifest.Version{}, err
	}
	return s.findVersion(ctx, r, p, hashPrefix)
}

func (s *Server) findVersion(ctx context.Context, r manifest.Root, p, hashPrefix string) (manifest.Version, error) {
	prefix, err := cas.ParsePrefix(hashPrefix)
	if err != nil {
		return manifest.Version{}, fmt.Errorf("%w: %v", syncproto.ErrBadRequest, err)
	}
	versions, err := s.versions(ctx, r, p)
	if err != nil {
		return manifest.Version{}, err
	}
	var found manifest.Version
	var hashes []string
	seen := cas.NewIDSet()
	for _, v := range versions {
		if v.Deleted || !prefix.Matches(v.Hash) {
			continue
		}
		if !seen.Has(v.Hash) {
			seen.Insert(v.Hash)
			hashes = append(hashes, v.Hash.String())
		}
		found = v // versions come oldest first: the last match is the newest
	}
	switch {
	case len(hashes) > 1:
		return manifest.Version{}, fmt.Errorf("%w: ambiguous prefix %s for %q in root %q, matches %s",
			syncproto.ErrBadRequest, prefix, p, r.Name, strings.Join(hashes, ", "))
	case len(hashes) == 0:
		return manifest.Version{}, fmt.Errorf("%w: no version of %q in root %q has a hash starting with %s",
			syncproto.ErrNotFound, p, r.Name, prefix)
	}
	return found, nil
}

// versions returns every version of a file, oldest first; a file without
// any is syncproto.ErrNotFound.
func (s *Server) versions(ctx context.Context, r manifest.Root, p string) ([]manifest.Version, error) {
	vs, err := s.db.Versions(ctx, r.ID, p)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return nil, fmt.Errorf("%w: %q has no version in root %q", syncproto.ErrNotFound, p, r.Name)
	case err != nil:
		return nil, fmt.Errorf("server: versions of %q in root %q: %w", p, r.Name, err)
	}
	return vs, nil
}

// WriteContent writes the content with hash to w: its chunks in order,
// each verified by the store as it is read (a few ahead of the writer, in
// parallel), and the whole content checked against hash at the end. The
// bytes are written as they are read, so on an error w may hold part of
// the content: write to a temporary file and keep it only if
// WriteContent returns nil. Only one goroutine writes to w, and none is
// left running on return. A hash with no chunk list is
// syncproto.ErrNotFound; a damaged chunk keeps the store's error
// (cas.ErrCorrupt, cas.ErrMissing), the first in chunk order.
func (s *Server) WriteContent(ctx context.Context, hash cas.ID, w io.Writer) error {
	chunks, err := s.contentChunks(ctx, hash)
	if err != nil {
		return err
	}
	return s.writeChunks(ctx, hash, chunks, w, true)
}

// StreamContent is WriteContent for a receiver that hashes what it
// receives and compares the sum with hash itself, as `quics restore
// --output` does: chunks are read with their CRC checked, and nothing is
// hashed here (the receiver's whole hash covers every chunk; hashing here
// too cost about 0.3 s of CPU per 256 MiB on the server). A damaged chunk
// that still passes its CRC, or a chunk list that does not add up to
// hash, is then the receiver's mismatch rather than an error here.
func (s *Server) StreamContent(ctx context.Context, hash cas.ID, w io.Writer) error {
	chunks, err := s.contentChunks(ctx, hash)
	if err != nil {
		return err
	}
	return s.writeChunks(ctx, hash, chunks, w, false)
}

// contentChunks returns the chunk list of a content hash; the empty
// content has none.
func (s *Server) contentChunks(ctx context.Context, hash cas.ID) ([]manifest.Chunk, error) {
	if hash.IsZero() {
		return nil, fmt.Errorf("%w: write content: no content hash", syncproto.ErrBadRequest)
	}
	if hash == manifest.EmptyHash {
		return nil, nil
	}
	chunks, err := s.db.ChunkList(ctx, hash)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return nil, fmt.Errorf("%w: content %s", syncproto.ErrNotFound, hash)
	case err != nil:
		return nil, fmt.Errorf("server: chunk list %s: %w", hash, err)
	}
	return chunks, nil
}

// RestoreVersion makes the version of a file named by hashPrefix (see
// FindVersion) its new head: a new version with that content, mode and
// mtime, written by `by` (uuid.Nil for the operator), so history is never
// rewritten. It works on a deleted file too. If the head already has that
// content (and is not a deletion) nothing is written and it returns the
// head's version with committed false. A path with an unresolved
// conflict is refused (syncproto.ErrBadRequest): resolve it first. On a
// commit the root's clients get MUST_SYNC and the latest view follows.
func (s *Server) RestoreVersion(ctx context.Context, root, p, hashPrefix string, by uuid.UUID) (manifest.Version, bool, error) {
	if err := relpath.Check(p); err != nil {
		return manifest.Version{}, false, err
	}
	r, err := s.rootByName(ctx, root)
	if err != nil {
		return manifest.Version{}, false, err
	}
	return s.restore(ctx, r, p, hashPrefix, by)
}

func (s *Server) restore(ctx context.Context, r manifest.Root, p, hashPrefix string, by uuid.UUID) (manifest.Version, bool, error) {
	if _, err := s.db.Conflict(ctx, r.ID, p); err == nil {
		return manifest.Version{}, false, fmt.Errorf("%w: resolve the conflict on %q in root %q first", syncproto.ErrBadRequest, p, r.Name)
	} else if !errors.Is(err, manifest.ErrNotFound) {
		return manifest.Version{}, false, fmt.Errorf("server: conflict on %q: %w", p, err)
	}
	old, err := s.findVersion(ctx, r, p, hashPrefix)
	if err != nil {
		return manifest.Version{}, false, err
	}
	for round := 1; ; round++ {
		head, err := s.head(ctx, r.ID, p)
		if err != nil {
			return manifest.Version{}, false, err
		}
		if head != nil && !head.Deleted && head.Hash == old.Hash {
			v, err := s.db.Version(ctx, r.ID, p, head.Seq)
			if err != nil {
				return manifest.Version{}, false, fmt.Errorf("server: head version of %q: %w", p, err)
			}
			return v, false, nil
		}
		mp := manifest.Proposal{
			Root: r.ID, Path: p, Hash: old.Hash, Size: old.Size, Mode: old.Mode, MTime: old.MTime, Client: by,
		}
		if head != nil {
			mp.BaseSeq, mp.BaseHash = head.Seq, head.Hash
		}
		if mp.Check, err = s.contentPresent(ctx, old.Hash, false); err != nil {
			return manifest.Version{}, false, err
		}
		v, err := s.db.Commit(ctx, mp)
		if errors.Is(err, manifest.ErrHeadChanged) && round < maxDecideRounds {
			continue // someone committed meanwhile: judge again
		}
		if err != nil {
			return manifest.Version{}, false, fmt.Errorf("server: restore %q in root %q: %w", p, r.Name, err)
		}
		s.committed(ctx, r, p, v)
		s.log.Info("server: version restored", "root", r.Name, "path", p, "hash", old.Hash.String(),
			"from_seq", old.Seq, "seq", v.Seq, "by", by)
		return v, true, nil
	}
}

// committed does what follows every commit that did not come from a
// proposal's fast path: MUST_SYNC to the root's watchers, the latest
// view, and the retention of the file.
func (s *Server) committed(ctx context.Context, r manifest.Root, p string, v manifest.Version) {
	s.broker.publish(r.ID, &syncpb.Notice{Kind: syncpb.Notice_KIND_MUST_SYNC, Root: r.Name, Head: fileHead(p, v.Head()), RootSeq: v.Seq})
	if s.views != nil {
		s.views.updateLatest(r.ID, r.Name, p)
	}
	s.pruneAfterCommit(ctx, r, p)
}

// ExportHistory writes versions of a file to
// DataDir/sync/<root>/history/<path>/v<seq>-<hash8><ext> and returns the
// absolute paths written: every content version of the file when
// hashPrefix is empty, else the one FindVersion finds. Deletions have no
// content and are skipped. Files are written atomically and confined to
// the root's folder, whether views are on or off; an existing file of the
// same name is replaced.
func (s *Server) ExportHistory(ctx context.Context, root, p, hashPrefix string) ([]string, error) {
	if err := relpath.Check(p); err != nil {
		return nil, err
	}
	r, err := s.rootByName(ctx, root)
	if err != nil {
		return nil, err
	}
	var export []manifest.Version
	if hashPrefix != "" {
		v, err := s.findVersion(ctx, r, p, hashPrefix)
		if err != nil {
			return nil, err
		}
		export = []manifest.Version{v}
	} else {
		vs, err := s.versions(ctx, r, p)
		if err != nil {
			return nil, err
		}
		for _, v := range vs {
			if !v.Deleted {
				export = append(export, v)
			}
		}
	}
	s.viewLock.RLock()
	defer s.viewLock.RUnlock()
	// Under the lock: a root removed meanwhile has had its folder deleted,
	// which must stay deleted.
	if _, err := s.db.RootByID(ctx, r.ID); err != nil {
		if errors.Is(err, manifest.ErrNotFound) {
			return nil, fmt.Errorf("%w: root %q", syncproto.ErrNotFound, root)
		}
		return nil, fmt.Errorf("server: root %q: %w", root, err)
	}
	w := s.viewWriter()
	base, err := w.rootDir(r.Name, historyDir)
	if err != nil {
		return nil, err
	}
	var written []string
	for _, v := range export {
		rel := p + "/" + conflict.VersionName(v.Seq, v.Hash, path.Base(p))
		if err := s.writeView(ctx, base, rel, v.Hash, v.Mode, v.MTime); err != nil {
			return written, fmt.Errorf("server: export version %d of %q in root %q: %w", v.Seq, p, r.Name, err)
		}
		target, err := relpath.Join(base, rel)
		if err == nil {
			target, err = filepath.Abs(target)
		}
		if err != nil {
			return written, err
		}
		written = append(written, target)
	}
	s.log.Info("server: history exported", "root", r.Name, "path", p, "files", len(written))
	return written, nil
}

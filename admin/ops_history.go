package admin

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"

	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/duration"
	"github.com/quic-s/quics/manifest"
)

// Conflicts, history, restore, views and retention.
var (
	OpListConflicts = Op[ConflictsRequest, []ConflictInfo]{"GET", "/v1/conflicts", listConflicts}
	OpResolve       = Op[ResolveRequest, HeadResult]{"POST", "/v1/roots/{root}/resolve", resolve}
	OpRestore       = Op[VersionRequest, HeadResult]{"POST", "/v1/roots/{root}/restore", restore}
	OpExportHistory = Op[VersionRequest, ExportResult]{"POST", "/v1/roots/{root}/history/export", exportHistory}
	OpRebuildViews  = Op[ConflictsRequest, ViewsResult]{"POST", "/v1/views/rebuild", rebuildViews}
	OpSetRetention  = Op[RetentionRequest, RootInfo]{"PUT", "/v1/roots/{root}/retention", setRetention}

	// OpContent streams a version's bytes (not JSON); see StreamOp.
	OpContent = StreamOp[VersionRequest]{"GET", "/v1/roots/{root}/content", openContent}
)

func listConflicts(ctx context.Context, b *Backend, req ConflictsRequest) ([]ConflictInfo, error) {
	var roots []string
	if req.Root != "" {
		roots = []string{req.Root}
	} else {
		all, err := b.Server.Manifest().ListRoots(ctx)
		if err != nil {
			return nil, fmt.Errorf("list roots: %w", err)
		}
		for _, r := range all {
			roots = append(roots, r.Name)
		}
		sort.Strings(roots)
	}
	out := []ConflictInfo{}
	for _, root := range roots {
		conflicts, err := b.Server.Conflicts(ctx, root, "")
		if err != nil {
			return nil, fmt.Errorf("conflicts of root %q: %w", root, err)
		}
		for _, c := range conflicts {
			info := ConflictInfo{Root: root, Path: c.Path, Candidates: make([]CandidateInfo, 0, len(c.Candidates))}
			for _, cand := range c.Candidates {
				info.Candidates = append(info.Candidates, CandidateInfo{
					Side:       cand.Side,
					Client:     clientString(cand.Client),
					ClientName: cand.ClientName,
					Hash:       hashString(cand.Hash, cand.Deleted),
					Size:       cand.Size,
					Mode:       cand.Mode,
					MTime:      cand.MTime.UTC(),
					Deleted:    cand.Deleted,
					BaseSeq:    cand.BaseSeq,
					Created:    cand.Created.UTC(),
					Name:       cand.Name,
				})
			}
			out = append(out, info)
		}
	}
	return out, nil
}

func clientString(id uuid.UUID) string {
	if id == uuid.Nil {
		return ""
	}
	return id.String()
}

func headResult(root, path string, v manifest.Version, committed bool) HeadResult {
	return HeadResult{
		Root: root, Path: path, Committed: committed, Seq: v.Seq, Hash: hashString(v.Hash, v.Deleted),
		Size: v.Size, Deleted: v.Deleted, Time: v.WallTime.UTC(),
	}
}

func resolve(ctx context.Context, b *Backend, req ResolveRequest) (HeadResult, error) {
	if req.Path == "" || req.Keep == "" {
		return HeadResult{}, fmt.Errorf("%w: path and keep are required", ErrBadRequest)
	}
	if req.Keep == "client" {
		return HeadResult{}, fmt.Errorf("%w: --keep client means the caller's own side, which only a client has: name the client or its ID", ErrBadRequest)
	}
	v, err := b.Server.Resolve(ctx, req.Root, req.Path, req.Keep, uuid.Nil)
	if err != nil {
		return HeadResult{}, err
	}
	return headResult(req.Root, req.Path, v, true), nil
}

func restore(ctx context.Context, b *Backend, req VersionRequest) (HeadResult, error) {
	if req.Path == "" || req.Hash == "" {
		return HeadResult{}, fmt.Errorf("%w: path and hash are required", ErrBadRequest)
	}
	v, committed, err := b.Server.RestoreVersion(ctx, req.Root, req.Path, req.Hash, uuid.Nil)
	if err != nil {
		return HeadResult{}, err
	}
	return headResult(req.Root, req.Path, v, committed), nil
}

func exportHistory(ctx context.Context, b *Backend, req VersionRequest) (ExportResult, error) {
	if req.Path == "" {
		return ExportResult{}, fmt.Errorf("%w: path is required", ErrBadRequest)
	}
	files, err := b.Server.ExportHistory(ctx, req.Root, req.Path, req.Hash)
	if err != nil {
		return ExportResult{}, err
	}
	if files == nil {
		files = []string{}
	}
	return ExportResult{Files: files}, nil
}

func rebuildViews(ctx context.Context, b *Backend, req ConflictsRequest) (ViewsResult, error) {
	rep, err := b.Server.RebuildViews(ctx, req.Root)
	if err != nil {
		return ViewsResult{}, err
	}
	return ViewsResult{Roots: rep.Roots, Latest: rep.Latest, Conflict: rep.Conflict, Removed: rep.Removed}, nil
}

func setRetention(ctx context.Context, b *Backend, req RetentionRequest) (RootInfo, error) {
	r, err := ParseRetention(req.Policy, req.Value)
	if err != nil {
		return RootInfo{}, err
	}
	if err := b.Server.SetRootRetention(ctx, req.Root, r); err != nil {
		return RootInfo{}, err
	}
	db := b.Server.Manifest()
	root, names, err := rootAndNames(ctx, db, req.Root)
	if err != nil {
		return RootInfo{}, err
	}
	return rootInfo(ctx, db, root, names)
}

// ParseRetention reads a policy as the CLI and the API spell it.
func ParseRetention(policy, value string) (manifest.Retention, error) {
	switch policy {
	case "keep-all", "staggered":
		if value != "" {
			return manifest.Retention{}, fmt.Errorf("%w: %s takes no value", ErrBadRequest, policy)
		}
		if policy == "staggered" {
			return manifest.Retention{Kind: manifest.Staggered}, nil
		}
		return manifest.Retention{Kind: manifest.KeepAll}, nil
	case "keep-last":
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil || n < 1 {
			return manifest.Retention{}, fmt.Errorf("%w: keep-last needs a count of at least 1, got %q", ErrBadRequest, value)
		}
		return manifest.Retention{Kind: manifest.KeepLast, Value: n}, nil
	case "keep-within":
		d, err := duration.Parse(value)
		if err != nil || d <= 0 {
			return manifest.Retention{}, fmt.Errorf("%w: keep-within needs a positive duration such as 720h or 30d, got %q", ErrBadRequest, value)
		}
		return manifest.Retention{Kind: manifest.KeepWithin, Value: int64(d)}, nil
	}
	return manifest.Retention{}, fmt.Errorf("%w: unknown retention policy %q (keep-all, keep-last, keep-within, staggered)", ErrBadRequest, policy)
}

// openContent finds the version and returns how to write its bytes.
func openContent(ctx context.Context, b *Backend, req VersionRequest) (Content, error) {
	if req.Path == "" || req.Hash == "" {
		return Content{}, fmt.Errorf("%w: path and hash are required", ErrBadRequest)
	}
	v, err := b.Server.FindVersion(ctx, req.Root, req.Path, req.Hash)
	if err != nil {
		return Content{}, err
	}
	return Content{
		Hash: v.Hash.String(),
		Size: v.Size,
		Mode: v.Mode,
		// Fetch's caller checks the whole content against Hash, so the
		// server only verifies each chunk.
		Write: func(ctx context.Context, w io.Writer) error {
			return b.Server.StreamContent(ctx, v.Hash, w)
		},
	}, nil
}

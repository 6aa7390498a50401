package admin

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/buildinfo"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/server"
)

// Backend is what the operations run against: an open server, either the
// one `quics run` serves (Online) or one the CLI opened on the data
// directory because no server runs.
type Backend struct {
	Server  *server.Server
	DataDir string
	// Online is true inside a running server. Stop ends it; offline both
	// are zero.
	Online  bool
	Stop    func()
	Started time.Time
}

// Op is one endpoint: an HTTP method and path, and the function that does
// the work. The same Run serves the HTTP API and offline calls, which is
// what makes an admin command's output the same either way. A later
// endpoint is one more Op in this file and one line in endpoints.
type Op[Req, Resp any] struct {
	Method string
	// Path is a net/http pattern path; each {wildcard} is the request
	// field of that JSON name.
	Path string
	Run  func(ctx context.Context, b *Backend, req Req) (Resp, error)
}

// The endpoints. docs/admin-api.md documents each.
var (
	OpVersion = Op[NoRequest, VersionResponse]{"GET", "/v1/version", version}

	OpListClients  = Op[NoRequest, []ClientInfo]{"GET", "/v1/clients", listClients}
	OpRemoveClient = Op[ClientRequest, ClientInfo]{"DELETE", "/v1/clients/{client}", removeClient}

	OpListRoots  = Op[NoRequest, []RootInfo]{"GET", "/v1/roots", listRoots}
	OpRemoveRoot = Op[RootRequest, RootInfo]{"DELETE", "/v1/roots/{root}", removeRoot}
	OpListFiles  = Op[RootRequest, []FileInfo]{"GET", "/v1/roots/{root}/files", listFiles}
	OpHistory    = Op[FileRequest, []VersionInfo]{"GET", "/v1/roots/{root}/history", history}

	OpSetPassword = Op[PasswordRequest, Done]{"PUT", "/v1/password", setPassword}
	OpStop        = Op[NoRequest, Done]{"POST", "/v1/stop", stop}
)

// endpoints lists every Op the HTTP API serves.
var endpoints = []endpoint{
	OpVersion,
	OpListClients, OpRemoveClient,
	OpListRoots, OpRemoveRoot, OpListFiles, OpHistory,
	OpSetPassword, OpStop,
	OpListConflicts, OpResolve, OpRestore, OpExportHistory, OpRebuildViews, OpSetRetention, OpContent,
	OpGC, OpCheck,
	OpListShares, OpStopShare,
	OpStore,
}

func version(_ context.Context, b *Backend, _ NoRequest) (VersionResponse, error) {
	return VersionResponse{
		Version:     buildinfo.String(),
		DataDir:     b.DataDir,
		Fingerprint: b.Server.Fingerprint(),
		Running:     b.Online,
		Started:     b.Started.UTC(),
	}, nil
}

func listClients(ctx context.Context, b *Backend, _ NoRequest) ([]ClientInfo, error) {
	db := b.Server.Manifest()
	clients, err := db.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	connected := b.Server.ConnectedClients()
	out := make([]ClientInfo, 0, len(clients))
	for _, c := range clients {
		info, err := clientInfo(ctx, db, c, connected[c.ID])
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func clientInfo(ctx context.Context, db *manifest.DB, c manifest.Client, sessions int) (ClientInfo, error) {
	roots, err := db.RootsOfClient(ctx, c.ID)
	if err != nil {
		return ClientInfo{}, fmt.Errorf("roots of client %s: %w", c.ID, err)
	}
	info := ClientInfo{
		ID:          c.ID.String(),
		Name:        c.Name,
		Registered:  c.Registered.UTC(),
		LastAddress: c.LastAddress,
		Roots:       make([]string, 0, len(roots)),
		Connected:   sessions > 0,
		Sessions:    sessions,
	}
	if !c.LastSeen.IsZero() {
		seen := c.LastSeen.UTC()
		info.LastSeen = &seen
	}
	for _, r := range roots {
		info.Roots = append(info.Roots, r.Name)
	}
	sort.Strings(info.Roots)
	return info, nil
}

// findClient resolves a client's ID, or its name when that is unique.
func findClient(ctx context.Context, db *manifest.DB, ref string) (manifest.Client, error) {
	if id, err := uuid.Parse(ref); err == nil {
		c, err := db.Client(ctx, id)
		if err != nil {
			return manifest.Client{}, fmt.Errorf("client %s: %w", ref, err)
		}
		return c, nil
	}
	clients, err := db.ListClients(ctx)
	if err != nil {
		return manifest.Client{}, fmt.Errorf("list clients: %w", err)
	}
	var found []manifest.Client
	for _, c := range clients {
		if c.Name == ref {
			found = append(found, c)
		}
	}
	switch len(found) {
	case 0:
		return manifest.Client{}, fmt.Errorf("%w: no client has the ID or name %q", ErrNotFound, ref)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, c := range found {
		ids[i] = c.ID.String()
	}
	return manifest.Client{}, fmt.Errorf("%w: %d clients are named %q; name one by ID: %s",
		ErrBadRequest, len(found), ref, strings.Join(ids, ", "))
}

func removeClient(ctx context.Context, b *Backend, req ClientRequest) (ClientInfo, error) {
	db := b.Server.Manifest()
	c, err := findClient(ctx, db, req.Client)
	if err != nil {
		return ClientInfo{}, err
	}
	info, err := clientInfo(ctx, db, c, b.Server.ConnectedClients()[c.ID])
	if err != nil {
		return ClientInfo{}, err
	}
	if err := b.Server.RemoveClient(ctx, c.ID); err != nil {
		return ClientInfo{}, fmt.Errorf("remove client %s: %w", c.ID, err)
	}
	info.Connected, info.Sessions = false, 0
	return info, nil
}

func listRoots(ctx context.Context, b *Backend, _ NoRequest) ([]RootInfo, error) {
	db := b.Server.Manifest()
	roots, err := db.ListRoots(ctx)
	if err != nil {
		return nil, fmt.Errorf("list roots: %w", err)
	}
	names, err := clientNames(ctx, db)
	if err != nil {
		return nil, err
	}
	out := make([]RootInfo, 0, len(roots))
	for _, r := range roots {
		info, err := rootInfo(ctx, db, r, names)
		if err != nil {
			return nil, err
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func findRoot(ctx context.Context, db *manifest.DB, name string) (manifest.Root, error) {
	r, err := db.RootByName(ctx, name)
	if err != nil {
		return manifest.Root{}, fmt.Errorf("root %q: %w", name, err)
	}
	return r, nil
}

// rootAndNames finds a root by name, with the names of every client for
// the answers that show who wrote what.
func rootAndNames(ctx context.Context, db *manifest.DB, name string) (manifest.Root, map[uuid.UUID]string, error) {
	r, err := findRoot(ctx, db, name)
	if err != nil {
		return manifest.Root{}, nil, err
	}
	names, err := clientNames(ctx, db)
	if err != nil {
		return manifest.Root{}, nil, err
	}
	return r, names, nil
}

func clientNames(ctx context.Context, db *manifest.DB) (map[uuid.UUID]string, error) {
	clients, err := db.ListClients(ctx)
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	names := make(map[uuid.UUID]string, len(clients))
	for _, c := range clients {
		names[c.ID] = c.Name
	}
	return names, nil
}

func rootInfo(ctx context.Context, db *manifest.DB, r manifest.Root, names map[uuid.UUID]string) (RootInfo, error) {
	info := RootInfo{
		ID:        uint64(r.ID),
		Name:      r.Name,
		Owner:     r.Owner.String(),
		OwnerName: names[r.Owner],
		Created:   r.Created.UTC(),
		Seq:       r.Seq,
		Retention: RetentionString(r.Retention),
		Members:   []MemberInfo{},
	}
	members, err := db.MembersOfRoot(ctx, r.ID)
	if err != nil {
		return RootInfo{}, fmt.Errorf("members of root %q: %w", r.Name, err)
	}
	for _, m := range members {
		info.Members = append(info.Members, MemberInfo{ID: m.Client.String(), Name: names[m.Client], Joined: m.Joined.UTC()})
	}
	err = db.ListHeads(ctx, r.ID, func(_ string, h manifest.Head) error {
		if h.Deleted {
			info.Deleted++
			return nil
		}
		info.Files++
		info.Bytes += h.Size
		return nil
	})
	if err != nil {
		return RootInfo{}, fmt.Errorf("files of root %q: %w", r.Name, err)
	}
	err = db.ForEachVersion(ctx, r.ID, func(_ manifest.RootID, _ string, v manifest.Version) error {
		info.Versions++
		info.HistoryBytes += v.Size
		return nil
	})
	if err != nil {
		return RootInfo{}, fmt.Errorf("history of root %q: %w", r.Name, err)
	}
	conflicts, err := db.ListConflicts(ctx, r.ID)
	if err != nil {
		return RootInfo{}, fmt.Errorf("conflicts of root %q: %w", r.Name, err)
	}
	info.Conflicts = len(conflicts)
	return info, nil
}

// RetentionString is how the API and the CLI spell a retention policy.
func RetentionString(r manifest.Retention) string {
	switch r.Kind {
	case manifest.KeepLast:
		return fmt.Sprintf("keep-last %d", r.Value)
	case manifest.KeepWithin:
		return "keep-within " + time.Duration(r.Value).String()
	case manifest.Staggered:
		return "staggered"
	}
	return "keep-all"
}

func removeRoot(ctx context.Context, b *Backend, req RootRequest) (RootInfo, error) {
	db := b.Server.Manifest()
	r, names, err := rootAndNames(ctx, db, req.Root)
	if err != nil {
		return RootInfo{}, err
	}
	info, err := rootInfo(ctx, db, r, names)
	if err != nil {
		return RootInfo{}, err
	}
	if err := b.Server.RemoveRoot(ctx, r.ID); err != nil {
		return RootInfo{}, fmt.Errorf("remove root %q: %w", r.Name, err)
	}
	return info, nil
}

func listFiles(ctx context.Context, b *Backend, req RootRequest) ([]FileInfo, error) {
	db := b.Server.Manifest()
	r, names, err := rootAndNames(ctx, db, req.Root)
	if err != nil {
		return nil, err
	}
	out := []FileInfo{}
	err = db.ListHeads(ctx, r.ID, func(p string, h manifest.Head) error {
		out = append(out, FileInfo{
			Path:       p,
			Seq:        h.Seq,
			Hash:       hashString(h.Hash, h.Deleted),
			Size:       h.Size,
			Mode:       h.Mode,
			MTime:      h.MTime.UTC(),
			Deleted:    h.Deleted,
			Client:     h.Client.String(),
			ClientName: names[h.Client],
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("files of root %q: %w", r.Name, err)
	}
	return out, nil
}

func history(ctx context.Context, b *Backend, req FileRequest) ([]VersionInfo, error) {
	if req.Path == "" {
		return nil, fmt.Errorf("%w: no file path", ErrBadRequest)
	}
	db := b.Server.Manifest()
	r, names, err := rootAndNames(ctx, db, req.Root)
	if err != nil {
		return nil, err
	}
	versions, err := db.Versions(ctx, r.ID, req.Path)
	if err != nil {
		return nil, fmt.Errorf("history of %q in root %q: %w", req.Path, r.Name, err)
	}
	out := make([]VersionInfo, 0, len(versions))
	for _, v := range versions {
		out = append(out, VersionInfo{
			Seq:        v.Seq,
			Hash:       hashString(v.Hash, v.Deleted),
			Size:       v.Size,
			Mode:       v.Mode,
			MTime:      v.MTime.UTC(),
			Client:     v.Client.String(),
			ClientName: names[v.Client],
			Time:       v.WallTime.UTC(),
			Deleted:    v.Deleted,
		})
	}
	return out, nil
}

// hashString spells a content hash; a deletion has none.
func hashString(id cas.ID, deleted bool) string {
	if deleted && id.IsZero() {
		return ""
	}
	return id.String()
}

func setPassword(ctx context.Context, b *Backend, req PasswordRequest) (Done, error) {
	if err := b.Server.SetPassword(ctx, req.Password); err != nil {
		return Done{}, fmt.Errorf("set server password: %w", err)
	}
	return Done{OK: true}, nil
}

func stop(_ context.Context, b *Backend, _ NoRequest) (Done, error) {
	if !b.Online || b.Stop == nil {
		return Done{}, fmt.Errorf("%w: no server is running", ErrUnavailable)
	}
	b.Stop()
	return Done{OK: true}, nil
}

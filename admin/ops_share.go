package admin

import (
	"context"
	"time"

	"github.com/quic-s/quics/server"
)

// Share links: the operator lists every link and stops any.
var (
	OpListShares = Op[NoRequest, []ShareInfo]{"GET", "/v1/shares", listShares}
	OpStopShare  = Op[ShareRequest, ShareInfo]{"DELETE", "/v1/shares/{id}", stopShare}
)

// ShareRequest names a share link by its id.
type ShareRequest struct {
	ID string `json:"id"`
}

// ShareInfo is a share link. Its URL is not here: the server keeps only a
// hash of the link's token, so only its creator, when it was made, saw it.
type ShareInfo struct {
	ID   string `json:"id"`
	Root string `json:"root"` // "" when the root was removed
	Path string `json:"path"`
	// Client created the link.
	Client     string    `json:"client"`
	ClientName string    `json:"client_name,omitempty"`
	Created    time.Time `json:"created"`
	// Expires is absent for a link that never expires.
	Expires *time.Time `json:"expires,omitempty"`
	// MaxDownloads is 0 for no limit.
	MaxDownloads uint64     `json:"max_downloads"`
	Downloads    uint64     `json:"downloads"`
	LastDownload *time.Time `json:"last_download,omitempty"`
	// Version is the content hash of the pinned version, absent for a link
	// that serves the file's head; Seq is that version's seq.
	Version string `json:"version,omitempty"`
	Seq     uint64 `json:"seq,omitempty"`
	Size    uint64 `json:"size,omitempty"`
	// State is active, exhausted (no downloads left), expired or revoked
	// (root removed, or its creator left it).
	State string `json:"state"`
}

// ShareInfoOf is the API form of a link.
func ShareInfoOf(s server.ShareInfo) ShareInfo {
	info := ShareInfo{
		ID: s.ID.String(), Root: s.RootName, Path: s.Path, Client: s.Client.String(), ClientName: s.ClientName,
		Created: s.Created.UTC(), Expires: optionalTime(s.Expires), MaxDownloads: s.MaxDownloads,
		Downloads: s.Downloads, LastDownload: optionalTime(s.LastDownload), State: string(s.State),
	}
	if p := s.Pin; p != nil {
		info.Version, info.Seq, info.Size = p.Hash.String(), p.Seq, p.Size
	}
	return info
}

func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func listShares(ctx context.Context, b *Backend, _ NoRequest) ([]ShareInfo, error) {
	list, err := b.Server.Shares(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ShareInfo, len(list))
	for i, s := range list {
		out[i] = ShareInfoOf(s)
	}
	return out, nil
}

func stopShare(ctx context.Context, b *Backend, req ShareRequest) (ShareInfo, error) {
	s, err := b.Server.RemoveShare(ctx, req.ID)
	if err != nil {
		return ShareInfo{}, err
	}
	return ShareInfoOf(s), nil
}

package syncproto

import (
	"context"
	"net"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// Session is an authenticated connection: every request after AuthRequest
// runs on behalf of ClientID. The server's Handler creates it in
// Authenticate and may keep per-connection state (pinned chunks) keyed by
// it; SessionEnded tells it when the connection is gone.
type Session struct {
	ClientID string
	Remote   net.Addr
	// State belongs to the Handler: whatever it needs per connection.
	State any
}

// ChunkRef is one entry of a file's chunk list.
type ChunkRef struct {
	ID   cas.ID
	Size uint32
}

// Handler is what a quics server implements; the protocol core decodes
// frames, enforces limits and authentication, and calls it. Every method
// runs on the goroutine of its stream; errors are sent to the peer through
// WireError, so a Handler returns syncproto sentinels (wrapped with a
// message fit for the peer) for anything the client should understand.
type Handler interface {
	// RegisterClient registers a new device with the server password.
	RegisterClient(ctx context.Context, remote net.Addr, req *syncpb.RegisterClientRequest) (*syncpb.RegisterClientResponse, error)
	// Authenticate checks client ID and token and opens a session.
	Authenticate(ctx context.Context, remote net.Addr, req *syncpb.AuthRequest) (*Session, error)
	// SessionEnded releases what the session held (pins, watch).
	SessionEnded(s *Session)

	RegisterRoot(ctx context.Context, s *Session, req *syncpb.RegisterRootRequest) (*syncpb.RootInfo, error)
	JoinRoot(ctx context.Context, s *Session, req *syncpb.JoinRootRequest) (*syncpb.RootInfo, error)
	LeaveRoot(ctx context.Context, s *Session, req *syncpb.LeaveRootRequest) error
	ListRoots(ctx context.Context, s *Session, req *syncpb.ListRootsRequest) (*syncpb.ListRootsResponse, error)

	// HaveChunks reports which chunks the server has and pins those for the
	// session, so garbage collection cannot remove them before the commit.
	HaveChunks(ctx context.Context, s *Session, root string, ids []cas.ID) ([]bool, error)
	// PutChunks stores the chunks next yields until it returns io.EOF,
	// verified against their IDs, and makes them durable before returning.
	// A DeltaHandler may be given delta-encoded chunks (ChunkDelta): it
	// resolves their sources (DeltaSources) as it resolves SourceChunkList's
	// and decodes them with DecodeDelta.
	PutChunks(ctx context.Context, s *Session, root string, next func() (Chunk, error)) error
	// Propose is please-sync: commit a new version if its base is the head.
	Propose(ctx context.Context, s *Session, req *syncpb.ProposeRequest, chunks []ChunkRef) (*syncpb.CommitResponse, error)

	// Heads emits the heads of a root changed after req.AfterSeq, in parts,
	// and returns the root sequence to resume from.
	Heads(ctx context.Context, s *Session, req *syncpb.HeadsRequest, emit func([]*syncpb.FileHead) error) (rootSeq uint64, err error)
	// ChunkList returns the chunk list of a version of a file.
	ChunkList(ctx context.Context, s *Session, req *syncpb.ChunkListRequest) (size int64, chunks []ChunkRef, err error)
	// GetChunks emits each chunk in the form it is stored.
	GetChunks(ctx context.Context, s *Session, root string, ids []cas.ID, emit func(Chunk) error) error
	// Watch pushes notices for the session's roots until ctx ends.
	Watch(ctx context.Context, s *Session, req *syncpb.WatchRequest, push func(*syncpb.Notice) error) error

	// ListConflicts lists a root's unresolved conflicts (of one path when
	// req.Path is set), at most MaxConflicts.
	ListConflicts(ctx context.Context, s *Session, req *syncpb.ListConflictsRequest) (*syncpb.ListConflictsResponse, error)
	// ResolveConflict keeps one side of a conflict as the new head.
	ResolveConflict(ctx context.Context, s *Session, req *syncpb.ResolveConflictRequest) (*syncpb.CommitResponse, error)
	// History lists a file's versions, oldest first, at most
	// MaxHistoryEntries (the newest).
	History(ctx context.Context, s *Session, req *syncpb.HistoryRequest) (*syncpb.HistoryResponse, error)
	// Restore makes an old version of a file its new head.
	Restore(ctx context.Context, s *Session, req *syncpb.RestoreRequest) (*syncpb.CommitResponse, error)
	// SetRetention sets a root's retention policy and applies it.
	SetRetention(ctx context.Context, s *Session, req *syncpb.SetRetentionRequest) error

	// CreateShare creates a share link to a file of a root the session's
	// client is a member of.
	CreateShare(ctx context.Context, s *Session, req *syncpb.CreateShareRequest) (*syncpb.CreateShareResponse, error)
	// ListShares lists the links the session's client created, at most
	// MaxShares.
	ListShares(ctx context.Context, s *Session, req *syncpb.ListSharesRequest) (*syncpb.ListSharesResponse, error)
	// StopShare stops a link the session's client created.
	StopShare(ctx context.Context, s *Session, req *syncpb.StopShareRequest) (*syncpb.StopShareResponse, error)
}

// BatchPreparer is implemented by a Handler that looks up what the items
// of a propose batch need (their heads, their chunks) for all of them at
// once rather than item by item. The Server finds it by type assertion and
// calls PrepareBatch with the batch's well-formed items before deciding
// them; each item is then decided by the ProposeFunc it returns, with the
// same contract as Handler.Propose.
type BatchPreparer interface {
	PrepareBatch(ctx context.Context, s *Session, root string, items []BatchItem) ProposeFunc
}

// BatchItem is a well-formed item of a propose batch.
type BatchItem struct {
	Request *syncpb.ProposeRequest
	Chunks  []ChunkRef
}

// ProposeFunc decides one proposal of a batch (see BatchPreparer).
type ProposeFunc func(ctx context.Context, req *syncpb.ProposeRequest, chunks []ChunkRef) (*syncpb.CommitResponse, error)

// DeltaHandler is what a Handler also implements to serve the delta forms
// of the protocol: delta manifests (a chunk list as edits of a version
// both sides have), block signatures, and delta-encoded chunks both ways.
// The Server finds it by type assertion; without it, a delta proposal or a
// SignaturesRequest is answered ErrUnsupported, a delta-encoded upload is
// refused the same way, and ChunkList and GetChunks answer in full.
type DeltaHandler interface {
	// SourceChunkList returns the chunk list of the version of path in
	// root whose content hash is hash, which a delta is written against:
	// a version (or conflict candidate) of that path the session can
	// reach, else ErrNotFound. Its chunks become usable as delta sources
	// and dictionaries for the session.
	SourceChunkList(ctx context.Context, s *Session, root, path string, hash cas.ID) ([]ChunkRef, error)
	// Signatures returns, for each requested chunk in order, its
	// signature (Sign) in its source's block size.
	Signatures(ctx context.Context, s *Session, req *syncpb.SignaturesRequest) ([][]byte, error)
	// GetChunksDict is GetChunks where chunk i may be emitted
	// delta-encoded (ChunkDelta) against the chunks dicts[i], which the
	// client holds; a dictionary the session cannot reach, or an encoding
	// that does not shrink the chunk, is ignored and the stored form sent.
	GetChunksDict(ctx context.Context, s *Session, root string, ids []cas.ID, dicts [][]cas.ID, emit func(Chunk) error) error
}

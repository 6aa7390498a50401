package syncproto

import (
	"context"
	"fmt"
	"io"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// Message frame types, as assigned by the comments in syncpb/sync.proto.
// The numbers are part of the protocol: never renumber, only add.
const (
	FrameRegisterClientRequest  FrameType = 0x10
	FrameRegisterClientResponse FrameType = 0x11
	FrameAuthRequest            FrameType = 0x12
	FrameAuthResponse           FrameType = 0x13
	FrameRegisterRootRequest    FrameType = 0x14
	FrameJoinRootRequest        FrameType = 0x15
	FrameRootInfo               FrameType = 0x16
	FrameLeaveRootRequest       FrameType = 0x17
	FrameListRootsRequest       FrameType = 0x18
	FrameListRootsResponse      FrameType = 0x19
	FrameAck                    FrameType = 0x1a
	FrameHaveChunksRequest      FrameType = 0x1b
	FrameHaveChunksResponse     FrameType = 0x1c
	FramePutChunksRequest       FrameType = 0x1d
	FrameProposeRequest         FrameType = 0x1e
	FrameChunkListPart          FrameType = 0x1f
	FrameCommitResponse         FrameType = 0x20
	FrameHeadsRequest           FrameType = 0x21
	FrameHeadsPart              FrameType = 0x22
	FrameChunkListRequest       FrameType = 0x23
	FrameChunkListHeader        FrameType = 0x24
	FrameGetChunksRequest       FrameType = 0x25
	FrameWatchRequest           FrameType = 0x26
	FrameNotice                 FrameType = 0x27
	FramePing                   FrameType = 0x28
	FramePong                   FrameType = 0x29
	FrameListConflictsRequest   FrameType = 0x2a
	FrameListConflictsResponse  FrameType = 0x2b
	FrameResolveConflictRequest FrameType = 0x2c
	FrameHistoryRequest         FrameType = 0x2d
	FrameHistoryResponse        FrameType = 0x2e
	FrameRestoreRequest         FrameType = 0x2f
	FrameSetRetentionRequest    FrameType = 0x30
	FrameCreateShareRequest     FrameType = 0x31
	FrameCreateShareResponse    FrameType = 0x32
	FrameListSharesRequest      FrameType = 0x33
	FrameListSharesResponse     FrameType = 0x34
	FrameStopShareRequest       FrameType = 0x35
	FrameStopShareResponse      FrameType = 0x36
	FrameChunkListDelta         FrameType = 0x37
	FrameSignaturesRequest      FrameType = 0x38
	FrameSignaturesResponse     FrameType = 0x39
	FrameProposeBatchRequest    FrameType = 0x3a
	FrameProposeBatchResponse   FrameType = 0x3b
	FrameChunkListBatchRequest  FrameType = 0x3c
	FrameChunkListBatchResponse FrameType = 0x3d
)

// Protocol limits on lists carried in messages. Every decoder checks them
// before it allocates.
const (
	// MaxHaveChunksIDs bounds the IDs of one HaveChunksRequest (2 MiB).
	MaxHaveChunksIDs = 65536
	// MaxGetChunksIDs bounds the IDs of one GetChunksRequest.
	MaxGetChunksIDs = 4096
	// MaxChunkListPart bounds the entries of one ChunkListPart.
	MaxChunkListPart = 65536
	// MaxChunkList bounds a whole chunk list: 4 Mi chunks, a 256 GiB file
	// at the default 64 KiB average chunk.
	MaxChunkList = 4 << 20
	// MaxWatchCursors bounds the cursors of one WatchRequest.
	MaxWatchCursors = 65536
	// MaxConflicts bounds the conflicts of one ListConflictsResponse.
	MaxConflicts = 4096
	// MaxHistoryEntries bounds the versions of one HistoryResponse.
	MaxHistoryEntries = 16384
	// MaxShares bounds the links of one ListSharesResponse.
	MaxShares = 4096
	// MaxDeltaRuns bounds the runs of one ChunkListDelta.
	MaxDeltaRuns = 65536
	// MaxDeltaEntries bounds the new entries of one ChunkListDelta; a
	// list that changed more travels whole.
	MaxDeltaEntries = 65536
	// MaxSignatureChunks bounds the chunks of one SignaturesRequest.
	MaxSignatureChunks = 256
	// MaxDeltaSources bounds the chunks a delta-encoded chunk is built
	// from, and the dictionaries of one chunk in a GetChunksRequest.
	MaxDeltaSources = 8
	// MaxBatchProposals bounds the items of one ProposeBatchRequest, and
	// MaxBatchEntries their chunk list entries together (2.3 MiB).
	MaxBatchProposals = 1024
	MaxBatchEntries   = 65536
	// MaxHeadsPage bounds the limit a client asks of one HeadsRequest.
	MaxHeadsPage = 1 << 20
	// MaxChunkListBatch bounds the items of one ChunkListBatchRequest;
	// their lists together are bounded by MaxBatchEntries.
	MaxChunkListBatch = 1024
	// MaxWholeRuns bounds the whole runs one PutChunksRequest names.
	MaxWholeRuns = 1024
)

// messageTypes is the schema's table: the frame type of each message.
var messageTypes = [...]struct {
	t FrameType
	m proto.Message
}{
	{FrameRegisterClientRequest, (*syncpb.RegisterClientRequest)(nil)},
	{FrameRegisterClientResponse, (*syncpb.RegisterClientResponse)(nil)},
	{FrameAuthRequest, (*syncpb.AuthRequest)(nil)},
	{FrameAuthResponse, (*syncpb.AuthResponse)(nil)},
	{FrameRegisterRootRequest, (*syncpb.RegisterRootRequest)(nil)},
	{FrameJoinRootRequest, (*syncpb.JoinRootRequest)(nil)},
	{FrameRootInfo, (*syncpb.RootInfo)(nil)},
	{FrameLeaveRootRequest, (*syncpb.LeaveRootRequest)(nil)},
	{FrameListRootsRequest, (*syncpb.ListRootsRequest)(nil)},
	{FrameListRootsResponse, (*syncpb.ListRootsResponse)(nil)},
	{FrameAck, (*syncpb.Ack)(nil)},
	{FrameHaveChunksRequest, (*syncpb.HaveChunksRequest)(nil)},
	{FrameHaveChunksResponse, (*syncpb.HaveChunksResponse)(nil)},
	{FramePutChunksRequest, (*syncpb.PutChunksRequest)(nil)},
	{FrameProposeRequest, (*syncpb.ProposeRequest)(nil)},
	{FrameChunkListPart, (*syncpb.ChunkListPart)(nil)},
	{FrameCommitResponse, (*syncpb.CommitResponse)(nil)},
	{FrameHeadsRequest, (*syncpb.HeadsRequest)(nil)},
	{FrameHeadsPart, (*syncpb.HeadsPart)(nil)},
	{FrameChunkListRequest, (*syncpb.ChunkListRequest)(nil)},
	{FrameChunkListHeader, (*syncpb.ChunkListHeader)(nil)},
	{FrameGetChunksRequest, (*syncpb.GetChunksRequest)(nil)},
	{FrameWatchRequest, (*syncpb.WatchRequest)(nil)},
	{FrameNotice, (*syncpb.Notice)(nil)},
	{FramePing, (*syncpb.Ping)(nil)},
	{FramePong, (*syncpb.Pong)(nil)},
	{FrameListConflictsRequest, (*syncpb.ListConflictsRequest)(nil)},
	{FrameListConflictsResponse, (*syncpb.ListConflictsResponse)(nil)},
	{FrameResolveConflictRequest, (*syncpb.ResolveConflictRequest)(nil)},
	{FrameHistoryRequest, (*syncpb.HistoryRequest)(nil)},
	{FrameHistoryResponse, (*syncpb.HistoryResponse)(nil)},
	{FrameRestoreRequest, (*syncpb.RestoreRequest)(nil)},
	{FrameSetRetentionRequest, (*syncpb.SetRetentionRequest)(nil)},
	{FrameCreateShareRequest, (*syncpb.CreateShareRequest)(nil)},
	{FrameCreateShareResponse, (*syncpb.CreateShareResponse)(nil)},
	{FrameListSharesRequest, (*syncpb.ListSharesRequest)(nil)},
	{FrameListSharesResponse, (*syncpb.ListSharesResponse)(nil)},
	{FrameStopShareRequest, (*syncpb.StopShareRequest)(nil)},
	{FrameStopShareResponse, (*syncpb.StopShareResponse)(nil)},
	{FrameChunkListDelta, (*syncpb.ChunkListDelta)(nil)},
	{FrameSignaturesRequest, (*syncpb.SignaturesRequest)(nil)},
	{FrameSignaturesResponse, (*syncpb.SignaturesResponse)(nil)},
	{FrameProposeBatchRequest, (*syncpb.ProposeBatchRequest)(nil)},
	{FrameProposeBatchResponse, (*syncpb.ProposeBatchResponse)(nil)},
	{FrameChunkListBatchRequest, (*syncpb.ChunkListBatchRequest)(nil)},
	{FrameChunkListBatchResponse, (*syncpb.ChunkListBatchResponse)(nil)},
}

var (
	typeOfMessage = make(map[protoreflect.FullName]FrameType, len(messageTypes))
	messageOfType = make(map[FrameType]protoreflect.MessageType, len(messageTypes))
)

func init() {
	for _, e := range messageTypes {
		mt := e.m.ProtoReflect().Type()
		typeOfMessage[mt.Descriptor().FullName()] = e.t
		messageOfType[e.t] = mt
	}
}

// MessageFrameType returns the frame type that carries m's message type.
func MessageFrameType(m proto.Message) (FrameType, bool) {
	t, ok := typeOfMessage[m.ProtoReflect().Descriptor().FullName()]
	return t, ok
}

// NewMessage returns an empty message of the type frame type t carries.
func NewMessage(t FrameType) (proto.Message, bool) {
	mt, ok := messageOfType[t]
	if !ok {
		return nil, false
	}
	return mt.New().Interface(), true
}

// frameName names a frame type for errors: the message name when the
// schema assigns one.
func frameName(t FrameType) string {
	if mt, ok := messageOfType[t]; ok {
		return string(mt.Descriptor().Name())
	}
	return t.String()
}

func messageName(m proto.Message) string {
	return string(m.ProtoReflect().Descriptor().Name())
}

// EncodeMessage appends the frame type and payload of m to dst's payload.
func EncodeMessage(dst []byte, m proto.Message) (FrameType, []byte, error) {
	t, ok := MessageFrameType(m)
	if !ok {
		return FrameInvalid, dst, fmt.Errorf("syncproto: %s has no frame type", m.ProtoReflect().Descriptor().FullName())
	}
	payload, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(dst, m)
	if err != nil {
		return FrameInvalid, dst, fmt.Errorf("syncproto: encode %s: %w", messageName(m), err)
	}
	return t, payload, nil
}

// DecodeMessage parses the payload of a frame of type t into want, which
// must be of the message type t carries. A frame of another message type is
// ErrBadRequest, a type outside the schema ErrUnsupported, and a payload
// that is not a valid encoding ErrBadRequest. Bytes fields are copied, so
// want stays valid when the payload buffer is reused.
func DecodeMessage(t FrameType, payload []byte, want proto.Message) error {
	wantType, ok := MessageFrameType(want)
	if !ok {
		return fmt.Errorf("syncproto: decode: %s has no frame type", want.ProtoReflect().Descriptor().FullName())
	}
	if t != wantType {
		if _, known := messageOfType[t]; known || t == FrameChunk {
			return fmt.Errorf("%w: got %s, want %s", ErrBadRequest, frameName(t), messageName(want))
		}
		return fmt.Errorf("%w: frame %s where %s was expected", ErrUnsupported, t, messageName(want))
	}
	if err := proto.Unmarshal(payload, want); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadRequest, messageName(want), err)
	}
	return nil
}

// WriteMessage sends m as one frame of its type.
func WriteMessage(ctx context.Context, s *Stream, m proto.Message) error {
	t, payload, err := EncodeMessage(s.scratch[:0], m)
	if err != nil {
		return err
	}
	s.scratch = payload
	if err := s.WriteFrame(ctx, t, payload); err != nil {
		return err
	}
	if cap(s.scratch) > scratchKeep {
		s.scratch = nil // a large message does not stay in memory with the stream
	}
	return nil
}

// scratchKeep is the largest encoding buffer a stream keeps between
// messages.
const scratchKeep = 64 << 10

// ReadMessage reads the next frame into want (see DecodeMessage). An error
// frame is returned as the peer's *Error, so errors.Is(err, ErrNotFound)
// works; the peer ending the stream where a message was due is ErrTruncated.
func ReadMessage(ctx context.Context, s *Stream, want proto.Message) error {
	t, payload, err := s.ReadFrame(ctx)
	if err == io.EOF {
		return fmt.Errorf("%w: stream ended before %s: %w", ErrTruncated, messageName(want), io.ErrUnexpectedEOF)
	}
	if err != nil {
		return err
	}
	return DecodeMessage(t, payload, want)
}

// AppendIDs appends the concatenated 32-byte IDs, the form of the ids
// fields of the schema.
func AppendIDs(dst []byte, ids []cas.ID) []byte {
	dst = slices.Grow(dst, len(ids)*cas.IDSize)
	for i := range ids {
		dst = append(dst, ids[i][:]...)
	}
	return dst
}

// ParseIDs splits concatenated 32-byte IDs. A length that is not a multiple
// of 32 or more than maxCount IDs is ErrBadRequest, refused before
// anything is allocated.
func ParseIDs(b []byte, maxCount int) ([]cas.ID, error) {
	if len(b)%cas.IDSize != 0 {
		return nil, fmt.Errorf("%w: ids field of %d bytes is not a multiple of %d", ErrBadRequest, len(b), cas.IDSize)
	}
	n := len(b) / cas.IDSize
	if n > maxCount {
		return nil, fmt.Errorf("%w: %d ids, limit %d", ErrBadRequest, n, maxCount)
	}
	ids := make([]cas.ID, n)
	for i := range ids {
		copy(ids[i][:], b[i*cas.IDSize:])
	}
	return ids, nil
}

// AppendBitmap appends bits as a bitmap, bit i (LSB first) of byte i/8 set
// when bits[i] is true: the form of HaveChunksResponse.present.
func AppendBitmap(dst []byte, bits []bool) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, (len(bits)+7)/8)...)
	for i, b := range bits {
		if b {
			dst[start+i/8] |= 1 << (i % 8)
		}
	}
	return dst
}

// ParseBitmap reads a bitmap of exactly n bits: (n+7)/8 bytes, with the
// unused high bits of the last byte clear. Anything else is ErrBadRequest.
func ParseBitmap(b []byte, n int) ([]bool, error) {
	if n < 0 || len(b) != (n+7)/8 {
		return nil, fmt.Errorf("%w: bitmap of %d bytes for %d bits", ErrBadRequest, len(b), n)
	}
	if n%8 != 0 && b[len(b)-1]>>(n%8) != 0 {
		return nil, fmt.Errorf("%w: bitmap has bits set past bit %d", ErrBadRequest, n)
	}
	bits := make([]bool, n)
	for i := range bits {
		bits[i] = b[i/8]&(1<<(i%8)) != 0
	}
	return bits, nil
}

// EncodeChunkListPart returns the ChunkListPart message for refs.
func EncodeChunkListPart(refs []ChunkRef) *syncpb.ChunkListPart {
	part := &syncpb.ChunkListPart{
		Ids:   make([]byte, 0, len(refs)*cas.IDSize),
		Sizes: make([]uint32, len(refs)),
	}
	for i, r := range refs {
		part.Ids = append(part.Ids, r.ID[:]...)
		part.Sizes[i] = r.Size
	}
	return part
}

// appendChunkListPart checks one part of a chunk list and appends its
// entries to refs: at most MaxChunkListPart and at least one entry, as
// many sizes as IDs, no empty chunk, no chunk over maxChunk bytes, and not
// more than remain of the announced count.
func appendChunkListPart(refs []ChunkRef, part *syncpb.ChunkListPart, remain, maxChunk int) ([]ChunkRef, error) {
	ids, err := ParseIDs(part.GetIds(), MaxChunkListPart)
	if err != nil {
		return refs, fmt.Errorf("chunk list part: %w", err)
	}
	switch {
	case len(ids) == 0:
		return refs, fmt.Errorf("%w: empty chunk list part", ErrBadRequest)
	case len(part.GetSizes()) != len(ids):
		return refs, fmt.Errorf("%w: chunk list part has %d ids and %d sizes", ErrBadRequest, len(ids), len(part.GetSizes()))
	case len(ids) > remain:
		return refs, fmt.Errorf("%w: chunk list part of %d entries where %d remain of the announced count", ErrBadRequest, len(ids), remain)
	}
	for i, size := range part.GetSizes() {
		if size == 0 || uint64(size) > uint64(maxChunk) {
			return refs, fmt.Errorf("%w: chunk %s of %d bytes, limit %d", ErrBadRequest, ids[i].Short(), size, maxChunk)
		}
		refs = append(refs, ChunkRef{ID: ids[i], Size: size})
	}
	return refs, nil
}

// readChunkList reads the ChunkListPart frames of a list of count entries
// (at most MaxChunkList). The list grows as parts arrive, so an announced
// count costs nothing until the entries exist.
func readChunkList(ctx context.Context, s *Stream, count uint64, maxChunk int) ([]ChunkRef, error) {
	if count > MaxChunkList {
		return nil, fmt.Errorf("%w: chunk list of %d entries, limit %d", ErrBadRequest, count, MaxChunkList)
	}
	var refs []ChunkRef
	for uint64(len(refs)) < count {
		var part syncpb.ChunkListPart
		if err := ReadMessage(ctx, s, &part); err != nil {
			return nil, fmt.Errorf("syncproto: chunk list entry %d of %d: %w", len(refs), count, err)
		}
		var err error
		if refs, err = appendChunkListPart(refs, &part, int(count)-len(refs), maxChunk); err != nil {
			return nil, err
		}
	}
	return refs, nil
}

// writeChunkList sends refs in ChunkListPart frames of at most
// MaxChunkListPart entries.
func writeChunkList(ctx context.Context, s *Stream, refs []ChunkRef) error {
	for start := 0; start < len(refs); start += MaxChunkListPart {
		part := EncodeChunkListPart(refs[start:min(start+MaxChunkListPart, len(refs))])
		if err := WriteMessage(ctx, s, part); err != nil {
			return err
		}
	}
	return nil
}

// checkHash refuses a hash field that is neither empty nor 32 bytes.
func checkHash(field string, h []byte) error {
	if len(h) != 0 && len(h) != cas.IDSize {
		return fmt.Errorf("%w: %s of %d bytes, want %d", ErrBadRequest, field, len(h), cas.IDSize)
	}
	return nil
}

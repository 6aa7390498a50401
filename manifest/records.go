package manifest

import (
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/manifest/internal/recordpb"
)

// RootID numbers a root. IDs are handed out in increasing order and never
// reused, so keys of a removed root can never be mistaken for a new one's.
type RootID uint64

// String returns the decimal form.
func (id RootID) String() string { return strconv.FormatUint(uint64(id), 10) }

// Client is a registered device.
type Client struct {
	ID   uuid.UUID
	Name string
	// TokenHash is the PHC-encoded argon2id hash of the client's token.
	TokenHash   string
	LastAddress string
	Registered  time.Time
	LastSeen    time.Time
}

// ChunkParams are the content-defined chunking sizes of a root, in bytes.
// They are fixed when the root is created and told to every client.
type ChunkParams struct {
	Min, Avg, Max uint32
}

// MaxChunkSize bounds ChunkParams.Max.
const MaxChunkSize = 64 << 20

func (p ChunkParams) validate() error {
	if p.Min == 0 || p.Min > p.Avg || p.Avg > p.Max || p.Max > MaxChunkSize {
		return fmt.Errorf("%w: chunk params %d/%d/%d, want 0 < min <= avg <= max <= %d", ErrInvalid, p.Min, p.Avg, p.Max, MaxChunkSize)
	}
	return nil
}

// RetentionKind says which versions of a root's files are kept.
type RetentionKind uint8

// Retention kinds (see Retained for what each keeps).
const (
	// KeepAll keeps every version (the default).
	KeepAll RetentionKind = iota
	// KeepLast keeps the last Value versions of each file.
	KeepLast
	// KeepWithin keeps versions at most Value nanoseconds old.
	KeepWithin
	// Staggered thins versions out with age, as Syncthing's staggered
	// versioning does: one per 30 s for the first hour, one per hour for
	// the first day, one per day for the first 30 days, one per week
	// beyond. Value is 0.
	Staggered
)

func (k RetentionKind) String() string {
	switch k {
	case KeepAll:
		return "keep-all"
	case KeepLast:
		return "keep-last"
	case KeepWithin:
		return "keep-within"
	case Staggered:
		return "staggered"
	}
	return "RetentionKind(" + strconv.Itoa(int(k)) + ")"
}

// Retention is a root's retention policy.
type Retention struct {
	Kind  RetentionKind
	Value int64
}

// Validate reports whether the policy can be stored: KeepLast needs a
// count of at least 1, KeepWithin a positive duration, and the other
// kinds a zero Value. A bad policy is ErrInvalid.
func (r Retention) Validate() error { return r.validate() }

func (r Retention) validate() error {
	switch {
	case r.Kind == KeepAll && r.Value == 0,
		r.Kind == KeepLast && r.Value > 0,
		r.Kind == KeepWithin && r.Value > 0,
		r.Kind == Staggered && r.Value == 0:
		return nil
	}
	return fmt.Errorf("%w: retention kind %d with value %d", ErrInvalid, r.Kind, r.Value)
}

// Root is a synced directory shared by its member clients.
type Root struct {
	ID           RootID
	Name         string
	Owner        uuid.UUID
	PasswordHash string
	Chunking     ChunkParams
	Created      time.Time
	Retention    Retention
	// Seq is the root's logical clock: the seq of its latest committed
	// version, 0 before the first commit.
	Seq uint64
}

// Head is the latest version of one file.
type Head struct {
	// Seq is the root seq at which this version was committed (the
	// LatestSyncTimestamp clients compare with).
	Seq uint64
	// Hash is the content hash of the whole file (LatestHash); zero when
	// Deleted.
	Hash    cas.ID
	Size    uint64
	Mode    uint32
	MTime   time.Time
	Deleted bool
	// Client wrote this version; zero for the server or the admin.
	Client uuid.UUID
}

// Version is one accepted version of a file.
type Version struct {
	Seq      uint64
	Hash     cas.ID
	Size     uint64
	Mode     uint32
	MTime    time.Time
	Client   uuid.UUID
	WallTime time.Time
	Deleted  bool
}

// Head returns the head a commit of v leaves behind.
func (v Version) Head() Head {
	return Head{Seq: v.Seq, Hash: v.Hash, Size: v.Size, Mode: v.Mode, MTime: v.MTime, Deleted: v.Deleted, Client: v.Client}
}

// Chunk is one entry of a chunk list.
type Chunk struct {
	ID   cas.ID
	Size uint32
}

// MaxChunks bounds a chunk list: 4 Mi chunks is 256 GiB at the default
// 64 KiB average, and a 150 MiB record.
const MaxChunks = 4 << 20

// CandidateKind says which side of a conflict a candidate is.
type CandidateKind uint8

// Candidate kinds.
const (
	// CandidateServer is the head the server held when the conflict arose.
	CandidateServer CandidateKind = 1
	// CandidateClient is a client's proposal that lost the race.
	CandidateClient CandidateKind = 2
)

func (k CandidateKind) String() string {
	switch k {
	case CandidateServer:
		return "server"
	case CandidateClient:
		return "client"
	}
	return "CandidateKind(" + strconv.Itoa(int(k)) + ")"
}

// Candidate is one side of a conflict waiting for a decision.
type Candidate struct {
	Kind CandidateKind
	// Client proposed this candidate; zero for the server side.
	Client  uuid.UUID
	Hash    cas.ID
	Size    uint64
	Mode    uint32
	MTime   time.Time
	Deleted bool
	// BaseSeq is the head seq the proposal started from.
	BaseSeq uint64
	// LastUpdateTimestamp is the client's own logical clock for the file.
	LastUpdateTimestamp uint64
	Created             time.Time
}

// MaxCandidates bounds the candidates of one conflict: one server side and
// one per conflicting client.
const MaxCandidates = 256

// Conflict is the candidates of one path waiting for a decision.
type Conflict struct {
	Path       string
	Candidates []Candidate
}

// Bounds of the small records, checked before anything is decoded.
const (
	maxRecordLen    = 64 << 10
	maxChunkListLen = MaxChunks*(cas.IDSize+5) + 16
	maxNameLen      = 255 // client names
	maxAddressLen   = 255
	maxPHCLen       = secret.MaxEncodedLen
)

// Time is stored as Unix nanoseconds with 0 for "unset", so the zero
// time.Time survives a round trip. Times come back in UTC.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// optionalID encodes a zero ID as nothing, which is what deleted versions
// and server candidates carry.
func optionalID(id cas.ID) []byte {
	if id.IsZero() {
		return nil
	}
	return id[:]
}

func optionalUUID(id uuid.UUID) []byte {
	if id == uuid.Nil {
		return nil
	}
	return id[:]
}

func decodeID(what string, b []byte) (cas.ID, error) {
	switch len(b) {
	case 0:
		return cas.ID{}, nil
	case cas.IDSize:
		return cas.ID(b), nil
	}
	return cas.ID{}, fmt.Errorf("%w: %s has %d bytes, want %d", ErrCorrupt, what, len(b), cas.IDSize)
}

func decodeUUID(what string, b []byte) (uuid.UUID, error) {
	switch len(b) {
	case 0:
		return uuid.Nil, nil
	case clientIDLen:
		return uuid.UUID(b), nil
	}
	return uuid.Nil, fmt.Errorf("%w: %s has %d bytes, want %d", ErrCorrupt, what, len(b), clientIDLen)
}

func unmarshal(what string, b []byte, limit int, m proto.Message) error {
	if len(b) > limit {
		return fmt.Errorf("%w: %s record of %d bytes, at most %d", ErrCorrupt, what, len(b), limit)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return fmt.Errorf("%w: %s record: %w", ErrCorrupt, what, err)
	}
	return nil
}

func marshal(what string, m proto.Message) ([]byte, error) {
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("manifest: encode %s: %w", what, err)
	}
	return b, nil
}

func checkString(what, s string, limit int) error {
	if len(s) > limit || !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not UTF-8 of at most %d bytes", ErrInvalid, what, limit)
	}
	return nil
}

// Client records.

func encodeClient(c Client) ([]byte, error) {
	return marshal("client", &recordpb.Client{
		Id:                 c.ID[:],
		Name:               c.Name,
		TokenHash:          c.TokenHash,
		LastAddress:        c.LastAddress,
		RegisteredUnixNano: nanos(c.Registered),
		LastSeenUnixNano:   nanos(c.LastSeen),
	})
}

func decodeClient(b []byte) (Client, error) {
	var m recordpb.Client
	if err := unmarshal("client", b, maxRecordLen, &m); err != nil {
		return Client{}, err
	}
	if len(m.Id) != clientIDLen {
		return Client{}, fmt.Errorf("%w: client id has %d bytes, want %d", ErrCorrupt, len(m.Id), clientIDLen)
	}
	c := Client{
		ID:          uuid.UUID(m.Id),
		Name:        m.Name,
		TokenHash:   m.TokenHash,
		LastAddress: m.LastAddress,
		Registered:  fromNanos(m.RegisteredUnixNano),
		LastSeen:    fromNanos(m.LastSeenUnixNano),
	}
	if err := c.validate(); err != nil {
		return Client{}, fmt.Errorf("%w: client %s: %w", ErrCorrupt, c.ID, err)
	}
	return c, nil
}

func (c Client) validate() error {
	if c.ID == uuid.Nil {
		return fmt.Errorf("%w: nil client id", ErrInvalid)
	}
	if err := checkString("client name", c.Name, maxNameLen); err != nil {
		return err
	}
	if err := checkString("client address", c.LastAddress, maxAddressLen); err != nil {
		return err
	}
	return checkString("token hash", c.TokenHash, maxPHCLen)
}

// Root records.

func encodeRoot(r Root) ([]byte, error) {
	return marshal("root", &recordpb.Root{
		Id:              uint64(r.ID),
		Name:            r.Name,
		Owner:           r.Owner[:],
		PasswordHash:    r.PasswordHash,
		ChunkParams:     &recordpb.ChunkParams{Min: r.Chunking.Min, Avg: r.Chunking.Avg, Max: r.Chunking.Max},
		CreatedUnixNano: nanos(r.Created),
		Retention: &recordpb.Retention{
			Kind:  recordpb.RetentionKind(r.Retention.Kind),
			Value: r.Retention.Value,
		},
		Seq: r.Seq,
	})
}

func decodeRoot(b []byte) (Root, error) {
	var m recordpb.Root
	if err := unmarshal("root", b, maxRecordLen, &m); err != nil {
		return Root{}, err
	}
	owner, err := decodeUUID("root owner", m.Owner)
	if err != nil {
		return Root{}, err
	}
	cp := m.GetChunkParams()
	ret := m.GetRetention()
	if ret.GetKind() < 0 || ret.GetKind() > 255 {
		return Root{}, fmt.Errorf("%w: root %d: retention kind %d", ErrCorrupt, m.Id, ret.GetKind())
	}
	r := Root{
		ID:           RootID(m.Id),
		Name:         m.Name,
		Owner:        owner,
		PasswordHash: m.PasswordHash,
		Chunking:     ChunkParams{Min: cp.GetMin(), Avg: cp.GetAvg(), Max: cp.GetMax()},
		Created:      fromNanos(m.CreatedUnixNano),
		Retention:    Retention{Kind: RetentionKind(ret.GetKind()), Value: ret.GetValue()},
		Seq:          m.Seq,
	}
	if err := r.validate(); err != nil {
		return Root{}, fmt.Errorf("%w: root %d: %w", ErrCorrupt, r.ID, err)
	}
	return r, nil
}

func (r Root) validate() error {
	if r.ID == 0 {
		return fmt.Errorf("%w: root id 0", ErrInvalid)
	}
	if err := validRootName(r.Name); err != nil {
		return err
	}
	if err := checkString("password hash", r.PasswordHash, maxPHCLen); err != nil {
		return err
	}
	if err := r.Chunking.validate(); err != nil {
		return err
	}
	return r.Retention.validate()
}

// Head and version records.

func encodeHead(h Head) ([]byte, error) {
	return marshal("head", &recordpb.Head{
		Seq:           h.Seq,
		Hash:          optionalID(h.Hash),
		Size:          h.Size,
		Mode:          h.Mode,
		MtimeUnixNano: nanos(h.MTime),
		Deleted:       h.Deleted,
		Client:        optionalUUID(h.Client),
	})
}

func decodeHead(b []byte) (Head, error) {
	var m recordpb.Head
	if err := unmarshal("head", b, maxRecordLen, &m); err != nil {
		return Head{}, err
	}
	hash, err := decodeID("head hash", m.Hash)
	if err != nil {
		return Head{}, err
	}
	client, err := decodeUUID("head client", m.Client)
	if err != nil {
		return Head{}, err
	}
	h := Head{Seq: m.Seq, Hash: hash, Size: m.Size, Mode: m.Mode, MTime: fromNanos(m.MtimeUnixNano), Deleted: m.Deleted, Client: client}
	if err := checkContent(h.Seq, h.Hash, h.Size, h.Deleted); err != nil {
		return Head{}, fmt.Errorf("%w: head: %w", ErrCorrupt, err)
	}
	return h, nil
}

func encodeVersion(v Version) ([]byte, error) {
	return marshal("version", &recordpb.Version{
		Seq:              v.Seq,
		Hash:             optionalID(v.Hash),
		Size:             v.Size,
		Mode:             v.Mode,
		MtimeUnixNano:    nanos(v.MTime),
		Client:           optionalUUID(v.Client),
		WallTimeUnixNano: nanos(v.WallTime),
		Deleted:          v.Deleted,
	})
}

func decodeVersion(b []byte) (Version, error) {
	var m recordpb.Version
	if err := unmarshal("version", b, maxRecordLen, &m); err != nil {
		return Version{}, err
	}
	hash, err := decodeID("version hash", m.Hash)
	if err != nil {
		return Version{}, err
	}
	client, err := decodeUUID("version client", m.Client)
	if err != nil {
		return Version{}, err
	}
	v := Version{
		Seq: m.Seq, Hash: hash, Size: m.Size, Mode: m.Mode, MTime: fromNanos(m.MtimeUnixNano),
		Client: client, WallTime: fromNanos(m.WallTimeUnixNano), Deleted: m.Deleted,
	}
	if err := checkContent(v.Seq, v.Hash, v.Size, v.Deleted); err != nil {
		return Version{}, fmt.Errorf("%w: version: %w", ErrCorrupt, err)
	}
	return v, nil
}

// EmptyHash is the content hash of an empty file. Its chunk list is empty
// and implicit: it is never stored.
var EmptyHash = cas.Sum(nil)

// checkContent holds the rules every stored or proposed version obeys: a
// deletion has no content, an empty file has EmptyHash, any other file a
// non-zero hash; and seqs start at 1.
func checkContent(seq uint64, hash cas.ID, size uint64, deleted bool) error {
	switch {
	case seq == 0:
		return fmt.Errorf("%w: seq 0", ErrInvalid)
	case deleted && (!hash.IsZero() || size != 0):
		return fmt.Errorf("%w: a deletion with hash %s and size %d, want zero", ErrInvalid, hash.Short(), size)
	case !deleted && hash.IsZero():
		return fmt.Errorf("%w: a file with the zero hash", ErrInvalid)
	case !deleted && size == 0 && hash != EmptyHash:
		return fmt.Errorf("%w: an empty file with hash %s, want %s", ErrInvalid, hash.Short(), EmptyHash.Short())
	}
	return nil
}

// Chunk list records.

func encodeChunkList(chunks []Chunk) ([]byte, error) {
	if len(chunks) > MaxChunks {
		return nil, fmt.Errorf("%w: %d chunks, at most %d", ErrInvalid, len(chunks), MaxChunks)
	}
	m := recordpb.ChunkList{
		Ids:   make([]byte, 0, len(chunks)*cas.IDSize),
		Sizes: make([]uint32, 0, len(chunks)),
	}
	for _, c := range chunks {
		m.Ids = append(m.Ids, c.ID[:]...)
		m.Sizes = append(m.Sizes, c.Size)
	}
	return marshal("chunk list", &m)
}

func decodeChunkList(b []byte) ([]Chunk, error) {
	var m recordpb.ChunkList
	if err := unmarshal("chunk list", b, maxChunkListLen, &m); err != nil {
		return nil, err
	}
	if len(m.Ids)%cas.IDSize != 0 {
		return nil, fmt.Errorf("%w: chunk list ids of %d bytes, not a multiple of %d", ErrCorrupt, len(m.Ids), cas.IDSize)
	}
	n := len(m.Ids) / cas.IDSize
	if n != len(m.Sizes) || n > MaxChunks {
		return nil, fmt.Errorf("%w: chunk list with %d ids and %d sizes", ErrCorrupt, n, len(m.Sizes))
	}
	chunks := make([]Chunk, n)
	for i := range chunks {
		chunks[i] = Chunk{ID: cas.ID(m.Ids[i*cas.IDSize:]), Size: m.Sizes[i]}
		if chunks[i].Size == 0 {
			return nil, fmt.Errorf("%w: chunk %d of a chunk list has size 0", ErrCorrupt, i)
		}
	}
	return chunks, nil
}

// checkChunks verifies a proposed chunk list against the file it describes.
func checkChunks(chunks []Chunk, size uint64) error {
	if len(chunks) > MaxChunks {
		return fmt.Errorf("%w: %d chunks, at most %d", ErrInvalid, len(chunks), MaxChunks)
	}
	var sum uint64
	for i, c := range chunks {
		if c.Size == 0 || c.ID.IsZero() {
			return fmt.Errorf("%w: chunk %d has size %d and id %s", ErrInvalid, i, c.Size, c.ID.Short())
		}
		sum += uint64(c.Size)
	}
	if sum != size {
		return fmt.Errorf("%w: chunk sizes add up to %d, file size is %d", ErrInvalid, sum, size)
	}
	return nil
}

// Conflict records.

func encodeConflict(cands []Candidate) ([]byte, error) {
	m := recordpb.Conflict{Candidates: make([]*recordpb.Candidate, len(cands))}
	for i, c := range cands {
		m.Candidates[i] = &recordpb.Candidate{
			Kind:                recordpb.CandidateKind(c.Kind),
			Client:              optionalUUID(c.Client),
			Hash:                optionalID(c.Hash),
			Size:                c.Size,
			Mode:                c.Mode,
			MtimeUnixNano:       nanos(c.MTime),
			Deleted:             c.Deleted,
			BaseSeq:             c.BaseSeq,
			LastUpdateTimestamp: c.LastUpdateTimestamp,
			CreatedUnixNano:     nanos(c.Created),
		}
	}
	return marshal("conflict", &m)
}

func decodeConflict(b []byte) ([]Candidate, error) {
	var m recordpb.Conflict
	if err := unmarshal("conflict", b, maxRecordLen, &m); err != nil {
		return nil, err
	}
	if len(m.Candidates) == 0 || len(m.Candidates) > MaxCandidates {
		return nil, fmt.Errorf("%w: conflict with %d candidates, want 1 to %d", ErrCorrupt, len(m.Candidates), MaxCandidates)
	}
	cands := make([]Candidate, len(m.Candidates))
	for i, mc := range m.Candidates {
		if mc.Kind < 0 || mc.Kind > 255 {
			return nil, fmt.Errorf("%w: candidate %d has kind %d", ErrCorrupt, i, mc.Kind)
		}
		hash, err := decodeID("candidate hash", mc.Hash)
		if err != nil {
			return nil, err
		}
		client, err := decodeUUID("candidate client", mc.Client)
		if err != nil {
			return nil, err
		}
		cands[i] = Candidate{
			Kind: CandidateKind(mc.Kind), Client: client, Hash: hash, Size: mc.Size, Mode: mc.Mode,
			MTime: fromNanos(mc.MtimeUnixNano), Deleted: mc.Deleted, BaseSeq: mc.BaseSeq,
			LastUpdateTimestamp: mc.LastUpdateTimestamp, Created: fromNanos(mc.CreatedUnixNano),
		}
		if err := cands[i].validate(); err != nil {
			return nil, fmt.Errorf("%w: candidate %d: %w", ErrCorrupt, i, err)
		}
	}
	return cands, nil
}

func (c Candidate) validate() error {
	switch {
	case c.Kind == CandidateServer && c.Client != uuid.Nil:
		return fmt.Errorf("%w: a server candidate with client %s", ErrInvalid, c.Client)
	case c.Kind == CandidateClient && c.Client == uuid.Nil:
		return fmt.Errorf("%w: a client candidate without a client id", ErrInvalid)
	case c.Kind != CandidateServer && c.Kind != CandidateClient:
		return fmt.Errorf("%w: candidate kind %d", ErrInvalid, c.Kind)
	}
	// A candidate is content like a version; seq does not apply.
	return checkContent(1, c.Hash, c.Size, c.Deleted)
}

// Feed and membership records.

func encodeFeedEntry(path string) ([]byte, error) {
	return marshal("feed entry", &recordpb.FeedEntry{Path: []byte(path)})
}

func decodeFeedEntry(b []byte) (string, error) {
	var m recordpb.FeedEntry
	if err := unmarshal("feed entry", b, maxRecordLen, &m); err != nil {
		return "", err
	}
	path := string(m.Path)
	if err := validPath(path); err != nil {
		return "", fmt.Errorf("%w: feed entry: %w", ErrCorrupt, err)
	}
	return path, nil
}

func encodeMembership(joined time.Time) ([]byte, error) {
	return marshal("membership", &recordpb.Membership{JoinedUnixNano: nanos(joined)})
}

func decodeMembership(b []byte) (time.Time, error) {
	var m recordpb.Membership
	if err := unmarshal("membership", b, maxRecordLen, &m); err != nil {
		return time.Time{}, err
	}
	return fromNanos(m.JoinedUnixNano), nil
}

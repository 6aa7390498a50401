package manifest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest/internal/recordpb"
)

var (
	recClient = Client{ID: uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff"), Name: "laptop", TokenHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA",
		LastAddress: "[2001:db8::1]:6122", Registered: time.Unix(1700000000, 5).UTC(), LastSeen: time.Unix(1700000100, 0).UTC()}
	recRoot = Root{ID: 42, Name: "photos", Owner: recClient.ID, PasswordHash: "$argon2id$x", Chunking: testChunking,
		Created: time.Unix(1700000000, 0).UTC(), Retention: Retention{Kind: KeepLast, Value: 10}, Seq: 99}
	recVersion = Version{Seq: 7, Hash: cas.Sum([]byte("v")), Size: 1, Mode: 0o755, MTime: time.Unix(-5, 3).UTC(),
		Client: recClient.ID, WallTime: time.Unix(1700000200, 0).UTC()}
	recChunks = []Chunk{{ID: cas.Sum([]byte("c1")), Size: 65536}, {ID: cas.Sum([]byte("c2")), Size: 1}}
	recCands  = []Candidate{
		{Kind: CandidateServer, Hash: cas.Sum([]byte("s")), Size: 10, Mode: 0o644, BaseSeq: 3, Created: time.Unix(1, 0).UTC()},
		{Kind: CandidateClient, Client: recClient.ID, Deleted: true, BaseSeq: 3, LastUpdateTimestamp: 12},
		{Kind: CandidateClient, Client: uuid.MustParse("ffffffff-4455-6677-8899-aabbccddeeff"), Hash: EmptyHash},
	}
)

func TestRecordRoundTrip(t *testing.T) {
	check := func(name string, in, out any, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if d := cmp.Diff(in, out); d != "" {
			t.Errorf("%s round trip (-in +out):\n%s", name, d)
		}
	}
	{
		b, err := encodeClient(recClient)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeClient(b)
		check("client", recClient, got, err)
	}
	{
		b, err := encodeRoot(recRoot)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRoot(b)
		check("root", recRoot, got, err)
	}
	for _, v := range []Version{recVersion, {Seq: 1, Deleted: true}, {Seq: 2, Hash: EmptyHash}} {
		b, err := encodeVersion(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeVersion(b)
		check("version", v, got, err)
		b, err = encodeHead(v.Head())
		if err != nil {
			t.Fatal(err)
		}
		head, err := decodeHead(b)
		check("head", v.Head(), head, err)
	}
	{
		b, err := encodeChunkList(recChunks)
		if err != nil {
			t.Fatal(err)
		}
		if want := len(recChunks)*cas.IDSize + 10; len(b) > want {
			t.Errorf("chunk list of %d chunks takes %d bytes, want at most %d", len(recChunks), len(b), want)
		}
		got, err := decodeChunkList(b)
		check("chunk list", recChunks, got, err)
	}
	{
		b, err := encodeConflict(recCands)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeConflict(b)
		check("conflict", recCands, got, err)
	}
	{
		b, err := encodeFeedEntry("a/\xff/b")
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeFeedEntry(b)
		check("feed entry", "a/\xff/b", got, err)
	}
	{
		joined := time.Unix(1700000300, 1).UTC()
		b, err := encodeMembership(joined)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeMembership(b)
		check("membership", joined, got, err)
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodersRejectDamage(t *testing.T) {
	id32 := make([]byte, 32)
	id32[0] = 1
	okVersion := &recordpb.Version{Seq: 1, Hash: id32, Size: 5}
	for _, tc := range []struct {
		name   string
		decode func([]byte) error
		input  []byte
	}{
		{"not protobuf", decodeAny(decodeVersion), []byte{0xff, 0xff, 0xff}},
		{"oversized record", decodeAny(decodeVersion), make([]byte, maxRecordLen+1)},
		{"chunk ids not a multiple of 32", decodeAny(decodeChunkList), mustMarshal(t, &recordpb.ChunkList{Ids: make([]byte, 33), Sizes: []uint32{1}})},
		{"chunk counts disagree", decodeAny(decodeChunkList), mustMarshal(t, &recordpb.ChunkList{Ids: make([]byte, 64), Sizes: []uint32{1}})},
		{"chunk sizes without ids", decodeAny(decodeChunkList), mustMarshal(t, &recordpb.ChunkList{Sizes: []uint32{1, 2}})},
		{"chunk of size 0", decodeAny(decodeChunkList), mustMarshal(t, &recordpb.ChunkList{Ids: id32, Sizes: []uint32{0}})},
		{"record over its limit", func(b []byte) error { return unmarshal("test", b, 10, &recordpb.ChunkList{}) }, make([]byte, 11)},
		{"version hash of 31 bytes", decodeAny(decodeVersion), mustMarshal(t, &recordpb.Version{Seq: 1, Hash: id32[:31], Size: 1})},
		{"version client of 15 bytes", decodeAny(decodeVersion), mustMarshal(t, &recordpb.Version{Seq: 1, Hash: id32, Size: 1, Client: make([]byte, 15)})},
		{"version seq 0", decodeAny(decodeVersion), mustMarshal(t, &recordpb.Version{Hash: id32, Size: 1})},
		{"deletion with a hash", decodeAny(decodeVersion), mustMarshal(t, &recordpb.Version{Seq: 1, Hash: id32, Deleted: true})},
		{"file without a hash", decodeAny(decodeVersion), mustMarshal(t, &recordpb.Version{Seq: 1, Size: 3})},
		{"empty file with a non-empty hash", decodeAny(decodeVersion), mustMarshal(t, &recordpb.Version{Seq: 1, Hash: id32})},
		{"head hash of 33 bytes", decodeAny(decodeHead), mustMarshal(t, &recordpb.Head{Seq: 1, Hash: make([]byte, 33)})},
		{"client id missing", decodeAny(decodeClient), mustMarshal(t, &recordpb.Client{Name: "x"})},
		{"client id nil uuid", decodeAny(decodeClient), mustMarshal(t, &recordpb.Client{Id: make([]byte, 16)})},
		{"client name too long", decodeAny(decodeClient), mustMarshal(t, &recordpb.Client{Id: recClient.ID[:], Name: strings.Repeat("n", maxNameLen+1)})},
		{"root id 0", decodeAny(decodeRoot), mustMarshal(t, &recordpb.Root{Name: "r", ChunkParams: &recordpb.ChunkParams{Min: 1, Avg: 2, Max: 3}})},
		{"root without name", decodeAny(decodeRoot), mustMarshal(t, &recordpb.Root{Id: 1, ChunkParams: &recordpb.ChunkParams{Min: 1, Avg: 2, Max: 3}})},
		{"root chunk params inverted", decodeAny(decodeRoot), mustMarshal(t, &recordpb.Root{Id: 1, Name: "r", ChunkParams: &recordpb.ChunkParams{Min: 3, Avg: 2, Max: 1}})},
		{"root chunk params missing", decodeAny(decodeRoot), mustMarshal(t, &recordpb.Root{Id: 1, Name: "r"})},
		{"root retention unknown", decodeAny(decodeRoot), mustMarshal(t, &recordpb.Root{Id: 1, Name: "r", ChunkParams: &recordpb.ChunkParams{Min: 1, Avg: 2, Max: 3}, Retention: &recordpb.Retention{Kind: 9, Value: 1}})},
		{"root retention negative", decodeAny(decodeRoot), mustMarshal(t, &recordpb.Root{Id: 1, Name: "r", ChunkParams: &recordpb.ChunkParams{Min: 1, Avg: 2, Max: 3}, Retention: &recordpb.Retention{Kind: -1, Value: 1}})},
		{"root keep-last 0", decodeAny(decodeRoot), mustMarshal(t, &recordpb.Root{Id: 1, Name: "r", ChunkParams: &recordpb.ChunkParams{Min: 1, Avg: 2, Max: 3}, Retention: &recordpb.Retention{Kind: recordpb.RetentionKind_RETENTION_KIND_KEEP_LAST}})},
		{"root owner of 3 bytes", decodeAny(decodeRoot), mustMarshal(t, &recordpb.Root{Id: 1, Name: "r", Owner: []byte{1, 2, 3}, ChunkParams: &recordpb.ChunkParams{Min: 1, Avg: 2, Max: 3}})},
		{"conflict without candidates", decodeAny(decodeConflict), mustMarshal(t, &recordpb.Conflict{})},
		{"candidate kind unspecified", decodeAny(decodeConflict), mustMarshal(t, &recordpb.Conflict{Candidates: []*recordpb.Candidate{{Hash: id32, Size: 1}}})},
		{"client candidate without client", decodeAny(decodeConflict), mustMarshal(t, &recordpb.Conflict{Candidates: []*recordpb.Candidate{{Kind: recordpb.CandidateKind_CANDIDATE_KIND_CLIENT, Hash: id32, Size: 1}}})},
		{"server candidate with client", decodeAny(decodeConflict), mustMarshal(t, &recordpb.Conflict{Candidates: []*recordpb.Candidate{{Kind: recordpb.CandidateKind_CANDIDATE_KIND_SERVER, Client: recClient.ID[:], Hash: id32, Size: 1}}})},
		{"too many candidates", decodeAny(decodeConflict), mustMarshal(t, &recordpb.Conflict{Candidates: manyCandidates(MaxCandidates + 1)})},
		{"feed entry empty path", decodeAny(decodeFeedEntry), mustMarshal(t, &recordpb.FeedEntry{})},
		{"feed entry path with NUL", decodeAny(decodeFeedEntry), mustMarshal(t, &recordpb.FeedEntry{Path: []byte("a\x00b")})},
		{"membership not protobuf", decodeAny(decodeMembership), []byte{0x08}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.decode(tc.input); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
	// The fixture must be valid apart from the damage.
	if _, err := decodeVersion(mustMarshal(t, okVersion)); err != nil {
		t.Fatalf("valid version rejected: %v", err)
	}
}

func decodeAny[T any](decode func([]byte) (T, error)) func([]byte) error {
	return func(b []byte) error { _, err := decode(b); return err }
}

func manyCandidates(n int) []*recordpb.Candidate {
	out := make([]*recordpb.Candidate, n)
	for i := range out {
		id := uuid.New()
		out[i] = &recordpb.Candidate{Kind: recordpb.CandidateKind_CANDIDATE_KIND_CLIENT, Client: id[:], Deleted: true}
	}
	return out
}

// fuzzRecord checks a decoder against arbitrary bytes: no panic, damage is
// ErrCorrupt, and whatever decodes encodes and decodes to the same value.
func fuzzRecord[T any](f *testing.F, seeds []T, encode func(T) ([]byte, error), decode func([]byte) (T, error)) {
	for _, s := range seeds {
		b, err := encode(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decode(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error %v is not ErrCorrupt", err)
			}
			return
		}
		again, err := encode(v)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", v, err)
		}
		w, err := decode(again)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", v, err)
		}
		if d := cmp.Diff(v, w); d != "" {
			t.Fatalf("round trip changed the record (-first +second):\n%s", d)
		}
	})
}

func FuzzClientRecord(f *testing.F) {
	fuzzRecord(f, []Client{recClient, {ID: uuid.New()}}, encodeClient, decodeClient)
}

func FuzzRootRecord(f *testing.F) {
	fuzzRecord(f, []Root{recRoot}, encodeRoot, decodeRoot)
}

func FuzzHeadRecord(f *testing.F) {
	fuzzRecord(f, []Head{recVersion.Head(), {Seq: 1, Deleted: true}}, encodeHead, decodeHead)
}

func FuzzVersionRecord(f *testing.F) {
	fuzzRecord(f, []Version{recVersion, {Seq: 3, Deleted: true}, {Seq: 4, Hash: EmptyHash}}, encodeVersion, decodeVersion)
}

func FuzzChunkListRecord(f *testing.F) {
	fuzzRecord(f, [][]Chunk{recChunks, {}}, encodeChunkList, decodeChunkList)
}

func FuzzConflictRecord(f *testing.F) {
	fuzzRecord(f, [][]Candidate{recCands, recCands[:1]}, encodeConflict, decodeConflict)
}

func FuzzFeedEntryRecord(f *testing.F) {
	fuzzRecord(f, []string{"a/b", "\xff"}, encodeFeedEntry, decodeFeedEntry)
}

func FuzzMembershipRecord(f *testing.F) {
	fuzzRecord(f, []time.Time{time.Unix(1, 2).UTC(), {}}, encodeMembership, decodeMembership)
}

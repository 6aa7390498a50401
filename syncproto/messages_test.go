package syncproto

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// TestMessageTableMatchesSchema checks the table against the frame numbers
// written in sync.proto, the contract other implementations read.
func TestMessageTableMatchesSchema(t *testing.T) {
	schema, err := os.ReadFile("syncpb/sync.proto")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`// frame (0x[0-9a-f]+)\b[^\n]*\n(?://[^\n]*\n)*message (\w+) \{`)
	inSchema := make(map[string]FrameType)
	for _, m := range re.FindAllSubmatch(schema, -1) {
		n, err := strconv.ParseUint(string(m[1]), 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		inSchema[string(m[2])] = FrameType(n)
	}
	if len(inSchema) != len(messageTypes) {
		t.Errorf("sync.proto assigns %d frame types, the table has %d", len(inSchema), len(messageTypes))
	}
	seen := make(map[FrameType]bool)
	for _, e := range messageTypes {
		name := messageName(e.m)
		if want, ok := inSchema[name]; !ok || want != e.t {
			t.Errorf("%s: table says %#x, sync.proto says %#x (found %v)", name, uint64(e.t), uint64(want), ok)
		}
		if seen[e.t] || !e.t.IsMessage() {
			t.Errorf("%s: frame type %#x duplicated or outside the message range", name, uint64(e.t))
		}
		seen[e.t] = true
		if got, ok := MessageFrameType(e.m); !ok || got != e.t {
			t.Errorf("MessageFrameType(%s) = %#x, %v", name, uint64(got), ok)
		}
		if m, ok := NewMessage(e.t); !ok || messageName(m) != name {
			t.Errorf("NewMessage(%#x) = %v, %v; want a %s", uint64(e.t), m, ok, name)
		}
	}
	if _, ok := NewMessage(FrameChunk); ok {
		t.Error("NewMessage(FrameChunk) returned a message")
	}
	if _, ok := MessageFrameType(&syncpb.ChunkRef{}); ok {
		t.Error("ChunkRef, never a frame of its own, has a frame type")
	}
}

func TestDecodeMessage(t *testing.T) {
	good, err := proto.Marshal(&syncpb.RootInfo{Name: "docs", Seq: 7})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		t       FrameType
		payload []byte
		want    error // nil: decodes
	}{
		{"matching type", FrameRootInfo, good, nil},
		{"empty payload is the empty message", FrameRootInfo, nil, nil},
		{"another message type", FrameAck, nil, ErrBadRequest},
		{"chunk frame", FrameChunk, nil, ErrBadRequest},
		{"unassigned message type", 0x7f, nil, ErrUnsupported},
		{"reserved transport type", 0x05, nil, ErrUnsupported},
		{"truncated varint", FrameRootInfo, []byte{0x18, 0x80}, ErrBadRequest},
		{"bad wire type", FrameRootInfo, []byte{0x0f}, ErrBadRequest},
		{"length past the end", FrameRootInfo, []byte{0x0a, 0x10, 'a'}, ErrBadRequest},
		{"invalid UTF-8 string", FrameRootInfo, []byte{0x0a, 0x01, 0xff}, ErrBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var info syncpb.RootInfo
			err := DecodeMessage(tt.t, tt.payload, &info)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("DecodeMessage: %v", err)
				}
				if len(tt.payload) > 0 && (info.GetName() != "docs" || info.GetSeq() != 7) {
					t.Errorf("decoded %v", &info)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("DecodeMessage = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncodeMessageRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		ft, payload, err := EncodeMessage(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := NewMessage(ft)
		if err := DecodeMessage(ft, payload, got); err != nil {
			t.Fatalf("%s: %v", messageName(m), err)
		}
		if !proto.Equal(got, m) {
			t.Errorf("%s: round trip gave %v, want %v", messageName(m), got, m)
		}
	}
	if _, _, err := EncodeMessage(nil, &syncpb.ChunkRef{}); err == nil {
		t.Error("EncodeMessage of a message without frame type succeeded")
	}
}

func TestParseIDs(t *testing.T) {
	ids := []cas.ID{cas.Sum([]byte("a")), cas.Sum([]byte("b")), cas.Sum([]byte("c"))}
	packed := AppendIDs([]byte("prefix"), ids)[len("prefix"):]
	tests := []struct {
		name string
		b    []byte
		max  int
		want []cas.ID // nil with wantErr
		err  bool
	}{
		{"three", packed, 3, ids, false},
		{"none", nil, 3, []cas.ID{}, false},
		{"over the limit", packed, 2, nil, true},
		{"one byte short", packed[:95], 3, nil, true},
		{"one byte over", append(bytes.Clone(packed), 0), 4, nil, true},
		{"huge claim, small limit", make([]byte, 32*70000), MaxHaveChunksIDs, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIDs(tt.b, tt.max)
			if tt.err {
				if !errors.Is(err, ErrBadRequest) || got != nil {
					t.Fatalf("ParseIDs = %d ids, %v; want ErrBadRequest", len(got), err)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("ParseIDs = %v, %v", got, err)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("id %d = %s, want %s", i, got[i].Short(), tt.want[i].Short())
				}
			}
		})
	}
}

func TestBitmap(t *testing.T) {
	for _, n := range []int{0, 1, 7, 8, 9, 64, 65536} {
		bits := make([]bool, n)
		for i := range bits {
			bits[i] = i%3 == 0 || i == n-1
		}
		b := AppendBitmap(nil, bits)
		if len(b) != (n+7)/8 {
			t.Fatalf("%d bits in %d bytes", n, len(b))
		}
		got, err := ParseBitmap(b, n)
		if err != nil {
			t.Fatal(err)
		}
		for i := range bits {
			if got[i] != bits[i] {
				t.Fatalf("n=%d: bit %d = %v, want %v", n, i, got[i], bits[i])
			}
		}
	}
	if b := AppendBitmap(nil, []bool{true, false, false, true}); !bytes.Equal(b, []byte{0b1001}) {
		t.Errorf("bitmap %08b: bit 0 must be the least significant", b)
	}
	tests := []struct {
		name string
		b    []byte
		n    int
	}{
		{"too short", []byte{0xff}, 9},
		{"too long", []byte{0xff, 0}, 8},
		{"bits past the end", []byte{0b0001_0000}, 4},
		{"negative count", nil, -1},
	}
	for _, tt := range tests {
		if _, err := ParseBitmap(tt.b, tt.n); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: ParseBitmap = %v, want ErrBadRequest", tt.name, err)
		}
	}
}

func TestAppendChunkListPart(t *testing.T) {
	refs := []ChunkRef{{cas.Sum([]byte("a")), 100}, {cas.Sum([]byte("b")), 200}}
	got, err := appendChunkListPart(nil, EncodeChunkListPart(refs), 2, 1000)
	if err != nil || len(got) != 2 || got[0] != refs[0] || got[1] != refs[1] {
		t.Fatalf("appendChunkListPart = %v, %v", got, err)
	}
	ids := AppendIDs(nil, []cas.ID{refs[0].ID})
	tests := []struct {
		name   string
		part   *syncpb.ChunkListPart
		remain int
	}{
		{"more than remain", EncodeChunkListPart(refs), 1},
		{"empty", &syncpb.ChunkListPart{}, 5},
		{"missing size", &syncpb.ChunkListPart{Ids: ids}, 5},
		{"extra size", &syncpb.ChunkListPart{Ids: ids, Sizes: []uint32{1, 2}}, 5},
		{"zero size", &syncpb.ChunkListPart{Ids: ids, Sizes: []uint32{0}}, 5},
		{"chunk too large", &syncpb.ChunkListPart{Ids: ids, Sizes: []uint32{1001}}, 5},
		{"ragged ids", &syncpb.ChunkListPart{Ids: ids[:31], Sizes: []uint32{1}}, 5},
		{"over the part limit", &syncpb.ChunkListPart{Ids: make([]byte, 32*(MaxChunkListPart+1)), Sizes: make([]uint32, MaxChunkListPart+1)}, MaxChunkList},
	}
	for _, tt := range tests {
		if _, err := appendChunkListPart(nil, tt.part, tt.remain, 1000); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", tt.name, err)
		}
	}
}

// sampleMessages holds one filled message of every frame type.
func sampleMessages() []proto.Message {
	id := cas.Sum([]byte("chunk"))
	head := &syncpb.FileHead{Path: "dir/f.txt", Seq: 9, Hash: id[:], Size: 100, Mode: 0o644, Mtime: 1700000000e9, ClientId: "c1"}
	info := &syncpb.RootInfo{Name: "docs", Chunking: &syncpb.ChunkParams{Min: 1, Avg: 2, Max: 3}, Seq: 9, Owner: "c1", Members: []string{"c1", "c2"}}
	return []proto.Message{
		&syncpb.RegisterClientRequest{ClientId: "c1", Name: "laptop", ServerPassword: "pw"},
		&syncpb.RegisterClientResponse{Token: "tok"},
		&syncpb.AuthRequest{ClientId: "c1", Token: "tok"},
		&syncpb.AuthResponse{ServerTime: 1},
		&syncpb.RegisterRootRequest{Name: "docs", RootPassword: "rp"},
		&syncpb.JoinRootRequest{Name: "docs", RootPassword: "rp"},
		info,
		&syncpb.LeaveRootRequest{Name: "docs"},
		&syncpb.ListRootsRequest{Remote: true},
		&syncpb.ListRootsResponse{Roots: []*syncpb.RootInfo{info}},
		&syncpb.Ack{},
		&syncpb.HaveChunksRequest{Root: "docs", Ids: AppendIDs(nil, []cas.ID{id, id})},
		&syncpb.HaveChunksResponse{Present: []byte{0b01}},
		&syncpb.PutChunksRequest{Root: "docs"},
		&syncpb.ProposeRequest{Root: "docs", Path: "f", BaseSeq: 1, BaseHash: id[:], LastUpdate: 3, Hash: id[:], Size: 5, Mode: 0o600, Mtime: 4, ChunkCount: 1},
		EncodeChunkListPart([]ChunkRef{{id, 5}}),
		&syncpb.CommitResponse{Outcome: syncpb.CommitResponse_OUTCOME_COMMITTED, Head: head},
		&syncpb.HeadsRequest{Root: "docs", AfterSeq: 3},
		&syncpb.HeadsPart{Heads: []*syncpb.FileHead{head, head}, Done: true, RootSeq: 9},
		&syncpb.ChunkListRequest{Root: "docs", Path: "f", Hash: id[:]},
		&syncpb.ChunkListHeader{Hash: id[:], Size: 5, ChunkCount: 1},
		&syncpb.GetChunksRequest{Root: "docs", Ids: id[:]},
		&syncpb.WatchRequest{Cursors: []*syncpb.WatchRequest_Cursor{{Root: "docs", AfterSeq: 2}}},
		&syncpb.Notice{Kind: syncpb.Notice_KIND_CONFLICT, Root: "docs", Head: head, RootSeq: 9},
		&syncpb.Ping{Sent: 5},
		&syncpb.Pong{Sent: 5, ServerTime: 6},
	}
}

// FuzzReadMessage feeds arbitrary frames to the message decoders: nothing
// panics, every refusal is ErrBadRequest or ErrUnsupported, a frame decodes
// only as its own type, and what decodes survives a round trip and the
// field checks the server applies.
func FuzzReadMessage(f *testing.F) {
	var all []byte
	for _, m := range sampleMessages() {
		ft, payload, err := EncodeMessage(nil, m)
		if err != nil {
			f.Fatal(err)
		}
		frame := AppendFrame(nil, ft, payload)
		f.Add(frame)
		all = append(all, frame...)
	}
	f.Add(all)
	f.Add(AppendFrame(nil, FrameError, EncodeErrorFrame(nil, Errorf(CodeConflict, "head moved"))))
	chunk, _ := EncodeChunkFrame(nil, Chunk{Codec: ChunkRaw, ID: cas.Sum([]byte("x")), RawLen: 1, Data: []byte("x")})
	f.Add(AppendFrame(nil, FrameChunk, chunk))

	f.Fuzz(func(t *testing.T, data []byte) {
		fr := NewFrameReader(bytes.NewReader(data), 1<<20)
		for range 32 {
			ft, payload, err := fr.ReadFrame()
			if err != nil {
				return
			}
			switch ft {
			case FrameError:
				if e, err := DecodeErrorFrame(payload); err == nil && e.Code == CodeNoError {
					t.Fatal("error frame with code 0 accepted")
				}
			case FrameChunk:
				_, _ = DecodeChunkFrame(payload, 1<<20)
			}
			for _, e := range messageTypes {
				want := e.m.ProtoReflect().Type().New().Interface()
				err := DecodeMessage(ft, payload, want)
				if err != nil && !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrUnsupported) {
					t.Fatalf("decoding %s as %s: %v is neither bad request nor unsupported", ft, messageName(want), err)
				}
				if e.t != ft {
					if err == nil {
						t.Fatalf("%s frame decoded as %s", ft, messageName(want))
					}
					continue
				}
				if err != nil {
					continue
				}
				checkDecoded(t, want)
			}
		}
	})
}

// checkDecoded re-encodes a decoded message and runs the field parsers
// the server and client apply to it.
func checkDecoded(t *testing.T, m proto.Message) {
	ft, payload, err := EncodeMessage(nil, m)
	if err != nil {
		t.Fatalf("re-encoding %s: %v", messageName(m), err)
	}
	again, _ := NewMessage(ft)
	if err := DecodeMessage(ft, payload, again); err != nil || !proto.Equal(again, m) {
		t.Fatalf("%s does not survive a round trip: %v", messageName(m), err)
	}
	switch m := m.(type) {
	case *syncpb.HaveChunksRequest:
		if ids, err := ParseIDs(m.GetIds(), MaxHaveChunksIDs); err == nil && len(ids)*cas.IDSize != len(m.GetIds()) {
			t.Fatalf("ParseIDs returned %d ids from %d bytes", len(ids), len(m.GetIds()))
		}
	case *syncpb.GetChunksRequest:
		_, _ = ParseIDs(m.GetIds(), MaxGetChunksIDs)
	case *syncpb.HaveChunksResponse:
		if bits, err := ParseBitmap(m.GetPresent(), len(m.GetPresent())*8); err != nil || !bytes.Equal(AppendBitmap(nil, bits), m.GetPresent()) {
			t.Fatalf("bitmap %x does not round-trip: %v", m.GetPresent(), err)
		}
	case *syncpb.ChunkListPart:
		refs, err := appendChunkListPart(nil, m, MaxChunkListPart, 1<<20)
		if err == nil && !proto.Equal(EncodeChunkListPart(refs), m) {
			t.Fatalf("chunk list part does not round-trip")
		}
	case *syncpb.ProposeRequest:
		_ = checkHash("hash", m.GetHash())
	}
}

func BenchmarkParseIDs(b *testing.B) {
	ids := make([]cas.ID, MaxHaveChunksIDs)
	for i := range ids {
		ids[i] = cas.Sum(fmt.Appendf(nil, "%d", i))
	}
	packed := AppendIDs(nil, ids)
	b.SetBytes(int64(len(packed)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseIDs(packed, MaxHaveChunksIDs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChunkListPart encodes and decodes a full part of 65536 entries,
// the unit of a large file's proposal and download.
func BenchmarkChunkListPart(b *testing.B) {
	refs := make([]ChunkRef, MaxChunkListPart)
	for i := range refs {
		refs[i] = ChunkRef{ID: cas.Sum(fmt.Appendf(nil, "%d", i)), Size: 65536}
	}
	_, buf, err := EncodeMessage(nil, EncodeChunkListPart(refs))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		ft, payload, err := EncodeMessage(buf[:0], EncodeChunkListPart(refs))
		if err != nil {
			b.Fatal(err)
		}
		buf = payload
		var part syncpb.ChunkListPart
		if err := DecodeMessage(ft, payload, &part); err != nil {
			b.Fatal(err)
		}
		if _, err := appendChunkListPart(make([]ChunkRef, 0, len(refs)), &part, len(refs), 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

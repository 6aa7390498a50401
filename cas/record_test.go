package cas

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func testCodecs(t testing.TB) *codecs {
	c, err := newCodecs(zstd.SpeedFastest, false)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// encodeChunk builds the record the store would write for data.
func encodeChunk(c *codecs, data []byte) []byte {
	buf := make([]byte, RecordHeaderSize, RecordHeaderSize+len(data))
	codec, payload := c.encode(buf, data)
	rec := append(buf[:RecordHeaderSize:RecordHeaderSize], payload...)
	putRecordHeader(rec, codec, Sum(data), uint32(len(data)), rec[RecordHeaderSize:])
	return rec
}

func TestRecordRoundTrip(t *testing.T) {
	c := testCodecs(t)
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name      string
		data      []byte
		wantCodec Codec
	}{
		{"empty", nil, CodecRaw},
		{"one byte", []byte{7}, CodecRaw},
		{"random", randomChunk(rng, 10000).data, CodecRaw},
		{"text", textChunk(rng, 10000).data, CodecZstd},
		{"zeros", make([]byte, 1<<16), CodecZstd},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := encodeChunk(c, tc.data)
			h, payload, err := decodeRecord(rec)
			if err != nil {
				t.Fatalf("decodeRecord: %v", err)
			}
			if h.Codec != tc.wantCodec || h.ID != Sum(tc.data) || int(h.RawLen) != len(tc.data) || h.recordLen() != int64(len(rec)) {
				t.Fatalf("header = %+v for %d bytes (record %d), want codec %s", h, len(tc.data), len(rec), tc.wantCodec)
			}
			got, err := c.decode(h.Codec, payload, h.RawLen)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Fatalf("decode: %v (equal=%v)", err, bytes.Equal(got, tc.data))
			}
			// Trailing bytes (the next record) do not disturb decoding.
			if _, p2, err := decodeRecord(append(rec, 1, 2, 3)); err != nil || !bytes.Equal(p2, payload) {
				t.Fatalf("decodeRecord with trailing bytes: %v", err)
			}
		})
	}
}

func TestDecodeRecordRejects(t *testing.T) {
	c := testCodecs(t)
	valid := encodeChunk(c, textChunk(rand.New(rand.NewPCG(3, 4)), 5000).data)
	if valid[0]&0x0f != byte(CodecZstd) {
		t.Fatal("test record is not compressed")
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(valid)) }
	setU32 := func(off int, v uint32) []byte {
		return mutate(func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b })
	}
	tests := []struct {
		name string
		rec  []byte
		want error
	}{
		{"empty", nil, ErrInvalidRecord},
		{"short header", valid[:RecordHeaderSize-1], ErrInvalidRecord},
		{"truncated payload", valid[:len(valid)-1], ErrInvalidRecord},
		{"format version 0", mutate(func(b []byte) []byte { b[0] = byte(CodecZstd); return b }), ErrInvalidRecord},
		{"format version 2", mutate(func(b []byte) []byte { b[0] = 2<<4 | byte(CodecZstd); return b }), ErrInvalidRecord},
		{"unknown codec", mutate(func(b []byte) []byte { b[0] = recordFormatVersion<<4 | 9; return b }), ErrInvalidRecord},
		{"raw length over cap", setU32(recOffRaw, MaxChunkSizeLimit+1), ErrInvalidRecord},
		{"stored length huge", setU32(recOffStored, 0xffffffff), ErrInvalidRecord},
		{"zstd not smaller", setU32(recOffRaw, uint32(len(valid)-RecordHeaderSize)), ErrInvalidRecord},
		{"zstd empty", setU32(recOffStored, 0), ErrInvalidRecord},
		{"raw codec with compressed lengths", mutate(func(b []byte) []byte { b[0] = recordFormatVersion << 4; return b }), ErrInvalidRecord},
		{"flipped payload byte", mutate(func(b []byte) []byte { b[len(b)-10] ^= 1; return b }), ErrCorrupt},
		{"flipped id byte", mutate(func(b []byte) []byte { b[recOffID] ^= 0x80; return b }), ErrCorrupt},
		{"flipped crc", mutate(func(b []byte) []byte { b[recOffCRC] ^= 1; return b }), ErrCorrupt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := decodeRecord(tc.rec)
			if !errors.Is(err, tc.want) {
				t.Fatalf("decodeRecord: err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestDecodeRejectsWrongLengths(t *testing.T) {
	c := testCodecs(t)
	data := textChunk(rand.New(rand.NewPCG(5, 6)), 4000).data
	codec, payload := c.encode(nil, data)
	if codec != CodecZstd {
		t.Fatal("not compressed")
	}
	for _, raw := range []uint32{uint32(len(data)) - 1, uint32(len(data)) + 1, MaxChunkSizeLimit} {
		if _, err := c.decode(codec, payload, raw); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode claiming %d raw bytes of a %d-byte chunk: err = %v, want ErrCorrupt", raw, len(data), err)
		}
	}
}

func TestIndexValueRoundTrip(t *testing.T) {
	tests := []Location{
		{Pack: 1, Offset: PackHeaderSize, StoredLen: 0, RawLen: 0, Codec: CodecRaw},
		{Pack: 1 << 40, Offset: MaxPackSize, StoredLen: 1000, RawLen: 3000, Codec: CodecZstd},
		{Pack: 7, Offset: 123456, StoredLen: MaxChunkSizeLimit, RawLen: MaxChunkSizeLimit, Codec: CodecRaw},
	}
	for _, loc := range tests {
		v := encodeIndexValue(loc)
		got, err := decodeIndexValue(v)
		if err != nil || got != loc {
			t.Fatalf("round trip of %+v: got %+v, %v", loc, got, err)
		}
		if len(v) > 20 {
			t.Errorf("index value of %+v takes %d bytes, want at most 20", loc, len(v))
		}
	}
	bad := [][]byte{nil, {0x10}, {0x20, 1, 2, 3, 4}, {0x10, 1, 2, 3, 4, 5}, {0x10, 0x80, 0x80, 0x80, 0x80}, {0x11, 1, 16, 10, 5}}
	for _, v := range bad {
		if _, err := decodeIndexValue(v); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("decodeIndexValue(%x): err = %v, want ErrInvalidRecord", v, err)
		}
	}
}

func TestPackMetaRoundTrip(t *testing.T) {
	for _, m := range []packMeta{{}, {Committed: PackHeaderSize}, {Committed: 1 << 30, Records: 9, LiveChunks: 3, LiveStored: 1 << 33, LiveRaw: 1 << 34}} {
		got, err := decodePackMeta(encodePackMeta(m))
		if err != nil || got != m {
			t.Fatalf("round trip of %+v: got %+v, %v", m, got, err)
		}
	}
	for _, v := range [][]byte{nil, {0x10, 1, 2, 3, 4}, {0x20, 0, 0, 0, 0, 0}, {0x10, 0, 0, 0, 0, 0, 0}} {
		if _, err := decodePackMeta(v); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("decodePackMeta(%x): err = %v, want ErrInvalidRecord", v, err)
		}
	}
}

func TestPackHeader(t *testing.T) {
	var b [PackHeaderSize]byte
	putPackHeader(b[:], 0x1234)
	if num, err := parsePackHeader(b[:]); err != nil || num != 0x1234 {
		t.Fatalf("parsePackHeader = %d, %v", num, err)
	}
	for i := range 8 {
		c := b
		c[i] ^= 0xff
		if _, err := parsePackHeader(c[:]); !errors.Is(err, ErrInvalidRecord) {
			t.Errorf("header with byte %d changed: err = %v", i, err)
		}
	}
	if _, err := parsePackHeader(b[:PackHeaderSize-1]); !errors.Is(err, ErrInvalidRecord) {
		t.Errorf("short header: err = %v", err)
	}
}

func TestPackNames(t *testing.T) {
	tests := []struct {
		shard, name string
		want        uint64
		ok          bool
	}{
		{"2a", "000000000000012a.pack", 0x12a, true},
		{"00", "0000000000000100.pack", 0x100, true},
		{"2b", "000000000000012a.pack", 0, false},
		{"2a", "000000000000012A.pack", 0, false},
		{"2a", "12a.pack", 0, false},
		{"2a", "000000000000012a.pack.tmp", 0, false},
		{"2a", "00000000000001xa.pack", 0, false},
	}
	for _, tc := range tests {
		num, ok := parsePackName(tc.shard, tc.name)
		if num != tc.want || ok != tc.ok {
			t.Errorf("parsePackName(%q, %q) = %d, %v; want %d, %v", tc.shard, tc.name, num, ok, tc.want, tc.ok)
		}
	}
	if p := packPath("d", 0x12a); p != "d/packs/2a/000000000000012a.pack" {
		t.Errorf("packPath = %q", p)
	}
}

func TestKeyPrefixesInRange(t *testing.T) {
	for _, p := range []byte{KeyPrefixIndex, KeyPrefixPack, KeyPrefixMeta} {
		if p < 0x01 || p > KeyPrefixLast || KeyPrefixLast != 0x0F {
			t.Errorf("prefix %#x outside the cas range 0x01-0x0F", p)
		}
	}
	if indexKey(ID{})[0] != KeyPrefixIndex || packKey(1)[0] != KeyPrefixPack || metaKey(metaNextPack)[0] != KeyPrefixMeta {
		t.Error("keys do not start with their prefix")
	}
}

func TestCompressAndDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for _, c := range []chunk{textChunk(rng, 9000), randomChunk(rng, 9000), {Sum(nil), nil}} {
		st, err := Compress(c.data)
		if err != nil {
			t.Fatal(err)
		}
		got, err := st.Decode(c.id)
		if err != nil || !bytes.Equal(got, c.data) {
			t.Fatalf("Decode(Compress) of %d bytes: %v", len(c.data), err)
		}
		if _, err := st.Decode(Sum([]byte("other"))); len(c.data) > 0 && !errors.Is(err, ErrHashMismatch) {
			t.Fatalf("Decode under a wrong id: err = %v, want ErrHashMismatch", err)
		}
	}
	if _, err := (Stored{Codec: CodecZstd, Data: []byte{1}, RawLen: MaxChunkSizeLimit + 1}).Decode(ID{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Decode of an oversized claim: err = %v, want ErrTooLarge", err)
	}
}

// TestAppendCompressed: compressed forms land in dst's spare capacity one
// after another without disturbing the earlier ones; raw forms alias the
// chunk and leave dst as it was.
func TestAppendCompressed(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 15))
	chunks := []chunk{textChunk(rng, 20000), randomChunk(rng, 20000), textChunk(rng, 30000)}
	dst := make([]byte, 0, 1<<20)
	base := &dst[:1][0]
	var stored []Stored
	for _, c := range chunks {
		before := len(dst)
		st, out, err := AppendCompressed(dst, c.data)
		if err != nil {
			t.Fatal(err)
		}
		switch st.Codec {
		case CodecZstd:
			if len(out) != before+len(st.Data) || &out[:1][0] != base {
				t.Fatalf("compressed form not appended in place: len %d -> %d for %d bytes", before, len(out), len(st.Data))
			}
		case CodecRaw:
			if len(out) != before || &st.Data[0] != &c.data[0] {
				t.Fatal("raw form does not alias the chunk, or grew dst")
			}
		}
		dst = out
		stored = append(stored, st)
	}
	if stored[0].Codec != CodecZstd || stored[1].Codec != CodecRaw || stored[2].Codec != CodecZstd {
		t.Fatalf("codecs %v %v %v, want zstd raw zstd", stored[0].Codec, stored[1].Codec, stored[2].Codec)
	}
	for i, st := range stored {
		got, err := st.Decode(chunks[i].id)
		if err != nil || !bytes.Equal(got, chunks[i].data) {
			t.Fatalf("chunk %d does not decode after later appends: %v", i, err)
		}
	}
}

// TestCompressProbe: a chunk whose samples do not shrink is stored raw
// without a full zstd pass; compressible chunks are compressed, also
// behind a random header.
func TestCompressProbe(t *testing.T) {
	rng := rand.New(rand.NewPCG(12, 13))
	random := randomChunk(rng, 64<<10).data
	text := textChunk(rng, 64<<10).data
	// Text behind a random header (an archive's index, a media file's
	// thumbnail): one window is random, the chunk is still compressed.
	headed := bytes.Clone(text)
	copy(headed, random[:probeWindow])
	tests := []struct {
		name string
		data []byte
		want Codec
	}{
		{"random 64 KiB", random, CodecRaw},
		{"text 64 KiB", text, CodecZstd},
		{"small random", random[:4*probeWindow-1], CodecRaw}, // compressed whole, did not shrink
		{"small text", text[:4*probeWindow-1], CodecZstd},
		{"zeros", make([]byte, 64<<10), CodecZstd},
		{"text behind a random header", headed, CodecZstd},
	}
	c := testCodecs(t)
	if c.mayCompress(random) {
		t.Error("the probe would compress 64 KiB of random bytes")
	}
	if !c.mayCompress(text) || !c.mayCompress(headed) {
		t.Error("the probe would store compressible text raw")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := Compress(tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if st.Codec != tt.want {
				t.Errorf("codec %v, want %v", st.Codec, tt.want)
			}
			if st.Codec == CodecRaw && len(st.Data) != len(tt.data) {
				t.Errorf("raw payload of %d bytes for %d", len(st.Data), len(tt.data))
			}
		})
	}
}

// seedRecords are encoder outputs for the fuzz corpora.
func seedRecords(t testing.TB) [][]byte {
	c := testCodecs(t)
	rng := rand.New(rand.NewPCG(10, 11))
	var out [][]byte
	for _, data := range [][]byte{nil, {1}, textChunk(rng, 3000).data, randomChunk(rng, 300).data, make([]byte, 5000)} {
		out = append(out, encodeChunk(c, data))
	}
	return out
}

// FuzzDecodeRecord feeds arbitrary bytes to the record decoder and, when
// they pass, to the payload decoder: neither may panic, and nothing may
// allocate past the bounds in the header.
func FuzzDecodeRecord(f *testing.F) {
	for _, rec := range seedRecords(f) {
		f.Add(rec)
	}
	c := testCodecs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, payload, err := decodeRecord(b)
		if err != nil {
			return
		}
		if h.recordLen() > int64(len(b)) || len(payload) != int(h.StoredLen) || h.RawLen > MaxChunkSizeLimit {
			t.Fatalf("accepted header %+v for %d input bytes", h, len(b))
		}
		data, err := c.decode(h.Codec, payload, h.RawLen)
		if err == nil && len(data) != int(h.RawLen) {
			t.Fatalf("decoded %d bytes, header says %d", len(data), h.RawLen)
		}
		if err == nil && Sum(data) == h.ID {
			// A valid record re-encodes to itself when raw.
			if h.Codec == CodecRaw && !bytes.Equal(appendRecord(nil, h.Codec, h.ID, h.RawLen, payload), b[:h.recordLen()]) {
				t.Fatal("raw record does not re-encode identically")
			}
		}
	})
}

func FuzzDecodeIndexValue(f *testing.F) {
	f.Add(encodeIndexValue(Location{Pack: 3, Offset: 99, StoredLen: 10, RawLen: 20, Codec: CodecZstd}))
	f.Add(encodeIndexValue(Location{Pack: 1 << 50, Offset: 1 << 30, StoredLen: 5, RawLen: 5}))
	f.Fuzz(func(t *testing.T, b []byte) {
		loc, err := decodeIndexValue(b)
		if err != nil {
			return
		}
		if !bytes.Equal(encodeIndexValue(loc), b) && len(b) <= 20 {
			// Non-minimal uvarints are accepted; they must still decode
			// to the same location.
			again, err := decodeIndexValue(encodeIndexValue(loc))
			if err != nil || again != loc {
				t.Fatalf("re-encoding %+v: %+v, %v", loc, again, err)
			}
		}
		if checkLengths(loc.Codec, loc.StoredLen, loc.RawLen) != nil {
			t.Fatalf("accepted impossible lengths %+v", loc)
		}
	})
}

func FuzzDecodePackMeta(f *testing.F) {
	f.Add(encodePackMeta(packMeta{Committed: 1000, Records: 3, LiveChunks: 2, LiveStored: 500, LiveRaw: 900}))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodePackMeta(b)
		if err != nil {
			return
		}
		if got, err := decodePackMeta(encodePackMeta(m)); err != nil || got != m {
			t.Fatalf("re-encoding %+v: %+v, %v", m, got, err)
		}
	})
}

// FuzzStoredDecode: a stored form arrives from the network; decoding it
// must never panic and never return bytes that do not hash to the id.
func FuzzStoredDecode(f *testing.F) {
	for _, rec := range seedRecords(f) {
		h, payload, _ := decodeRecord(rec)
		f.Add(uint8(h.Codec), payload, int(h.RawLen), h.ID[:])
	}
	f.Add(uint8(CodecZstd), []byte{0x28, 0xb5, 0x2f, 0xfd}, 1<<20, make([]byte, 32))
	f.Fuzz(func(t *testing.T, codec uint8, data []byte, rawLen int, idBytes []byte) {
		id, err := IDFromBytes(idBytes)
		if err != nil {
			return
		}
		out, err := Stored{Codec: Codec(codec), Data: data, RawLen: rawLen}.Decode(id)
		if err == nil && (Sum(out) != id || len(out) != rawLen) {
			t.Fatalf("Decode returned %d bytes that do not match id/raw length", len(out))
		}
	})
}

// FuzzScanPack runs the pack scanner (with resynchronization) over
// arbitrary bytes: every reported record must be valid, and records and bad
// regions must tile the input exactly.
func FuzzScanPack(f *testing.F) {
	recs := seedRecords(f)
	var pack []byte
	for _, r := range recs {
		pack = append(pack, r...)
	}
	f.Add(pack)
	damaged := bytes.Clone(pack)
	damaged[len(recs[0])+5] ^= 0xff
	f.Add(damaged)
	f.Add(append(bytes.Clone(pack), recs[2][:20]...))
	c := testCodecs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		pos := int64(0)
		err := scanPack(context.Background(), bytes.NewReader(b), 0, int64(len(b)), c, false,
			func(r scannedRecord) error {
				if r.off != pos {
					t.Fatalf("record at %d, expected %d", r.off, pos)
				}
				if _, _, err := decodeRecord(b[r.off:]); err != nil {
					t.Fatalf("scanner accepted an invalid record at %d: %v", r.off, err)
				}
				pos += r.h.recordLen()
				return nil
			},
			func(br badRegion) error {
				if br.off != pos || br.length <= 0 {
					t.Fatalf("bad region %d+%d, expected to start at %d", br.off, br.length, pos)
				}
				pos += br.length
				return nil
			})
		if err != nil {
			t.Fatal(err)
		}
		if pos != int64(len(b)) {
			t.Fatalf("scan covered %d of %d bytes", pos, len(b))
		}
	})
}

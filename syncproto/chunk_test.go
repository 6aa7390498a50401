package syncproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/quic-s/quics/cas"
)

func TestChunkFrameRoundTrip(t *testing.T) {
	data := bytes.Repeat([]byte("quics"), 1000)
	tests := []Chunk{
		{Codec: ChunkRaw, ID: cas.Sum(data), RawLen: len(data), Data: data},
		{Codec: ChunkZstd, ID: cas.Sum(data), RawLen: len(data), Data: []byte("pretend-compressed")},
		{Codec: ChunkRaw, ID: cas.Sum(nil), RawLen: 0, Data: []byte{}},
	}
	for _, c := range tests {
		payload, err := EncodeChunkFrame([]byte("prefix"), c)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(payload, []byte("prefix")) {
			t.Fatal("EncodeChunkFrame does not append")
		}
		got, err := DecodeChunkFrame(payload[len("prefix"):], len(data))
		if err != nil {
			t.Fatal(err)
		}
		if got.Codec != c.Codec || got.ID != c.ID || got.RawLen != c.RawLen || !bytes.Equal(got.Data, c.Data) {
			t.Errorf("round trip of %s chunk gave %s/%s/%d/%d bytes", c.Codec, got.Codec, got.ID.Short(), got.RawLen, len(got.Data))
		}
	}
}

func TestChunkFrameRejects(t *testing.T) {
	id := cas.Sum([]byte("x"))
	frame := func(codec byte, raw uint64, data []byte) []byte {
		b := append([]byte{codec}, id[:]...)
		return append(binary.AppendUvarint(b, raw), data...)
	}
	const limit = 1000
	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"no id", []byte{0}},
		{"short id", append([]byte{0}, id[:31]...)},
		{"no raw length", append([]byte{0}, id[:]...)},
		{"truncated raw length", append(append([]byte{0}, id[:]...), 0x80)},
		{"non-minimal raw length", append(append([]byte{0}, id[:]...), 0x85, 0x00)},
		{"unknown codec", frame(2, 3, []byte("abc"))},
		{"raw length over limit", frame(0, limit+1, make([]byte, limit+1))},
		{"raw length 2^62", frame(1, 1<<62, []byte("z"))},
		{"raw data short", frame(0, 4, []byte("abc"))},
		{"raw data long", frame(0, 2, []byte("abc"))},
		{"zstd empty", frame(1, 10, nil)},
		{"zstd not smaller", frame(1, 3, []byte("abc"))},
	}
	for _, tt := range tests {
		if c, err := DecodeChunkFrame(tt.payload, limit); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: DecodeChunkFrame = %+v, %v; want ErrBadRequest", tt.name, c, err)
		}
	}
	if _, err := EncodeChunkFrame(nil, Chunk{Codec: ChunkZstd, RawLen: 3, Data: []byte("abcd")}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("EncodeChunkFrame of a zstd chunk that grew: %v", err)
	}
	if _, err := EncodeChunkFrame(nil, Chunk{Codec: 9}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("EncodeChunkFrame of an unknown codec: %v", err)
	}
}

func FuzzDecodeChunkFrame(f *testing.F) {
	data := bytes.Repeat([]byte{0xab}, 300)
	for _, c := range []Chunk{
		{Codec: ChunkRaw, ID: cas.Sum(data), RawLen: len(data), Data: data},
		{Codec: ChunkZstd, ID: cas.Sum(data), RawLen: len(data), Data: data[:20]},
		{Codec: ChunkRaw, RawLen: 0},
	} {
		p, err := EncodeChunkFrame(nil, c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		c, err := DecodeChunkFrame(payload, 4096)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			return
		}
		if c.RawLen > 4096 || len(c.Data) > c.RawLen {
			t.Fatalf("accepted %s chunk raw %d data %d", c.Codec, c.RawLen, len(c.Data))
		}
		again, err := EncodeChunkFrame(nil, c)
		if err != nil || !bytes.Equal(again, payload) {
			t.Fatalf("re-encoding gives %x, %v; input %x", again, err, payload)
		}
	})
}

package syncproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/quic-s/quics/cas"
)

func randomData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// signed is src as a delta source, signed as a server would sign it.
func signed(src []byte) DeltaSource {
	bs := SignatureBlockSize(len(src))
	return DeltaSource{ID: cas.Sum(src), Size: len(src), BlockSize: bs, Signature: Sign(src, bs)}
}

func splice(b []byte, at int, cut int, insert []byte) []byte {
	out := slices.Clone(b[:at])
	out = append(out, insert...)
	return append(out, b[at+cut:]...)
}

func TestDeltaRoundTrip(t *testing.T) {
	base := randomData(1, 70<<10)
	text := []byte(strings.Repeat("the quick brown fox jumps over the lazy dog; ", 1600))
	cases := []struct {
		name    string
		base    []byte
		next    []byte
		maxData int // the delta's data bytes at most
	}{
		{"insert 100 B", base, splice(base, 35<<10, 0, randomData(2, 100)), 2600},
		{"overwrite 4 KiB", base, splice(base, 10<<10, 4<<10, randomData(3, 4<<10)), 7000},
		{"append", base, append(slices.Clone(base), randomData(4, 10<<10)...), 12 << 10},
		{"delete 1 KiB", base, splice(base, 20<<10, 1<<10, nil), 2600},
		{"text edit", text, splice(text, 30000, 5, []byte("slow")), 1200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := cas.Sum(tc.next)
			c, ok := EncodeDelta(id, tc.next, []DeltaSource{signed(tc.base)})
			if !ok {
				t.Fatal("no delta")
			}
			if len(c.Data) > tc.maxData {
				t.Errorf("delta of %d bytes, want at most %d", len(c.Data), tc.maxData)
			}
			// Through a chunk frame, as it travels.
			frame, err := EncodeChunkFrame(nil, c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeChunkFrame(frame, len(tc.next))
			if err != nil {
				t.Fatal(err)
			}
			ids, err := DeltaSources(got)
			if err != nil || len(ids) != 1 || ids[0] != cas.Sum(tc.base) {
				t.Fatalf("sources %v, %v", ids, err)
			}
			out, err := DecodeDelta(got, [][]byte{tc.base})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, tc.next) {
				t.Fatal("decoded bytes differ")
			}
		})
	}
}

func TestDeltaSeveralSources(t *testing.T) {
	a, b := randomData(5, 40<<10), randomData(6, 30<<10)
	// A chunk that merged the end of a with the start of b, around an edit.
	next := append(slices.Clone(a[20<<10:]), randomData(7, 50)...)
	next = append(next, b[:10<<10]...)
	bs := SignatureBlockSize(35 << 10)
	srcs := []DeltaSource{
		{ID: cas.Sum(a), Size: len(a), BlockSize: bs, Signature: Sign(a, bs)},
		{ID: cas.Sum(b), Size: len(b), BlockSize: bs, Signature: Sign(b, bs)},
	}
	c, ok := EncodeDelta(cas.Sum(next), next, srcs)
	if !ok || len(c.Data) > 2*bs+300 {
		t.Fatalf("delta ok=%v, %d bytes", ok, len(c.Data))
	}
	out, err := DecodeDelta(c, [][]byte{a, b})
	if err != nil || !bytes.Equal(out, next) {
		t.Fatalf("decode: %v", err)
	}
	// Sources in another order make other bytes: refused by the hash.
	if _, err := DecodeDelta(c, [][]byte{b, a}); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("swapped sources: %v", err)
	}
}

func TestDeltaNotWorthIt(t *testing.T) {
	base := randomData(8, 20<<10)
	other := randomData(9, 20<<10)
	if _, ok := EncodeDelta(cas.Sum(other), other, []DeltaSource{signed(base)}); ok {
		t.Error("a delta between unrelated chunks")
	}
	src := signed(base)
	src.Signature = src.Signature[:len(src.Signature)-1]
	if _, ok := EncodeDelta(cas.Sum(base), base, []DeltaSource{src}); ok {
		t.Error("a delta against a truncated signature")
	}
	if _, ok := EncodeDelta(cas.Sum(base), base, nil); ok {
		t.Error("a delta without sources")
	}
}

func TestDeltaWrongSource(t *testing.T) {
	base := randomData(10, 30<<10)
	next := splice(base, 100, 0, []byte("x"))
	c, ok := EncodeDelta(cas.Sum(next), next, []DeltaSource{signed(base)})
	if !ok {
		t.Fatal("no delta")
	}
	wrong := slices.Clone(base)
	wrong[20000] ^= 1
	if _, err := DecodeDelta(c, [][]byte{wrong}); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("a changed source: %v", err)
	}
	if _, err := DecodeDelta(c, nil); !errors.Is(err, ErrDeltaSource) {
		t.Fatalf("no source: %v", err)
	}
}

// deltaChunk builds a ChunkDelta chunk with hand-made raw ops.
func deltaChunk(raw []byte, rawLen int, ops []byte, srcs ...cas.ID) Chunk {
	data := binary.AppendUvarint(nil, uint64(len(srcs)))
	for _, s := range srcs {
		data = append(data, s[:]...)
	}
	data = append(append(data, deltaOpsRaw), ops...)
	return Chunk{Codec: ChunkDelta, ID: cas.Sum(raw), RawLen: rawLen, Data: data}
}

func TestDeltaHostileOps(t *testing.T) {
	src := randomData(11, 4096)
	sid := cas.Sum(src)
	lit := func(b []byte) []byte { return append(binary.AppendUvarint(nil, uint64(len(b))<<1), b...) }
	cp := func(n, off uint64) []byte {
		return binary.AppendUvarint(binary.AppendUvarint(nil, n<<1|1), off)
	}
	want := append(slices.Clone(src[:1000]), 'x')
	cases := []struct {
		name string
		c    Chunk
		is   error
	}{
		{"copy past the source", deltaChunk(want, 1001, append(cp(1000, 3500), lit([]byte("x"))...), sid), ErrBadRequest},
		{"huge offset", deltaChunk(want, 1001, cp(1, 1<<62), sid), ErrBadRequest},
		{"op past the raw length", deltaChunk(want, 1001, cp(2000, 0), sid), ErrBadRequest},
		{"empty op", deltaChunk(want, 1001, append(cp(0, 0), cp(1000, 0)...), sid), ErrBadRequest},
		{"short literal", deltaChunk(want, 1001, append(cp(1000, 0), binary.AppendUvarint(nil, 1<<1)...), sid), ErrTruncated},
		{"too few bytes", deltaChunk(want, 1001, cp(1000, 0), sid), ErrBadRequest},
		{"no sources", deltaChunk(want, 1001, cp(1000, 0)), ErrBadRequest},
		{"too many sources", deltaChunk(want, 1001, cp(1000, 0), sid, sid, sid, sid, sid, sid, sid, sid, sid), ErrBadRequest},
		{"unknown form", func() Chunk {
			c := deltaChunk(want, 1001, cp(1000, 0), sid)
			c.Data[1+cas.IDSize] = 7
			return c
		}(), ErrBadRequest},
		{"bad zstd", func() Chunk {
			c := deltaChunk(want, 1001, []byte("not zstd at all"), sid)
			c.Data[1+cas.IDSize] = deltaOpsZstd
			return c
		}(), ErrBadRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srcs := [][]byte{src}
			if ids, err := DeltaSources(tc.c); err == nil {
				srcs = srcs[:0]
				for range ids {
					srcs = append(srcs, src)
				}
			}
			out, err := DecodeDelta(tc.c, srcs)
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v (%d bytes), want %v", err, len(out), tc.is)
			}
		})
	}
	// The well-formed version of the same ops decodes.
	ok := deltaChunk(want, 1001, append(cp(1000, 0), lit([]byte("x"))...), sid)
	if out, err := DecodeDelta(ok, [][]byte{src}); err != nil || !bytes.Equal(out, want) {
		t.Fatalf("well-formed: %v", err)
	}
}

func TestDeltaFromRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 13))
	words := []string{"alpha", "beta", "gamma", "delta", "sync", "quic", "chunk", "file", "edit", "server"}
	var sb strings.Builder
	for sb.Len() < 70000 {
		sb.WriteString(words[r.IntN(len(words))])
		sb.WriteByte(' ')
	}
	text := []byte(sb.String())
	random := randomData(14, 60<<10)
	cases := []struct {
		name    string
		sources [][]byte
		next    []byte
		maxData int
	}{
		{"insert into random", [][]byte{random}, splice(random, 30<<10, 0, randomData(15, 100)), 200},
		{"insert into text", [][]byte{text}, splice(text, 30000, 0, []byte(" inserted words here ")), 120},
		{"two edits", [][]byte{text}, splice(splice(text, 50000, 3, []byte("XYZW")), 10000, 0, []byte("++")), 120},
		{"across two sources", [][]byte{random[:30<<10], random[30<<10:]}, splice(random, 20<<10, 20<<10, randomData(16, 50)), 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ids := make([]cas.ID, len(tc.sources))
			for i, s := range tc.sources {
				ids[i] = cas.Sum(s)
			}
			id := cas.Sum(tc.next)
			c, ok := EncodeDeltaFrom(id, tc.next, ids, tc.sources, len(tc.next))
			if !ok {
				t.Fatal("no delta")
			}
			if len(c.Data) > tc.maxData {
				t.Errorf("delta of %d bytes, want at most %d", len(c.Data), tc.maxData)
			}
			out, err := DecodeDelta(c, tc.sources)
			if err != nil || !bytes.Equal(out, tc.next) {
				t.Fatalf("decode: %v", err)
			}
		})
	}
	// Unrelated content does not shrink: the plain form travels.
	other := randomData(17, 60<<10)
	if _, ok := EncodeDeltaFrom(cas.Sum(other), other, []cas.ID{cas.Sum(random)}, [][]byte{random}, len(other)); ok {
		t.Fatal("a delta between unrelated chunks")
	}
}

func TestRollingChecksum(t *testing.T) {
	data := randomData(16, 5000)
	const bs = 256
	w := newWeak(data[:bs])
	for i := 0; i+bs < len(data); i++ {
		w.roll(data[i], data[i+bs])
		if want := newWeak(data[i+1 : i+1+bs]).sum(); w.sum() != want {
			t.Fatalf("at %d: rolled %#x, computed %#x", i+1, w.sum(), want)
		}
	}
}

func TestSignatureBlockSize(t *testing.T) {
	for size, want := range map[int]int{0: 64, 1 << 10: 128, 8 << 10: 256, 64 << 10: 1024, 256 << 10: 2048, 16 << 20: 8192} {
		if got := SignatureBlockSize(size); got != want {
			t.Errorf("SignatureBlockSize(%d) = %d, want %d", size, got, want)
		}
	}
	if n := len(Sign(randomData(17, 1000), 256)); n != 3*sigEntryLen || n != SignatureLen(1000, 256) {
		t.Errorf("signature of 1000 bytes in 256-byte blocks: %d bytes", n)
	}
}

func FuzzDecodeDelta(f *testing.F) {
	base := randomData(18, 8<<10)
	next := splice(base, 4000, 10, []byte("edit"))
	if c, ok := EncodeDelta(cas.Sum(next), next, []DeltaSource{signed(base)}); ok {
		f.Add(byte(c.Codec), c.Data, c.RawLen)
	}
	if c, ok := EncodeDeltaFrom(cas.Sum(next), next, []cas.ID{cas.Sum(base)}, [][]byte{base}, len(next)); ok {
		f.Add(byte(c.Codec), c.Data, c.RawLen)
	}
	f.Fuzz(func(t *testing.T, codec byte, data []byte, rawLen int) {
		if rawLen < 0 || rawLen > 64<<10 {
			return
		}
		c := Chunk{Codec: ChunkCodec(codec), ID: cas.Sum(next), RawLen: rawLen, Data: data}
		ids, err := DeltaSources(c)
		if err != nil || ids == nil {
			return
		}
		srcs := make([][]byte, len(ids))
		for i := range srcs {
			srcs[i] = base
		}
		out, err := DecodeDelta(c, srcs)
		if err == nil && !bytes.Equal(out, next) {
			t.Fatal("decoded to other bytes than the ID's")
		}
		if len(out) > rawLen {
			t.Fatalf("%d bytes out for raw length %d", len(out), rawLen)
		}
	})
}

package syncproto

import (
	"errors"
	"math"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// refs makes a chunk list of entries named by small integers.
func refs(ns ...int) []ChunkRef {
	out := make([]ChunkRef, len(ns))
	for i, n := range ns {
		out[i] = ChunkRef{ID: cas.Sum([]byte{byte(n), byte(n >> 8)}), Size: uint32(100 + n)}
	}
	return out
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestDiffChunkListsRoundTrip(t *testing.T) {
	base := seq(0, 200)
	cases := []struct {
		name      string
		source    []int
		target    []int
		maxNew    int
		maxRuns   int
		wantEmpty bool
	}{
		{"unchanged", base, base, 0, 1, false},
		{"one replaced", base, slices.Concat(seq(0, 100), []int{1000}, seq(101, 200)), 1, 2, false},
		{"two replaced by three", base, slices.Concat(seq(0, 50), []int{1000, 1001, 1002}, seq(52, 200)), 3, 2, false},
		{"appended", base, slices.Concat(seq(0, 199), []int{1000, 1001}), 2, 1, false},
		{"prepended", base, slices.Concat([]int{1000}, base), 1, 2, false},
		{"head dropped", base, seq(10, 200), 0, 1, false},
		{"tail dropped", base, seq(0, 150), 0, 1, false},
		{"all new", base, seq(1000, 1010), 10, 1, false},
		{"from nothing", nil, seq(0, 5), 5, 1, false},
		{"to nothing", base, nil, 0, 0, true},
		// A chunk common to many places (zeros) does not drag the match
		// to the end of the source.
		{"repeated chunk", slices.Concat([]int{7}, seq(300, 400), []int{7, 7, 7}), slices.Concat([]int{7}, seq(300, 400), []int{7, 7, 7, 1000}), 1, 1, false},
		{"moved block", base, slices.Concat(seq(150, 200), seq(0, 150)), 150, 3, false},
		// A lone entry far ahead in the source is inserted rather than
		// matched: matching it would turn everything after into inserts.
		{"far lone match", slices.Concat(base, []int{999}), slices.Concat([]int{999}, base), 1, 2, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src, tgt := refs(tc.source...), refs(tc.target...)
			d := DiffChunkLists(src, tgt)
			if len(d.New) > tc.maxNew || len(d.Runs) > tc.maxRuns {
				t.Errorf("delta of %d runs and %d new entries, want at most %d and %d", len(d.Runs), len(d.New), tc.maxRuns, tc.maxNew)
			}
			if d.Len() != uint64(len(tgt)) {
				t.Fatalf("Len %d, want %d", d.Len(), len(tgt))
			}
			// Through the wire message and back.
			d.SourceHash = cas.Sum([]byte("source"))
			b, err := proto.Marshal(EncodeListDelta(d))
			if err != nil {
				t.Fatal(err)
			}
			var m syncpb.ChunkListDelta
			if err := proto.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			back, err := DecodeListDelta(&m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ApplyListDelta(src, back, uint64(len(tgt)), DefaultMaxChunkSize)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tgt) && (len(got) != 0 || len(tgt) != 0) {
				t.Fatalf("applied delta makes another list")
			}
		})
	}
}

func TestListDeltaFits(t *testing.T) {
	base := refs(seq(0, 1000)...)
	small := DiffChunkLists(base, slices.Concat(base[:500], refs(5000), base[501:]))
	if !ListDeltaFits(small, 1000) {
		t.Error("a one-entry edit of 1000 entries does not fit")
	}
	all := DiffChunkLists(base, refs(seq(5000, 5010)...))
	if ListDeltaFits(all, 10) {
		t.Error("a delta of all-new entries is chosen over the list")
	}
	if ListDeltaFits(&ListDelta{Runs: make([]ListRun, MaxDeltaRuns+1)}, math.MaxInt32) {
		t.Error("a delta over the run limit fits")
	}
}

func TestApplyListDeltaRefuses(t *testing.T) {
	src := refs(seq(0, 10)...)
	extra := refs(99)
	cases := []struct {
		name string
		d    ListDelta
		want uint64
	}{
		{"copy past the source", ListDelta{Runs: []ListRun{{Copy: 11}}}, 11},
		{"skip past the source", ListDelta{Runs: []ListRun{{Skip: 10, Copy: 1}}}, 1},
		{"runs add past the source", ListDelta{Runs: []ListRun{{Copy: 6}, {Copy: 5}}}, 11},
		{"huge skips wrap nothing", ListDelta{Runs: []ListRun{{Skip: math.MaxUint32, Copy: 1}, {Skip: math.MaxUint32, Copy: 1}}}, 2},
		{"more than announced", ListDelta{Runs: []ListRun{{Copy: 10}}}, 9},
		{"fewer than announced", ListDelta{Runs: []ListRun{{Copy: 9}}}, 10},
		{"inserts without entries", ListDelta{Runs: []ListRun{{Copy: 10, Insert: 1}}}, 11},
		{"entries without inserts", ListDelta{Runs: []ListRun{{Copy: 10}}, New: extra}, 10},
		{"zero-size entry", ListDelta{Runs: []ListRun{{Insert: 1}}, New: []ChunkRef{{ID: extra[0].ID}}}, 1},
		{"oversized entry", ListDelta{Runs: []ListRun{{Insert: 1}}, New: []ChunkRef{{ID: extra[0].ID, Size: DefaultMaxChunkSize + 1}}}, 1},
		{"count over the limit", ListDelta{Runs: []ListRun{{Copy: 10}}}, MaxChunkList + 1},
		{"huge inserts", ListDelta{Runs: []ListRun{{Insert: math.MaxUint32}, {Insert: math.MaxUint32}}}, MaxChunkList},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := ApplyListDelta(src, &tc.d, tc.want, DefaultMaxChunkSize); !errors.Is(err, ErrBadRequest) {
				t.Fatalf("got %d entries, %v; want ErrBadRequest", len(got), err)
			}
		})
	}
}

func TestDecodeListDeltaRefuses(t *testing.T) {
	id := cas.Sum([]byte("x"))
	cases := []struct {
		name string
		m    *syncpb.ChunkListDelta
	}{
		{"runs of uneven arrays", &syncpb.ChunkListDelta{Skip: []uint32{0}, Copy: []uint32{1, 2}, Insert: []uint32{0}}},
		{"too many runs", &syncpb.ChunkListDelta{Skip: make([]uint32, MaxDeltaRuns+1), Copy: make([]uint32, MaxDeltaRuns+1), Insert: make([]uint32, MaxDeltaRuns+1)}},
		{"ids not a multiple of 32", &syncpb.ChunkListDelta{Ids: make([]byte, 33), Sizes: []uint32{1}}},
		{"more sizes than ids", &syncpb.ChunkListDelta{Ids: id[:], Sizes: []uint32{1, 2}}},
		{"too many entries", &syncpb.ChunkListDelta{Ids: make([]byte, (MaxDeltaEntries+1)*cas.IDSize)}},
		{"source hash of 31 bytes", &syncpb.ChunkListDelta{SourceHash: id[:31]}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeListDelta(tc.m); !errors.Is(err, ErrBadRequest) {
				t.Fatalf("got %v, want ErrBadRequest", err)
			}
		})
	}
}

func TestReplacedStretches(t *testing.T) {
	// The runs a delta of one replaced entry makes: copy, insert, then a
	// run that skips the replaced entry. A sender pairs the insert with
	// that skip; this checks the shape it relies on.
	base := refs(seq(0, 20)...)
	d := DiffChunkLists(base, slices.Concat(base[:8], refs(500), base[9:]))
	want := []ListRun{{Copy: 8, Insert: 1}, {Skip: 1, Copy: 11}}
	if !slices.Equal(d.Runs, want) {
		t.Fatalf("runs %v, want %v", d.Runs, want)
	}
}

// FuzzListDelta decodes arbitrary ChunkListDelta messages and applies them
// to a fixed source: either an error, or exactly the announced length of
// entries, each copied from the source or carried by the delta.
func FuzzListDelta(f *testing.F) {
	src := refs(seq(0, 64)...)
	for _, target := range [][]ChunkRef{
		slices.Concat(src[:30], refs(500, 501), src[31:]),
		slices.Concat(refs(700), src),
		src[:10],
	} {
		b, err := proto.Marshal(EncodeListDelta(DiffChunkLists(src, target)))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, uint32(len(target)))
	}
	f.Fuzz(func(t *testing.T, b []byte, want uint32) {
		var m syncpb.ChunkListDelta
		if proto.Unmarshal(b, &m) != nil {
			return
		}
		d, err := DecodeListDelta(&m)
		if err != nil {
			return
		}
		got, err := ApplyListDelta(src, d, uint64(want), DefaultMaxChunkSize)
		if err != nil {
			return
		}
		if uint64(len(got)) != uint64(want) {
			t.Fatalf("%d entries for %d announced", len(got), want)
		}
		for _, r := range got {
			if !slices.Contains(src, r) && !slices.Contains(d.New, r) {
				t.Fatalf("entry %v from nowhere", r)
			}
		}
	})
}

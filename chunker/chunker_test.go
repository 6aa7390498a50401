package chunker

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/iotest"
)

// smallParams keep chunks small so that short inputs hold many of them.
var smallParams = Params{Min: 256, Avg: 1024, Max: 4096}

// bigData is the 64 MiB random input of the edit and distribution tests,
// generated once per test binary.
var bigData = sync.OnceValue(func() []byte { return randomBytes(7, 64<<20) })

// chunkAll streams r through a Chunker and returns copies of its chunks,
// checking that offsets are contiguous and that lengths match the data.
func chunkAll(t testing.TB, r io.Reader, p Params) [][]byte {
	t.Helper()
	c, err := New(r, p)
	if err != nil {
		t.Fatal(err)
	}
	return drain(t, c)
}

func drain(t testing.TB, c *Chunker) [][]byte {
	t.Helper()
	var chunks [][]byte
	var off int64
	for {
		ch, err := c.Next()
		if err == io.EOF {
			return chunks
		}
		if err != nil {
			t.Fatalf("Next after %d chunks: %v", len(chunks), err)
		}
		if ch.Offset != off || ch.Length != len(ch.Data) {
			t.Fatalf("chunk %d: offset %d length %d len(data) %d; want offset %d",
				len(chunks), ch.Offset, ch.Length, len(ch.Data), off)
		}
		off += int64(ch.Length)
		chunks = append(chunks, bytes.Clone(ch.Data))
	}
}

// ends returns the end offset of each chunk, in the form Boundaries uses.
func ends(chunks [][]byte) []int {
	var out []int
	off := 0
	for _, c := range chunks {
		off += len(c)
		out = append(out, off)
	}
	return out
}

// checkSizes fails unless every chunk is within [Min, Max], except the last,
// which is within (0, Max], and the ends cover exactly n bytes.
func checkSizes(t testing.TB, cuts []int, n int, p Params) {
	t.Helper()
	if n == 0 {
		if len(cuts) != 0 {
			t.Fatalf("empty input gave cuts %v", cuts)
		}
		return
	}
	if len(cuts) == 0 || cuts[len(cuts)-1] != n {
		t.Fatalf("cuts do not end at the input length %d: %d cuts, last %v", n, len(cuts), cuts[max(0, len(cuts)-1):])
	}
	prev := 0
	for i, end := range cuts {
		size := end - prev
		lo := p.Min
		if i == len(cuts)-1 {
			lo = 1
		}
		if size < lo || size > p.Max {
			t.Fatalf("chunk %d of %d is %d bytes, want [%d, %d] (%v)", i, len(cuts), size, lo, p.Max, p)
		}
		prev = end
	}
}

func TestEmptyInput(t *testing.T) {
	c, err := New(bytes.NewReader(nil), DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if ch, err := c.Next(); err != io.EOF {
			t.Fatalf("Next on empty input = %+v, %v; want io.EOF", ch, err)
		}
	}
	cuts, err := Boundaries(nil, DefaultParams)
	if err != nil || cuts != nil {
		t.Fatalf("Boundaries(nil) = %v, %v; want nil, nil", cuts, err)
	}
}

// TestSizesAndReassembly checks the size bounds and that the chunks put back
// together are the input, for inputs around the interesting lengths.
func TestSizesAndReassembly(t *testing.T) {
	random := randomBytes(2, 3<<20)
	for _, p := range []Params{DefaultParams, smallParams, {Min: 64, Avg: 128, Max: 200}} {
		lengths := []int{1, p.Min - 1, p.Min, p.Min + 1, p.Avg, p.Max - 1, p.Max, p.Max + 1,
			2*p.Max + p.Min/2, 3 << 20}
		for _, n := range lengths {
			for _, kind := range []string{"random", "zeros", "ramp"} {
				data := random[:n]
				switch kind {
				case "zeros":
					data = make([]byte, n)
				case "ramp":
					data = make([]byte, n)
					for i := range data {
						data[i] = byte(i)
					}
				}
				t.Run(fmt.Sprintf("%v/%s/%d", p, kind, n), func(t *testing.T) {
					chunks := chunkAll(t, bytes.NewReader(data), p)
					if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
						t.Fatalf("reassembled %d bytes differ from the %d input bytes", len(got), len(data))
					}
					cuts := ends(chunks)
					checkSizes(t, cuts, n, p)
					want, err := Boundaries(data, p)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(cuts, want) {
						t.Fatalf("stream cuts %v, Boundaries %v", cuts, want)
					}
				})
			}
		}
	}
}

// TestStreamingIgnoresReadSizes checks that cuts depend only on the bytes,
// not on how the reader splits them.
func TestStreamingIgnoresReadSizes(t *testing.T) {
	data := randomBytes(3, 1<<20)
	readers := []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"one byte", iotest.OneByteReader},
		{"half", iotest.HalfReader},
		{"data with EOF", iotest.DataErrReader},
		{"odd sizes", func(r io.Reader) io.Reader { return &jaggedReader{r: r, rng: rand.New(rand.NewPCG(1, 2))} }},
	}
	for _, p := range []Params{DefaultParams, smallParams} {
		want, err := Boundaries(data, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) < 10 {
			t.Fatalf("%v: only %d chunks in %d bytes; the test needs more", p, len(want), len(data))
		}
		for _, rd := range readers {
			t.Run(fmt.Sprintf("%v/%s", p, rd.name), func(t *testing.T) {
				chunks := chunkAll(t, rd.wrap(bytes.NewReader(data)), p)
				if got := ends(chunks); !slices.Equal(got, want) {
					t.Fatalf("cuts %v, want %v", got, want)
				}
				if !bytes.Equal(bytes.Join(chunks, nil), data) {
					t.Fatal("reassembled chunks differ from the input")
				}
			})
		}
	}
}

// jaggedReader returns reads of random sizes from 0 to 5000 bytes, including
// empty reads without an error.
type jaggedReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (j *jaggedReader) Read(p []byte) (int, error) {
	n := j.rng.IntN(5001)
	if n == 0 {
		return 0, nil
	}
	return j.r.Read(p[:min(n, len(p))])
}

func TestReset(t *testing.T) {
	a, b := randomBytes(4, 700<<10), randomBytes(5, 300<<10)
	c, err := New(bytes.NewReader(a), smallParams)
	if err != nil {
		t.Fatal(err)
	}
	buf := &c.buf[0]
	first := drain(t, c)
	for _, data := range [][]byte{b, a, nil} {
		c.Reset(bytes.NewReader(data))
		got := drain(t, c)
		want := chunkAll(t, bytes.NewReader(data), smallParams)
		if !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("after Reset: %d chunks differ from a fresh chunker's %d", len(got), len(want))
		}
	}
	// Reset in the middle of a stream forgets what was buffered.
	c.Reset(bytes.NewReader(a))
	if _, err := c.Next(); err != nil {
		t.Fatal(err)
	}
	c.Reset(bytes.NewReader(a))
	if got := drain(t, c); !slices.EqualFunc(got, first, bytes.Equal) {
		t.Fatal("chunks after a mid-stream Reset differ from the first pass")
	}
	if &c.buf[0] != buf {
		t.Fatal("Reset reallocated the buffer")
	}
}

// TestChunkDataCannotClobberBuffer checks that appending to a chunk's Data
// copies instead of overwriting the following bytes in the chunker's buffer.
func TestChunkDataCannotClobberBuffer(t *testing.T) {
	data := randomBytes(6, 64<<10)
	c, err := New(bytes.NewReader(data), smallParams)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := c.Next()
	if err != nil {
		t.Fatal(err)
	}
	_ = append(ch.Data, make([]byte, 100)...)
	got := bytes.Clone(ch.Data)
	for {
		ch, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ch.Data...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("appending to a chunk changed the stream")
	}
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

type overReader struct{}

func (overReader) Read(p []byte) (int, error) { return len(p) + 1, nil }

// failAfter returns data, then err instead of io.EOF.
func failAfter(data []byte, err error) io.Reader {
	return io.MultiReader(bytes.NewReader(data), iotest.ErrReader(err))
}

func TestReadErrors(t *testing.T) {
	errDisk := errors.New("disk on fire")
	data := randomBytes(8, 20<<10)
	tests := []struct {
		name       string
		r          io.Reader
		wantChunks int // chunks decided before the error
		want       error
	}{
		{"immediate error", iotest.ErrReader(errDisk), 0, errDisk},
		{"error after data", failAfter(data, errDisk), 0, errDisk},
		// 20 KiB of data is more than Max (4 KiB): the chunks that need no
		// more data come out before the error.
		{"error after data, small params", failAfter(data, errDisk), -1, errDisk},
		{"timeout", iotest.TimeoutReader(bytes.NewReader(data)), -1, iotest.ErrTimeout},
		{"no progress", stuckReader{}, 0, io.ErrNoProgress},
		{"impossible count", overReader{}, 0, ErrBadReader},
		{"nil reader", nil, 0, ErrNilReader},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DefaultParams
			if tt.wantChunks < 0 {
				p = smallParams
			}
			c, err := New(tt.r, p)
			if err != nil {
				t.Fatal(err)
			}
			var off int
			got := 0
			for {
				ch, err := c.Next()
				if err == nil {
					if !bytes.Equal(ch.Data, data[off:off+ch.Length]) {
						t.Fatalf("chunk %d holds the wrong bytes", got)
					}
					off += ch.Length
					got++
					continue
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("Next error %v, want %v", err, tt.want)
				}
				break
			}
			if tt.wantChunks >= 0 && got != tt.wantChunks {
				t.Fatalf("%d chunks before the error, want %d", got, tt.wantChunks)
			}
			if tt.wantChunks < 0 && got == 0 {
				t.Fatal("no chunk came out before the error though some were decided")
			}
			if _, err := c.Next(); !errors.Is(err, tt.want) {
				t.Fatalf("second Next after the error = %v, want %v again", err, tt.want)
			}
		})
	}
}

// TestEditResynchronizes inserts and deletes a few bytes in the middle of
// 64 MiB of random data: at most 3 chunks of the edited data may be new.
func TestEditResynchronizes(t *testing.T) {
	data := bigData()
	p := DefaultParams
	orig := chunkHashes(t, data, p)
	have := make(map[[32]byte]bool, len(orig))
	for _, h := range orig {
		have[h] = true
	}
	// Edit at several places near the middle, so that the edit falls at
	// different spots within a chunk. Under -short or the race detector
	// (which makes each 64 MiB pass take seconds) fewer edits are tried.
	sizes := []int{1, 7, 50, 100}
	places := []int{len(data) / 2, len(data)/2 + 12345}
	if testing.Short() || raceEnabled {
		sizes, places = []int{1, 100}, places[:1]
	}
	insert := randomBytes(9, 100)
	for _, at := range places {
		for _, n := range sizes {
			for _, op := range []string{"insert", "delete"} {
				t.Run(fmt.Sprintf("%s/%d/at%d", op, n, at), func(t *testing.T) {
					t.Parallel()
					var edited []byte
					if op == "insert" {
						edited = slices.Concat(data[:at], insert[:n], data[at:])
					} else {
						edited = slices.Concat(data[:at], data[at+n:])
					}
					hashes := chunkHashes(t, edited, p)
					changed := 0
					for _, h := range hashes {
						if !have[h] {
							changed++
						}
					}
					if changed < 1 || changed > 3 {
						t.Fatalf("%d of %d chunks are new after a %d-byte %s; want 1 to 3", changed, len(hashes), n, op)
					}
				})
			}
		}
	}
}

// chunkHashes returns the SHA-256 of each chunk of data.
func chunkHashes(t *testing.T, data []byte, p Params) [][32]byte {
	t.Helper()
	cuts, err := Boundaries(data, p)
	if err != nil {
		t.Fatal(err)
	}
	checkSizes(t, cuts, len(data), p)
	hashes := make([][32]byte, len(cuts))
	prev := 0
	for i, end := range cuts {
		hashes[i] = sha256.Sum256(data[prev:end])
		prev = end
	}
	return hashes
}

// TestSizeDistribution checks on random data that chunks average near Avg and
// that normalized chunking bunches them around it. The bounds are loose
// versions of what the masks predict: with Min = Avg/4 a chunk is shorter
// than Avg/2 with probability 1-exp(-1/16) ≈ 6 %, longer than 2×Avg with
// about exp(-3/16)·exp(-4) ≈ 1.5 %, and it almost never reaches Max.
func TestSizeDistribution(t *testing.T) {
	tests := []struct {
		p    Params
		data []byte
	}{
		{DefaultParams, bigData()},
		{smallParams, bigData()[:8<<20]},
		{Params{Min: 2 << 10, Avg: 8 << 10, Max: 64 << 10}, bigData()[:32<<20]},
	}
	for _, tt := range tests {
		t.Run(tt.p.String(), func(t *testing.T) {
			cuts, err := Boundaries(tt.data, tt.p)
			if err != nil {
				t.Fatal(err)
			}
			checkSizes(t, cuts, len(tt.data), tt.p)
			sizes := make([]int, 0, len(cuts))
			prev := 0
			for _, end := range cuts[:len(cuts)-1] { // the last chunk is cut by the end of data
				sizes = append(sizes, end-prev)
				prev = end
			}
			var sum, near, atMax int
			for _, s := range sizes {
				sum += s
				if s >= tt.p.Avg/2 && s <= 2*tt.p.Avg {
					near++
				}
				if s == tt.p.Max {
					atMax++
				}
			}
			mean := float64(sum) / float64(len(sizes))
			t.Logf("%d chunks, mean %.0f (%.2f×Avg), %.1f %% within [Avg/2, 2×Avg], %d at Max",
				len(sizes), mean, mean/float64(tt.p.Avg), 100*float64(near)/float64(len(sizes)), atMax)
			if len(sizes) < 500 {
				t.Fatalf("only %d chunks: too few for statistics", len(sizes))
			}
			if mean < 0.75*float64(tt.p.Avg) || mean > 1.25*float64(tt.p.Avg) {
				t.Errorf("mean chunk %.0f bytes, want within 25 %% of Avg %d", mean, tt.p.Avg)
			}
			if frac := float64(near) / float64(len(sizes)); frac < 0.85 {
				t.Errorf("%.1f %% of chunks within [Avg/2, 2×Avg], want at least 85 %%", 100*frac)
			}
			if atMax*100 > len(sizes) {
				t.Errorf("%d of %d chunks forced at Max, want under 1 %%", atMax, len(sizes))
			}
			slices.Sort(sizes)
			if med := sizes[len(sizes)/2]; med < tt.p.Avg*3/4 || med > tt.p.Avg*5/4 {
				t.Errorf("median chunk %d bytes, want within 25 %% of Avg %d", med, tt.p.Avg)
			}
		})
	}
}

// endlessRandom yields pseudo-random bytes without holding them, standing in
// for a file far larger than memory.
type endlessRandom struct{ rng *rand.ChaCha8 }

func (e endlessRandom) Read(p []byte) (int, error) { return e.rng.Read(p) }

// TestMemoryIsBounded streams far more data than the buffer holds and checks
// that chunking allocates nothing once the Chunker exists.
func TestMemoryIsBounded(t *testing.T) {
	size := int64(256 << 20)
	if testing.Short() || raceEnabled {
		size = 32 << 20
	}
	r := io.LimitReader(endlessRandom{rand.NewChaCha8([32]byte{10})}, size)
	c, err := New(r, DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var total int64
	for {
		ch, err := c.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		total += int64(ch.Length)
	}
	runtime.ReadMemStats(&after)
	if total != size {
		t.Fatalf("chunked %d bytes, want %d", total, size)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Fatalf("chunking %d MiB allocated %d bytes; want (almost) none beyond the %d-byte buffer",
			size>>20, grew, len(c.buf))
	}
	if len(c.buf) != 2*DefaultParams.Max {
		t.Fatalf("buffer is %d bytes, want 2×Max = %d", len(c.buf), 2*DefaultParams.Max)
	}
}

// referenceCut is the chunking rule written as plainly as possible: try each
// length from Min on, hashing the 64 bytes before it from scratch. The fast
// cutter must agree with it everywhere.
func referenceCut(data []byte, p Params) int {
	n := len(data)
	if n <= p.Min {
		return n
	}
	n = min(n, p.Max)
	strict, loose := p.masks()
	for length := p.Min; length < n; length++ {
		var h uint64
		for _, b := range data[length-windowSize : length] {
			h = h<<1 + gear[b]
		}
		mask := strict
		if length >= p.Avg {
			mask = loose
		}
		if h&mask == 0 {
			return length
		}
	}
	return n
}

func referenceBoundaries(data []byte, p Params) []int {
	var cuts []int
	for off := 0; off < len(data); {
		off += referenceCut(data[off:], p)
		cuts = append(cuts, off)
	}
	return cuts
}

func TestMatchesReference(t *testing.T) {
	random := randomBytes(11, 256<<10)
	ramp := make([]byte, 64<<10)
	for i := range ramp {
		ramp[i] = byte(i * i >> 3)
	}
	for _, p := range []Params{smallParams, {Min: 64, Avg: 128, Max: 200}, {Min: 100, Avg: 512, Max: 513}, {Min: 1000, Avg: 2048, Max: 9999}} {
		for name, data := range map[string][]byte{"random": random, "ramp": ramp, "zeros": make([]byte, 10<<10)} {
			// Odd and even lengths reach the scan loop's tail differently.
			for _, n := range []int{len(data), len(data) - 1, p.Avg + 1, p.Avg + 2} {
				got, err := Boundaries(data[:n], p)
				if err != nil {
					t.Fatal(err)
				}
				if want := referenceBoundaries(data[:n], p); !slices.Equal(got, want) {
					t.Fatalf("%v %s[:%d]: cuts %v, reference %v", p, name, n, got, want)
				}
			}
		}
	}
}

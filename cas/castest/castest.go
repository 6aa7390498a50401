// Package castest is the conformance suite every chunk store backend must
// pass: the local pack store of package cas today, an object-store backend
// later. A backend's test calls RunConformance with a Harness that opens
// real instances; the suite only uses the Store interface below.
package castest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/quic-s/quics/cas"
)

// Store is what the suite exercises: storing, reading and deleting chunks,
// and the pack-level operations gc needs.
type Store interface {
	Put(ctx context.Context, id cas.ID, data []byte) (bool, error)
	PutReader(ctx context.Context, id cas.ID, r io.Reader, size int64) (bool, error)
	Sync(ctx context.Context) error
	Has(ctx context.Context, ids []cas.ID) ([]bool, error)
	Get(ctx context.Context, id cas.ID) ([]byte, error)
	GetStored(ctx context.Context, id cas.ID) (cas.Stored, error)
	Stat(ctx context.Context, id cas.ID) (cas.ChunkInfo, error)
	DeleteChunks(ctx context.Context, ids []cas.ID) error
	ForEachChunk(ctx context.Context, fn func(id cas.ID, loc cas.Location) error) error
	Packs(ctx context.Context) ([]cas.PackInfo, error)
	Repack(ctx context.Context, pack uint64, keep func(cas.ID) bool) (cas.RepackReport, error)
	RemovePack(ctx context.Context, pack uint64) error
	Stats(ctx context.Context) (cas.Stats, error)
	Close() error
}

// Harness opens the backend under test.
type Harness struct {
	// Open returns a new, empty store configured with PackSize and
	// MaxChunkSize; the harness closes it when the test ends.
	Open func(t *testing.T) Store
	// Reopen closes s (committing what was synced) and opens the same
	// store again.
	Reopen func(t *testing.T, s Store) Store
	// PackSize must be small (a few KiB to 64 KiB) so the suite can fill
	// several packs quickly.
	PackSize int64
	// MaxChunkSize is the store's chunk size limit.
	MaxChunkSize int
}

// RunConformance runs every conformance test against h.
func RunConformance(t *testing.T, h Harness) {
	if h.PackSize <= 0 || h.PackSize > 1<<20 || h.MaxChunkSize <= 0 {
		t.Fatalf("castest: harness needs 0 < PackSize <= 1 MiB and MaxChunkSize > 0, got %d, %d", h.PackSize, h.MaxChunkSize)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"PutGetHas", testPutGetHas},
		{"Dedup", testDedup},
		{"HashMismatch", testHashMismatch},
		{"TooLarge", testTooLarge},
		{"PutReader", testPutReader},
		{"NotFound", testNotFound},
		{"PendingVisible", testPendingVisible},
		{"ConcurrentOverlappingPuts", testConcurrentPuts},
		{"Persistence", testPersistence},
		{"PackRotation", testPackRotation},
		{"DeleteChunks", testDeleteChunks},
		{"ForEachChunk", testForEachChunk},
		{"Repack", testRepack},
		{"RepackDropsRejected", testRepackDropsRejected},
		{"RemovePack", testRemovePack},
		{"Stats", testStats},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// Chunk is test content with its ID.
type Chunk struct {
	ID   cas.ID
	Data []byte
}

// RandomChunk returns n incompressible bytes drawn from rng.
func RandomChunk(rng *rand.Rand, n int) Chunk {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return Chunk{ID: cas.Sum(b), Data: b}
}

// TextChunk returns n bytes of text-like content (random words from a small
// vocabulary) that zstd compresses about 3x.
func TextChunk(rng *rand.Rand, n int) Chunk {
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(vocabulary[int(rng.ExpFloat64()*40)%len(vocabulary)])
		if rng.IntN(12) == 0 {
			sb.WriteString(".\n")
		} else {
			sb.WriteByte(' ')
		}
	}
	b := []byte(sb.String()[:n])
	return Chunk{ID: cas.Sum(b), Data: b}
}

var vocabulary = func() []string {
	rng := rand.New(rand.NewPCG(7, 7))
	words := make([]string, 2048)
	for i := range words {
		w := make([]byte, 2+rng.IntN(9))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = string(w)
	}
	return words
}()

func newRNG(t *testing.T) *rand.Rand {
	var seed uint64
	for _, c := range t.Name() {
		seed = seed*31 + uint64(c)
	}
	return rand.New(rand.NewPCG(seed, 1))
}

func mustPut(t *testing.T, s Store, c Chunk) bool {
	t.Helper()
	stored, err := s.Put(context.Background(), c.ID, c.Data)
	if err != nil {
		t.Fatalf("Put %s (%d bytes): %v", c.ID.Short(), len(c.Data), err)
	}
	return stored
}

func mustSync(t *testing.T, s Store) {
	t.Helper()
	if err := s.Sync(context.Background()); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func mustGet(t *testing.T, s Store, c Chunk) {
	t.Helper()
	got, err := s.Get(context.Background(), c.ID)
	if err != nil {
		t.Fatalf("Get %s: %v", c.ID.Short(), err)
	}
	if !bytes.Equal(got, c.Data) {
		t.Fatalf("Get %s: got %d bytes, want %d (content differs)", c.ID.Short(), len(got), len(c.Data))
	}
}

func wantNotFound(t *testing.T, s Store, id cas.ID) {
	t.Helper()
	if _, err := s.Get(context.Background(), id); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("Get %s: err = %v, want ErrNotFound", id.Short(), err)
	}
	has, err := s.Has(context.Background(), []cas.ID{id})
	if err != nil || has[0] {
		t.Fatalf("Has %s = %v, %v; want false", id.Short(), has, err)
	}
}

func mustStats(t *testing.T, s Store) cas.Stats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

func mustPacks(t *testing.T, s Store) []cas.PackInfo {
	t.Helper()
	p, err := s.Packs(context.Background())
	if err != nil {
		t.Fatalf("Packs: %v", err)
	}
	return p
}

func packOf(t *testing.T, s Store, id cas.ID) uint64 {
	t.Helper()
	info, err := s.Stat(context.Background(), id)
	if err != nil {
		t.Fatalf("Stat %s: %v", id.Short(), err)
	}
	return info.Pack
}

func testPutGetHas(t *testing.T, h Harness) {
	rng := newRNG(t)
	ctx := context.Background()
	cases := []struct {
		name  string
		chunk Chunk
	}{
		{"empty", Chunk{ID: cas.Sum(nil), Data: []byte{}}},
		{"one byte", RandomChunk(rng, 1)},
		{"small text", TextChunk(rng, 100)},
		{"4KiB text", TextChunk(rng, 4<<10)},
		{"4KiB random", RandomChunk(rng, 4<<10)},
		{"zeros", func() Chunk { b := make([]byte, 8<<10); return Chunk{cas.Sum(b), b} }()},
		{"max size", RandomChunk(rng, h.MaxChunkSize)},
	}
	s := h.Open(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !mustPut(t, s, tc.chunk) {
				t.Fatalf("first Put reported stored=false")
			}
			mustGet(t, s, tc.chunk)
			mustSync(t, s)
			mustGet(t, s, tc.chunk)
			has, err := s.Has(ctx, []cas.ID{tc.chunk.ID})
			if err != nil || !has[0] {
				t.Fatalf("Has = %v, %v; want true", has, err)
			}
			st, err := s.GetStored(ctx, tc.chunk.ID)
			if err != nil {
				t.Fatalf("GetStored: %v", err)
			}
			if st.RawLen != len(tc.chunk.Data) {
				t.Fatalf("GetStored RawLen = %d, want %d", st.RawLen, len(tc.chunk.Data))
			}
			data, err := st.Decode(tc.chunk.ID)
			if err != nil || !bytes.Equal(data, tc.chunk.Data) {
				t.Fatalf("Stored.Decode: %v (equal=%v)", err, bytes.Equal(data, tc.chunk.Data))
			}
		})
	}
	if got := mustStats(t, s).Chunks; got != uint64(len(cases)) {
		t.Fatalf("Stats.Chunks = %d, want %d", got, len(cases))
	}
}

func testDedup(t *testing.T, h Harness) {
	s := h.Open(t)
	c := TextChunk(newRNG(t), 3000)
	if !mustPut(t, s, c) {
		t.Fatal("first Put: stored=false")
	}
	if mustPut(t, s, c) {
		t.Fatal("second Put before Sync: stored=true")
	}
	mustSync(t, s)
	if mustPut(t, s, c) {
		t.Fatal("Put after Sync: stored=true")
	}
	mustSync(t, s)
	st := mustStats(t, s)
	if st.Chunks != 1 {
		t.Fatalf("Stats.Chunks = %d, want 1", st.Chunks)
	}
	var records uint64
	for _, p := range mustPacks(t, s) {
		records += p.Records
	}
	if records != 1 {
		t.Fatalf("packs hold %d records, want 1", records)
	}
}

func testHashMismatch(t *testing.T, h Harness) {
	s := h.Open(t)
	rng := newRNG(t)
	a, b := RandomChunk(rng, 1000), RandomChunk(rng, 1000)
	if _, err := s.Put(context.Background(), a.ID, b.Data); !errors.Is(err, cas.ErrHashMismatch) {
		t.Fatalf("Put with wrong id: err = %v, want ErrHashMismatch", err)
	}
	if _, err := s.PutReader(context.Background(), a.ID, bytes.NewReader(b.Data), int64(len(b.Data))); !errors.Is(err, cas.ErrHashMismatch) {
		t.Fatalf("PutReader with wrong id: err = %v, want ErrHashMismatch", err)
	}
	mustSync(t, s)
	wantNotFound(t, s, a.ID)
	wantNotFound(t, s, b.ID)
	if st := mustStats(t, s); st.Chunks != 0 || st.Pending != 0 {
		t.Fatalf("Stats after rejected puts = %+v, want empty", st)
	}
}

// failingReader fails the test if anything reads from it.
type failingReader struct{ t *testing.T }

func (r failingReader) Read([]byte) (int, error) {
	r.t.Error("reader was read although the size was refused")
	return 0, io.EOF
}

func testTooLarge(t *testing.T, h Harness) {
	s := h.Open(t)
	big := RandomChunk(newRNG(t), h.MaxChunkSize+1)
	if _, err := s.Put(context.Background(), big.ID, big.Data); !errors.Is(err, cas.ErrTooLarge) {
		t.Fatalf("Put of %d bytes: err = %v, want ErrTooLarge", len(big.Data), err)
	}
	for _, size := range []int64{int64(h.MaxChunkSize) + 1, 1 << 40, -1} {
		if _, err := s.PutReader(context.Background(), big.ID, failingReader{t}, size); !errors.Is(err, cas.ErrTooLarge) {
			t.Fatalf("PutReader announcing %d bytes: err = %v, want ErrTooLarge", size, err)
		}
	}
	wantNotFound(t, s, big.ID)
}

func testPutReader(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	rng := newRNG(t)
	c := TextChunk(rng, min(200<<10, h.MaxChunkSize))
	// The reader holds more than the chunk: PutReader must stop at size.
	r := bytes.NewReader(append(slices.Clone(c.Data), "next frame"...))
	stored, err := s.PutReader(ctx, c.ID, r, int64(len(c.Data)))
	if err != nil || !stored {
		t.Fatalf("PutReader = %v, %v; want true, nil", stored, err)
	}
	if rest, _ := io.ReadAll(r); string(rest) != "next frame" {
		t.Fatalf("PutReader consumed past size: %q left", rest)
	}
	mustGet(t, s, c)

	short := RandomChunk(rng, 5000)
	if _, err := s.PutReader(ctx, short.ID, bytes.NewReader(short.Data[:4000]), 5000); err == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("PutReader of a short stream: err = %v, want io.ErrUnexpectedEOF", err)
	}
	wantNotFound(t, s, short.ID)

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	other := RandomChunk(rng, 100)
	if _, err := s.PutReader(canceled, other.ID, bytes.NewReader(other.Data), 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutReader with canceled context: err = %v", err)
	}
}

func testNotFound(t *testing.T, h Harness) {
	s := h.Open(t)
	id := cas.Sum([]byte("never stored"))
	wantNotFound(t, s, id)
	if _, err := s.GetStored(context.Background(), id); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("GetStored: err = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(context.Background(), id); !errors.Is(err, cas.ErrNotFound) {
		t.Fatalf("Stat: err = %v, want ErrNotFound", err)
	}
}

func testPendingVisible(t *testing.T, h Harness) {
	s := h.Open(t)
	c := TextChunk(newRNG(t), 2000)
	mustPut(t, s, c)
	has, err := s.Has(context.Background(), []cas.ID{c.ID})
	if err != nil || !has[0] {
		t.Fatalf("Has of an unsynced chunk = %v, %v; want true", has, err)
	}
	mustGet(t, s, c)
	info, err := s.Stat(context.Background(), c.ID)
	if err != nil || info.Durable {
		t.Fatalf("Stat of an unsynced chunk = %+v, %v; want Durable=false", info, err)
	}
	if st := mustStats(t, s); st.Pending != 1 || st.Chunks != 0 {
		t.Fatalf("Stats before Sync = %+v, want 1 pending, 0 committed", st)
	}
	mustSync(t, s)
	if info, err := s.Stat(context.Background(), c.ID); err != nil || !info.Durable {
		t.Fatalf("Stat after Sync = %+v, %v; want Durable=true", info, err)
	}
}

func testConcurrentPuts(t *testing.T, h Harness) {
	s := h.Open(t)
	rng := newRNG(t)
	const workers, shared, own = 8, 48, 8
	size := min(3000, h.MaxChunkSize)
	common := make([]Chunk, shared)
	for i := range common {
		common[i] = TextChunk(rng, size)
	}
	unique := make([][]Chunk, workers)
	for w := range unique {
		for range own {
			unique[w] = append(unique[w], RandomChunk(rng, size))
		}
	}
	storedCount := make(map[cas.ID]*atomic.Int32)
	for _, c := range common {
		storedCount[c.ID] = new(atomic.Int32)
	}
	for _, u := range unique {
		for _, c := range u {
			storedCount[c.ID] = new(atomic.Int32)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		order := rand.New(rand.NewPCG(uint64(w), 9)).Perm(shared)
		wg.Go(func() {
			mine := slices.Clone(unique[w])
			for i, j := range order {
				mine = append(mine, common[j])
				if i%10 == 0 {
					mine = append(mine, common[(j+1)%shared])
				}
			}
			for i, c := range mine {
				stored, err := s.Put(context.Background(), c.ID, c.Data)
				if err != nil {
					errs <- err
					return
				}
				if stored {
					storedCount[c.ID].Add(1)
				}
				if i%16 == 0 {
					if err := s.Sync(context.Background()); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- s.Sync(context.Background())
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("worker: %v", err)
		}
	}
	for id, n := range storedCount {
		if n.Load() != 1 {
			t.Errorf("chunk %s reported stored %d times, want exactly 1", id.Short(), n.Load())
		}
	}
	for _, c := range common {
		mustGet(t, s, c)
	}
	st := mustStats(t, s)
	if want := uint64(len(storedCount)); st.Chunks != want || st.Pending != 0 {
		t.Fatalf("Stats = %+v, want %d chunks, 0 pending", st, want)
	}
	var records uint64
	for _, p := range mustPacks(t, s) {
		records += p.Records
	}
	if records != uint64(len(storedCount)) {
		t.Fatalf("packs hold %d records for %d distinct chunks", records, len(storedCount))
	}
}

func testPersistence(t *testing.T, h Harness) {
	s := h.Open(t)
	rng := newRNG(t)
	var chunks []Chunk
	for i := range 20 {
		c := TextChunk(rng, 500+i*100)
		if i%2 == 1 {
			c = RandomChunk(rng, 500+i*100)
		}
		chunks = append(chunks, c)
		mustPut(t, s, c)
	}
	mustSync(t, s)
	before := mustStats(t, s)
	s = h.Reopen(t, s)
	for _, c := range chunks {
		mustGet(t, s, c)
		if mustPut(t, s, c) {
			t.Fatalf("Put after reopen of %s: stored=true, want dedup", c.ID.Short())
		}
	}
	if after := mustStats(t, s); after.Chunks != before.Chunks || after.RawBytes != before.RawBytes {
		t.Fatalf("Stats after reopen = %+v, before %+v", after, before)
	}
}

// fillPacks puts random chunks until at least n packs exist, and syncs.
func fillPacks(t *testing.T, s Store, h Harness, rng *rand.Rand, n int) []Chunk {
	t.Helper()
	size := int(min(h.PackSize/4, int64(h.MaxChunkSize)))
	var chunks []Chunk
	for len(mustPacks(t, s)) < n {
		for range 8 {
			c := RandomChunk(rng, size/2+rng.IntN(size/2))
			mustPut(t, s, c)
			chunks = append(chunks, c)
		}
		mustSync(t, s)
	}
	return chunks
}

func testPackRotation(t *testing.T, h Harness) {
	s := h.Open(t)
	chunks := fillPacks(t, s, h, newRNG(t), 4)
	packs := mustPacks(t, s)
	var total uint64
	for _, p := range packs {
		total += p.LiveChunks
		if p.Size > h.PackSize && p.Records > 1 {
			t.Errorf("pack %d has %d bytes in %d records, PackSize %d", p.Number, p.Size, p.Records, h.PackSize)
		}
	}
	if total != uint64(len(chunks)) {
		t.Fatalf("packs count %d live chunks, want %d", total, len(chunks))
	}
	s = h.Reopen(t, s)
	for _, c := range chunks {
		mustGet(t, s, c)
	}
}

func testDeleteChunks(t *testing.T, h Harness) {
	s := h.Open(t)
	rng := newRNG(t)
	a, b := TextChunk(rng, 1500), RandomChunk(rng, 1500)
	mustPut(t, s, a)
	mustPut(t, s, b)
	mustSync(t, s)
	if err := s.DeleteChunks(context.Background(), []cas.ID{a.ID, cas.Sum([]byte("absent"))}); err != nil {
		t.Fatalf("DeleteChunks: %v", err)
	}
	wantNotFound(t, s, a.ID)
	mustGet(t, s, b)
	if st := mustStats(t, s); st.Chunks != 1 || st.RawBytes != int64(len(b.Data)) {
		t.Fatalf("Stats after delete = %+v, want only b", st)
	}
	if !mustPut(t, s, a) {
		t.Fatal("Put of a deleted chunk: stored=false, want true")
	}
	mustSync(t, s)
	mustGet(t, s, a)
}

func testForEachChunk(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	rng := newRNG(t)
	want := make(map[cas.ID]int)
	for i := range 12 {
		c := TextChunk(rng, 700+i)
		mustPut(t, s, c)
		want[c.ID] = len(c.Data)
	}
	mustSync(t, s)
	unsynced := RandomChunk(rng, 500)
	mustPut(t, s, unsynced)
	got := make(map[cas.ID]int)
	var prev cas.ID
	err := s.ForEachChunk(ctx, func(id cas.ID, loc cas.Location) error {
		if _, dup := got[id]; dup {
			t.Errorf("chunk %s listed twice", id.Short())
		}
		if !prev.IsZero() && prev.Compare(id) >= 0 {
			t.Errorf("chunks not in ID order: %s after %s", id.Short(), prev.Short())
		}
		prev = id
		got[id] = int(loc.RawLen)
		return nil
	})
	if err != nil {
		t.Fatalf("ForEachChunk: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ForEachChunk listed %d chunks, want the %d synced ones", len(got), len(want))
	}
	for id, n := range want {
		if got[id] != n {
			t.Errorf("chunk %s listed with raw length %d, want %d", id.Short(), got[id], n)
		}
	}
	stop := errors.New("stop")
	calls := 0
	if err := s.ForEachChunk(ctx, func(cas.ID, cas.Location) error { calls++; return stop }); !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("ForEachChunk with a failing callback: err = %v after %d calls", err, calls)
	}
}

func testRepack(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	rng := newRNG(t)
	chunks := fillPacks(t, s, h, rng, 3)
	first := mustPacks(t, s)[0]
	var inFirst, deleted []Chunk
	for _, c := range chunks {
		if packOf(t, s, c.ID) == first.Number {
			inFirst = append(inFirst, c)
		}
	}
	if len(inFirst) < 2 {
		t.Fatalf("first pack holds %d chunks, need 2", len(inFirst))
	}
	for i, c := range inFirst {
		if i%2 == 0 {
			deleted = append(deleted, c)
		}
	}
	var ids []cas.ID
	for _, c := range deleted {
		ids = append(ids, c.ID)
	}
	if err := s.DeleteChunks(ctx, ids); err != nil {
		t.Fatal(err)
	}
	before := mustStats(t, s)
	rep, err := s.Repack(ctx, first.Number, func(cas.ID) bool { return true })
	if err != nil {
		t.Fatalf("Repack: %v", err)
	}
	if want := len(inFirst) - len(deleted); rep.Kept != want || !rep.Removed || rep.ReclaimedBytes <= 0 {
		t.Fatalf("Repack report = %+v, want %d kept, pack removed, bytes reclaimed", rep, want)
	}
	for _, p := range mustPacks(t, s) {
		if p.Number == first.Number {
			t.Fatalf("pack %d still listed after Repack", first.Number)
		}
	}
	if after := mustStats(t, s); after.Chunks != before.Chunks || after.RawBytes != before.RawBytes {
		t.Fatalf("Stats after Repack = %+v, before %+v", after, before)
	}
	check := func(s Store) {
		for _, c := range chunks {
			if slices.ContainsFunc(deleted, func(d Chunk) bool { return d.ID == c.ID }) {
				wantNotFound(t, s, c.ID)
				continue
			}
			mustGet(t, s, c)
			if packOf(t, s, c.ID) == first.Number {
				t.Fatalf("chunk %s still points at the repacked pack", c.ID.Short())
			}
		}
	}
	check(s)
	check(h.Reopen(t, s))
}

func testRepackDropsRejected(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	chunks := fillPacks(t, s, h, newRNG(t), 2)
	first := mustPacks(t, s)[0].Number
	var victim *Chunk
	for i := range chunks {
		if packOf(t, s, chunks[i].ID) == first {
			victim = &chunks[i]
			break
		}
	}
	rep, err := s.Repack(ctx, first, func(id cas.ID) bool { return id != victim.ID })
	if err != nil {
		t.Fatalf("Repack: %v", err)
	}
	if rep.Dropped != 1 || !rep.Removed {
		t.Fatalf("Repack report = %+v, want 1 dropped and the pack removed", rep)
	}
	wantNotFound(t, s, victim.ID)
	for _, c := range chunks {
		if c.ID != victim.ID {
			mustGet(t, s, c)
		}
	}
}

func testRemovePack(t *testing.T, h Harness) {
	s := h.Open(t)
	ctx := context.Background()
	chunks := fillPacks(t, s, h, newRNG(t), 2)
	first := mustPacks(t, s)[0].Number
	if err := s.RemovePack(ctx, first); !errors.Is(err, cas.ErrPackInUse) {
		t.Fatalf("RemovePack of a live pack: err = %v, want ErrPackInUse", err)
	}
	var gone []cas.ID
	var kept []Chunk
	for _, c := range chunks {
		if packOf(t, s, c.ID) == first {
			gone = append(gone, c.ID)
		} else {
			kept = append(kept, c)
		}
	}
	if err := s.DeleteChunks(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if err := s.RemovePack(ctx, first); err != nil {
		t.Fatalf("RemovePack of a dead pack: %v", err)
	}
	for _, p := range mustPacks(t, s) {
		if p.Number == first {
			t.Fatalf("pack %d listed after RemovePack", first)
		}
	}
	if err := s.RemovePack(ctx, first); !errors.Is(err, cas.ErrPackNotFound) {
		t.Fatalf("second RemovePack: err = %v, want ErrPackNotFound", err)
	}
	for _, c := range kept {
		mustGet(t, s, c)
	}
	for _, id := range gone {
		wantNotFound(t, s, id)
	}
}

func testStats(t *testing.T, h Harness) {
	s := h.Open(t)
	rng := newRNG(t)
	if st := mustStats(t, s); st != (cas.Stats{}) {
		t.Fatalf("Stats of an empty store = %+v", st)
	}
	var raw int64
	for i := range 10 {
		c := TextChunk(rng, 1000+i)
		raw += int64(len(c.Data))
		mustPut(t, s, c)
	}
	mustSync(t, s)
	st := mustStats(t, s)
	if st.Chunks != 10 || st.RawBytes != raw || st.Packs < 1 {
		t.Fatalf("Stats = %+v, want 10 chunks, %d raw bytes", st, raw)
	}
	if st.StoredBytes >= st.RawBytes {
		t.Fatalf("text chunks stored in %d bytes, raw %d: not compressed", st.StoredBytes, st.RawBytes)
	}
	if records := st.StoredBytes + 10*cas.RecordHeaderSize; st.PackBytes < records {
		t.Fatalf("PackBytes %d smaller than the records (%d)", st.PackBytes, records)
	}
}

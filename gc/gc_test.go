package gc

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// testSeed fixes the mark filters so the few chunks of these tests are
// not false positives.
const testSeed = 42

// rec is the record size of every fake chunk (100 stored bytes).
const rec = cas.RecordHeaderSize + 100

// world is the scenario most tests share:
//
//	pack 1 (3 h old):  a (versions), e f g (garbage)       → rewritten
//	pack 2 (3 h old):  b (version), c (candidate), d (pinned), h (garbage)
//	pack 3 (2 h old):  x y (garbage)                        → removed
//	pack 4 (10 min):   z (garbage, younger than the margin)
//	pack 5 (3 h old, active): w (garbage)                   → removed (idle)
type world struct {
	store *fakeStore
	refs  *fakeRefs
	pins  *fakePins
	packs map[string]uint64
}

func newWorld() *world {
	w := &world{store: newFakeStore(), refs: newFakeRefs("docs", "pics"), packs: map[string]uint64{}}
	add := func(name string, age time.Duration, chunks ...string) {
		m := map[cas.ID]uint32{}
		for _, c := range chunks {
			m[chunkID(c)] = 100
		}
		w.packs[name] = w.store.addPack(t0.Add(-age), m)
	}
	add("p1", 3*time.Hour, "a", "e", "f", "g")
	add("p2", 3*time.Hour, "b", "c", "d", "h")
	add("p3", 2*time.Hour, "x", "y")
	add("p4", 10*time.Minute, "z")
	add("p5", 3*time.Hour, "w")
	w.store.active = w.packs["p5"]

	v1, s1 := w.refs.content("v1", chunkID("a"))
	v2, s2 := w.refs.content("v2", chunkID("a"), chunkID("b"))
	cand, sc := w.refs.content("cand", chunkID("c"))
	// Lists nothing references any more keep nothing alive.
	w.refs.content("old", chunkID("e"), chunkID("x"))
	w.refs.version(1, "f1", v1, s1, false)
	w.refs.version(1, "f1", v2, s2, false)
	w.refs.version(1, "f2", cas.ID{}, 0, false)
	w.refs.refs[2].Deleted = true
	w.refs.candidate(2, "p", cand, sc)
	w.pins = newFakePins(chunkID("d"))
	return w
}

func (w *world) run(t *testing.T, opts Options) Report {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = fixedClock(t0)
	}
	if opts.Seed == 0 {
		opts.Seed = testSeed
	}
	rep, err := Run(context.Background(), w.store, w.refs, w.pins, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rep
}

func wantPresent(t *testing.T, s *fakeStore, present bool, names ...string) {
	t.Helper()
	for _, n := range names {
		if s.has(chunkID(n)) != present {
			t.Errorf("chunk %s present = %v, want %v", n, !present, present)
		}
	}
}

func TestRunMarksSweepsAndCompacts(t *testing.T) {
	w := newWorld()
	p1, p3, p5 := w.store.packs[w.packs["p1"]].size, w.store.packs[w.packs["p3"]].size, w.store.packs[w.packs["p5"]].size
	before, _ := w.store.Stats(context.Background())
	rep := w.run(t, DefaultOptions())

	wantPresent(t, w.store, true, "a", "b", "c", "d", "z")
	wantPresent(t, w.store, false, "e", "f", "g", "h", "x", "y", "w")
	if !slices.Equal(w.store.removed, []uint64{w.packs["p5"], w.packs["p3"]}) {
		t.Errorf("removed packs %v, want [%d %d]", w.store.removed, w.packs["p5"], w.packs["p3"])
	}
	if !slices.Equal(w.store.repacked, []uint64{w.packs["p1"]}) {
		t.Errorf("repacked packs %v, want [%d]", w.store.repacked, w.packs["p1"])
	}
	if loc := w.store.entries[chunkID("a")]; loc.Pack <= w.packs["p5"] || loc.Pack != w.store.active {
		t.Errorf("chunk a in pack %d after repack, want a new active pack", loc.Pack)
	}
	after, _ := w.store.Stats(context.Background())
	want := Report{
		Started: t0, MarginMS: time.Hour.Milliseconds(), RepackThreshold: 0.5,
		ChunksTotal: 12, ChunksMarked: 3, BytesMarked: 3 * rec, ChunksPinned: 1, ChunksYoung: 1,
		ChunksDeleted: 7, BytesDeleted: 7 * rec,
		PacksDeleted: 2, PacksRewritten: 1, ChunksRepacked: 1, BytesRepacked: rec,
		BytesFreed:      p5 + p3 + p1 - rec,
		PackBytesBefore: before.PackBytes, PackBytesAfter: after.PackBytes,
		Roots: []RootUsage{
			{ID: 1, Name: "docs", Files: 2, Versions: 3, Bytes: 300},
			{ID: 2, Name: "pics", Candidates: 1, Bytes: 100},
		},
	}
	got := rep
	got.MarkBytes, got.MarkBytesPerChunk = 0, 0
	if !equalReports(got, want) {
		t.Fatalf("report\n%+v\nwant\n%+v", got, want)
	}
	// The copy out of pack 1 went to a new pack, with its header.
	if after.PackBytes != before.PackBytes-rep.BytesFreed+cas.PackHeaderSize {
		t.Errorf("pack bytes %d -> %d, but %d reported freed", before.PackBytes, after.PackBytes, rep.BytesFreed)
	}
	if rep.MarkBytes <= 0 || rep.MarkBytesPerChunk != float64(rep.MarkBytes)/12 {
		t.Errorf("mark bytes %d, per chunk %v", rep.MarkBytes, rep.MarkBytesPerChunk)
	}
	// A second run finds nothing more to do.
	again := w.run(t, DefaultOptions())
	if again.ChunksDeleted != 0 || again.PacksDeleted != 0 || again.PacksRewritten != 0 || again.BytesFreed != 0 {
		t.Errorf("second run did something: %+v", again)
	}
}

func equalReports(a, b Report) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func TestRunReportJSON(t *testing.T) {
	w := newWorld()
	rep := w.run(t, DefaultOptions())
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"chunks_marked", "chunks_deleted", "bytes_freed", "packs_deleted", "packs_rewritten",
		"duration_ms", "dry_run", "mark_bytes_per_chunk", "roots"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report JSON lacks %q: %s", k, b)
		}
	}
	roots := m["roots"].([]any)
	first := roots[0].(map[string]any)
	for _, k := range []string{"name", "versions", "bytes"} {
		if _, ok := first[k]; !ok {
			t.Errorf("root usage JSON lacks %q: %v", k, first)
		}
	}
}

// The margin is measured from the collection's start against the pack's
// last write: younger is kept, and with margin 0 anything written after
// the start is still kept.
func TestRunMargin(t *testing.T) {
	for _, tc := range []struct {
		margin  time.Duration
		written time.Duration // relative to the start
		deleted bool
	}{
		{time.Hour, -61 * time.Minute, true},
		{time.Hour, -time.Hour, true},
		{time.Hour, -59 * time.Minute, false},
		{0, -time.Nanosecond, true},
		{0, 0, true},
		{0, time.Second, false},
		{24 * time.Hour, -23 * time.Hour, false},
	} {
		s := newFakeStore()
		s.addPack(t0.Add(tc.written), map[cas.ID]uint32{chunkID("g"): 100})
		rep, err := Run(context.Background(), s, newFakeRefs("r"), nil, Options{Margin: tc.margin, Clock: fixedClock(t0), Seed: testSeed})
		if err != nil {
			t.Fatal(err)
		}
		if got := !s.has(chunkID("g")); got != tc.deleted {
			t.Errorf("margin %v, pack written %v from start: deleted = %v, want %v", tc.margin, tc.written, got, tc.deleted)
		}
		if wantYoung := uint64(1); !tc.deleted && rep.ChunksYoung != wantYoung {
			t.Errorf("margin %v: young = %d", tc.margin, rep.ChunksYoung)
		}
	}
}

// A dry run changes nothing and predicts what the real run does.
func TestRunDryRun(t *testing.T) {
	w := newWorld()
	orig := w.store.clone()
	dry := w.run(t, Options{Margin: time.Hour, RepackThreshold: 0.5, DryRun: true})
	if !maps.Equal(w.store.entries, orig.entries) || len(w.store.packs) != len(orig.packs) || w.store.checks != 0 {
		t.Fatalf("dry run changed the store: %d entries (was %d), %d packs (was %d), %d deletions",
			len(w.store.entries), len(orig.entries), len(w.store.packs), len(orig.packs), w.store.checks)
	}
	if !dry.DryRun {
		t.Error("report does not say dry run")
	}
	done := w.run(t, DefaultOptions())
	type outcome struct {
		deleted, repacked                  uint64
		deletedBytes, freed, repackedBytes int64
		packsDeleted, packsRewritten       int
	}
	o := func(r Report) outcome {
		return outcome{r.ChunksDeleted, r.ChunksRepacked, r.BytesDeleted, r.BytesFreed, r.BytesRepacked, r.PacksDeleted, r.PacksRewritten}
	}
	if o(dry) != o(done) {
		t.Fatalf("dry run predicted %+v, the run did %+v", o(dry), o(done))
	}
	// Only the header of the pack the copies start is not foreseen.
	if d := done.PackBytesAfter - dry.PackBytesAfter; d < 0 || d > cas.PackHeaderSize {
		t.Fatalf("dry run predicted %d pack bytes after, the run left %d", dry.PackBytesAfter, done.PackBytesAfter)
	}
}

// A version committed after the walk (the fence reports it) keeps its
// chunks, even one that was garbage at the walk.
func TestRunFenceKeepsLateCommits(t *testing.T) {
	w := newWorld()
	late, size := w.refs.content("late", chunkID("e"), chunkID("x"))
	w.refs.version(1, "late", late, size, true)
	rep := w.run(t, DefaultOptions())
	wantPresent(t, w.store, true, "e", "x")
	wantPresent(t, w.store, false, "f", "g", "h", "y", "w")
	if rep.ChunksRemarked != 2 || rep.ChunksDeleted != 5 {
		t.Fatalf("remarked %d, deleted %d; want 2, 5", rep.ChunksRemarked, rep.ChunksDeleted)
	}
	if w.refs.fences == 0 {
		t.Fatal("deletions ran without the fence")
	}
	// Pack 3 keeps x, so it is not removed (one of two records live).
	if slices.Contains(w.store.removed, w.packs["p3"]) {
		t.Fatal("pack 3 removed although x is live")
	}
}

// Pins: a chunk pinned at the start and released before the sweep, and a
// chunk pinned while the sweep runs, are both kept.
func TestRunKeepsPinned(t *testing.T) {
	w := newWorld()
	w.store.beforeCheck = func() {
		w.pins.unpin(chunkID("d"))
		w.pins.pin(chunkID("f"))
	}
	rep := w.run(t, DefaultOptions())
	wantPresent(t, w.store, true, "d", "f")
	wantPresent(t, w.store, false, "e", "g", "h")
	if rep.ChunksPinned != 1 {
		t.Errorf("pinned %d at the sweep, want 1 (d)", rep.ChunksPinned)
	}
	for _, tr := range w.pins.trackers {
		if !tr.stopped {
			t.Error("tracker not stopped")
		}
	}
}

func TestRunRepackThreshold(t *testing.T) {
	// Pack A is 30 % live, pack B 60 %, pack C all dead.
	build := func() (*fakeStore, *fakeRefs) {
		s := newFakeStore()
		r := newFakeRefs("r")
		chunks := func(prefix string, n int) map[cas.ID]uint32 {
			m := map[cas.ID]uint32{}
			for i := range n {
				m[chunkID(prefix+string(rune('0'+i)))] = 100
			}
			return m
		}
		s.addPack(t0.Add(-2*time.Hour), chunks("A", 10))
		s.addPack(t0.Add(-2*time.Hour), chunks("B", 10))
		s.addPack(t0.Add(-2*time.Hour), chunks("C", 3))
		var live []cas.ID
		for i := range 3 {
			live = append(live, chunkID("A"+string(rune('0'+i))))
		}
		for i := range 6 {
			live = append(live, chunkID("B"+string(rune('0'+i))))
		}
		h, size := r.content("live", live...)
		r.version(1, "f", h, size, false)
		return s, r
	}
	for _, tc := range []struct {
		threshold float64
		repacked  []uint64
	}{
		{0, nil},
		{0.3, nil}, // 30 % is not under 30 %
		{0.5, []uint64{1}},
		{0.61, []uint64{1, 2}},
		{1, []uint64{1, 2}},
	} {
		s, r := build()
		rep, err := Run(context.Background(), s, r, nil, Options{RepackThreshold: tc.threshold, Clock: fixedClock(t0), Seed: testSeed})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(s.repacked, tc.repacked) || !slices.Equal(s.removed, []uint64{3}) {
			t.Errorf("threshold %v: repacked %v removed %v; want %v and [3]", tc.threshold, s.repacked, s.removed, tc.repacked)
		}
		if rep.PacksRewritten != len(tc.repacked) || rep.PacksDeleted != 1 {
			t.Errorf("threshold %v: report %d rewritten, %d deleted", tc.threshold, rep.PacksRewritten, rep.PacksDeleted)
		}
		if rep.ChunksDeleted != 7+4+3 {
			t.Errorf("threshold %v: deleted %d chunks, want 14", tc.threshold, rep.ChunksDeleted)
		}
	}
}

// The pack receiving appends is left alone while written within the
// margin, and compacted like any other once idle for it (and first, so
// that nothing is copied into it).
func TestRunActivePack(t *testing.T) {
	for _, tc := range []struct {
		written time.Duration
		active  bool
		removed bool
	}{
		{-10 * time.Second, true, false},
		{-10 * time.Second, false, true},
		{-2 * time.Minute, true, true},
	} {
		s := newFakeStore()
		num := s.addPack(t0.Add(tc.written), nil) // all its records orphans
		if tc.active {
			s.active = num
		}
		rep, err := Run(context.Background(), s, newFakeRefs("r"), nil, Options{Margin: time.Minute, RepackThreshold: 0.5, Clock: fixedClock(t0), Seed: testSeed})
		if err != nil {
			t.Fatal(err)
		}
		if (len(s.removed) == 1) != tc.removed || (rep.PacksDeleted == 1) != tc.removed {
			t.Errorf("pack written %v ago, active %v: removed %v, report %d; want removed=%v",
				-tc.written, tc.active, s.removed, rep.PacksDeleted, tc.removed)
		}
	}
}

func TestOptionsValidation(t *testing.T) {
	for _, o := range []Options{{Margin: -time.Second}, {RepackThreshold: -0.1}, {RepackThreshold: 1.5}} {
		if _, err := Run(context.Background(), newFakeStore(), newFakeRefs(), nil, o); err == nil || !strings.Contains(err.Error(), "gc:") {
			t.Errorf("Run(%+v) = %v, want an error", o, err)
		}
	}
	d := DefaultOptions()
	if d.Margin != time.Hour || d.RepackThreshold != 0.5 {
		t.Fatalf("DefaultOptions = %+v", d)
	}
}

// An error from the fence stops the collection and is returned wrapped.
func TestRunStopsOnReferenceError(t *testing.T) {
	w := newWorld()
	failing := &failingRefs{fakeRefs: w.refs}
	_, err := Run(context.Background(), w.store, failing, nil, Options{Clock: fixedClock(t0), Seed: testSeed})
	if err == nil || !strings.Contains(err.Error(), "committed since the walk") {
		t.Fatalf("Run with failing fence = %v", err)
	}
	wantPresent(t, w.store, true, "e", "f", "g")
}

type failingRefs struct{ *fakeRefs }

func (f *failingRefs) RefsSince(_ *badger.Txn, _ manifest.Watermark, _ func(manifest.Ref, []manifest.Chunk) error) (manifest.Watermark, error) {
	return nil, manifest.ErrCorrupt
}

package syncproto

import (
	"fmt"
	"math"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// ListRun is one run of a chunk list delta: skip Skip entries of the
// source, copy the next Copy, then insert the next Insert new entries.
type ListRun struct {
	Skip, Copy, Insert uint32
}

// ListDelta is a chunk list written as edits of a source list both sides
// have (a delta manifest): see ChunkListDelta in sync.proto.
type ListDelta struct {
	// SourcePath and SourceHash name the source version. In a ChunkList
	// answer SourcePath is empty: the source is the request's base.
	SourcePath string
	SourceHash cas.ID
	Runs       []ListRun
	New        []ChunkRef // the inserted entries, in order
}

// Len is the length of the list the delta makes, whatever its source.
func (d *ListDelta) Len() uint64 {
	var n uint64
	for _, r := range d.Runs {
		n += uint64(r.Copy) + uint64(r.Insert)
	}
	return n
}

// diffWindow is how far ahead in the source DiffChunkLists takes a lone
// matching entry; a match further away must start a run of matchRun
// entries, so that a chunk common to many places (zeros) does not drag the
// cursor to the end of the source and turn the rest into inserts.
const (
	diffWindow = 64
	matchRun   = 3
)

// DiffChunkLists returns the delta that turns source into target: the
// entries of target found in source, in order, are copied, the others
// inserted. It never fails; a delta larger than the target itself is the
// caller's to notice (see ListDeltaSize).
func DiffChunkLists(source, target []ChunkRef) *ListDelta {
	pos := make(map[ChunkRef][]int, len(source))
	for i, r := range source {
		pos[r] = append(pos[r], i)
	}
	// next finds the first position of r at or after cursor.
	next := func(r ChunkRef, cursor int) int {
		ps := pos[r]
		lo, hi := 0, len(ps)
		for lo < hi {
			mid := (lo + hi) / 2
			if ps[mid] < cursor {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo == len(ps) {
			return -1
		}
		return ps[lo]
	}
	d := &ListDelta{}
	var run ListRun
	cursor := 0
	flush := func() {
		if run != (ListRun{}) {
			d.Runs = append(d.Runs, run)
		}
		run = ListRun{}
	}
	for t := 0; t < len(target); t++ {
		p := next(target[t], cursor)
		if p >= 0 && p-cursor > diffWindow && !runsAt(source, target, p, t) {
			p = -1
		}
		switch {
		case p < 0:
			run.Insert++
			d.New = append(d.New, target[t])
		case p == cursor && run.Insert == 0:
			run.Copy++
			cursor++
		default:
			flush()
			run = ListRun{Skip: uint32(p - cursor), Copy: 1}
			cursor = p + 1
		}
	}
	flush()
	return d
}

// runsAt reports whether target from t matches source from p for
// matchRun entries.
func runsAt(source, target []ChunkRef, p, t int) bool {
	for k := range matchRun {
		if p+k >= len(source) || t+k >= len(target) || source[p+k] != target[t+k] {
			return false
		}
	}
	return true
}

// ApplyListDelta builds the list d makes from source. want is the length
// the caller was told (a proposal's chunk_count); maxChunk bounds every
// inserted entry's size. It refuses, with ErrBadRequest and before
// allocating the result, runs that leave the source or make another
// length, and counts past MaxChunkList.
func ApplyListDelta(source []ChunkRef, d *ListDelta, want uint64, maxChunk int) ([]ChunkRef, error) {
	if want > MaxChunkList {
		return nil, fmt.Errorf("%w: chunk list delta for %d entries, limit %d", ErrBadRequest, want, MaxChunkList)
	}
	var cursor, total, inserted uint64
	for i, r := range d.Runs {
		cursor += uint64(r.Skip) + uint64(r.Copy)
		if cursor > uint64(len(source)) {
			return nil, fmt.Errorf("%w: chunk list delta run %d reaches entry %d of a source of %d", ErrBadRequest, i, cursor, len(source))
		}
		total += uint64(r.Copy) + uint64(r.Insert)
		inserted += uint64(r.Insert)
		if total > want {
			return nil, fmt.Errorf("%w: chunk list delta makes more than the %d entries announced", ErrBadRequest, want)
		}
	}
	switch {
	case total != want:
		return nil, fmt.Errorf("%w: chunk list delta makes %d entries, %d announced", ErrBadRequest, total, want)
	case inserted != uint64(len(d.New)):
		return nil, fmt.Errorf("%w: chunk list delta inserts %d entries and carries %d", ErrBadRequest, inserted, len(d.New))
	}
	for _, r := range d.New {
		if r.Size == 0 || uint64(r.Size) > uint64(max(maxChunk, 0)) {
			return nil, fmt.Errorf("%w: chunk list delta: chunk %s of %d bytes, limit %d", ErrBadRequest, r.ID.Short(), r.Size, maxChunk)
		}
	}
	out := make([]ChunkRef, 0, want)
	cursor = 0
	added := d.New
	for _, r := range d.Runs {
		cursor += uint64(r.Skip)
		out = append(out, source[cursor:cursor+uint64(r.Copy)]...)
		cursor += uint64(r.Copy)
		out = append(out, added[:r.Insert]...)
		added = added[r.Insert:]
	}
	return out, nil
}

// EncodeListDelta returns the ChunkListDelta message of d.
func EncodeListDelta(d *ListDelta) *syncpb.ChunkListDelta {
	m := &syncpb.ChunkListDelta{
		SourcePath: d.SourcePath,
		Skip:       make([]uint32, len(d.Runs)),
		Copy:       make([]uint32, len(d.Runs)),
		Insert:     make([]uint32, len(d.Runs)),
		Ids:        make([]byte, 0, len(d.New)*cas.IDSize),
		Sizes:      make([]uint32, len(d.New)),
	}
	if !d.SourceHash.IsZero() {
		m.SourceHash = d.SourceHash[:]
	}
	for i, r := range d.Runs {
		m.Skip[i], m.Copy[i], m.Insert[i] = r.Skip, r.Copy, r.Insert
	}
	for i, r := range d.New {
		m.Ids = append(m.Ids, r.ID[:]...)
		m.Sizes[i] = r.Size
	}
	return m
}

// DecodeListDelta checks the shape of a ChunkListDelta message (its
// bounds, and as many sizes as IDs) and returns the delta. Whether the
// runs fit a source is ApplyListDelta's to check.
func DecodeListDelta(m *syncpb.ChunkListDelta) (*ListDelta, error) {
	n := len(m.GetSkip())
	switch {
	case n > MaxDeltaRuns:
		return nil, fmt.Errorf("%w: chunk list delta of %d runs, limit %d", ErrBadRequest, n, MaxDeltaRuns)
	case len(m.GetCopy()) != n || len(m.GetInsert()) != n:
		return nil, fmt.Errorf("%w: chunk list delta has %d skips, %d copies and %d inserts", ErrBadRequest, n, len(m.GetCopy()), len(m.GetInsert()))
	}
	if err := checkHash("chunk list delta: source_hash", m.GetSourceHash()); err != nil {
		return nil, err
	}
	ids, err := ParseIDs(m.GetIds(), MaxDeltaEntries)
	if err != nil {
		return nil, fmt.Errorf("chunk list delta: %w", err)
	}
	if len(m.GetSizes()) != len(ids) {
		return nil, fmt.Errorf("%w: chunk list delta has %d ids and %d sizes", ErrBadRequest, len(ids), len(m.GetSizes()))
	}
	d := &ListDelta{SourcePath: m.GetSourcePath(), Runs: make([]ListRun, n), New: make([]ChunkRef, len(ids))}
	copy(d.SourceHash[:], m.GetSourceHash())
	for i := range d.Runs {
		d.Runs[i] = ListRun{Skip: m.GetSkip()[i], Copy: m.GetCopy()[i], Insert: m.GetInsert()[i]}
	}
	for i, id := range ids {
		d.New[i] = ChunkRef{ID: id, Size: m.GetSizes()[i]}
	}
	return d, nil
}

// ListDeltaFits reports whether d can travel as one ChunkListDelta frame
// and is smaller than the whole list of n entries would be, the test a
// sender applies before choosing the delta.
func ListDeltaFits(d *ListDelta, n int) bool {
	if len(d.Runs) > MaxDeltaRuns || len(d.New) > MaxDeltaEntries {
		return false
	}
	// Per entry a whole list costs its ID and a size varint; per run a
	// delta costs three varints. Overestimate the delta, underestimate
	// the list: choose the delta only when it clearly wins.
	deltaCost := uint64(len(d.Runs))*3*5 + uint64(len(d.New))*(cas.IDSize+5) + 64
	listCost := uint64(n) * (cas.IDSize + 1)
	return deltaCost < listCost && deltaCost < math.MaxInt32
}

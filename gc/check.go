package gc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
)

// CheckStore is the chunk store side of a check. *cas.Store implements it.
type CheckStore interface {
	Check(ctx context.Context, readData bool) (cas.CheckReport, error)
	Has(ctx context.Context, ids []cas.ID) ([]bool, error)
	ForEachChunk(ctx context.Context, fn func(id cas.ID, loc cas.Location) error) error
}

// RepairStore is a CheckStore that can rebuild its index from its packs.
type RepairStore interface {
	CheckStore
	RebuildIndex(ctx context.Context) (cas.RebuildReport, error)
}

// CheckReferences is the metadata side of a check. *manifest.DB
// implements it.
type CheckReferences interface {
	ForEachRef(ctx context.Context, fn func(manifest.Ref) error) (manifest.Watermark, error)
	ChunkList(ctx context.Context, hash cas.ID) ([]manifest.Chunk, error)
	ListRoots(ctx context.Context) ([]manifest.Root, error)
}

// Problem kinds Check finds in the metadata; the chunk store's own are
// named by cas.ProblemKind (pack-missing, bad-entry, ...).
const (
	// ProblemMissingChunkList: a version or candidate names content
	// whose chunk list is not stored.
	ProblemMissingChunkList = "missing-chunk-list"
	// ProblemCorruptChunkList: the chunk list does not decode.
	ProblemCorruptChunkList = "corrupt-chunk-list"
	// ProblemMissingChunk: chunks of the content are not in the index.
	ProblemMissingChunk = "missing-chunk"
	// ProblemDamagedChunk: chunks of the content are indexed but their
	// records are damaged or gone (the store's check lists the details).
	ProblemDamagedChunk = "damaged-chunk"
)

// Problem is one inconsistency. Fields that do not apply are empty.
type Problem struct {
	Kind string `json:"kind"`
	// Root, Path, Seq (a version) or Candidate name what is affected.
	Root      string `json:"root,omitempty"`
	Path      string `json:"path,omitempty"`
	Seq       uint64 `json:"seq,omitempty"`
	Candidate bool   `json:"candidate,omitempty"`
	// Hash is the content, Chunks the first few chunks concerned (all
	// of them are counted in ChunkCount).
	Hash       string   `json:"hash,omitempty"`
	Chunks     []string `json:"chunks,omitempty"`
	ChunkCount int      `json:"chunk_count,omitempty"`
	// Pack and Offset locate a problem inside the chunk store.
	Pack   uint64 `json:"pack,omitempty"`
	Offset int64  `json:"offset,omitempty"`
	Detail string `json:"detail,omitempty"`
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.Kind)
	if p.Root != "" {
		fmt.Fprintf(&b, ": root %q", p.Root)
	}
	if p.Path != "" {
		fmt.Fprintf(&b, " file %q", p.Path)
	}
	switch {
	case p.Candidate:
		b.WriteString(" conflict candidate")
	case p.Seq != 0:
		fmt.Fprintf(&b, " version %d", p.Seq)
	}
	if p.Hash != "" {
		fmt.Fprintf(&b, " content %s", p.Hash)
	}
	if p.Pack != 0 {
		fmt.Fprintf(&b, " pack %d", p.Pack)
		if p.Offset != 0 {
			fmt.Fprintf(&b, " at %d", p.Offset)
		}
	}
	if p.ChunkCount > 0 {
		fmt.Fprintf(&b, ": %d chunks (%s", p.ChunkCount, strings.Join(p.Chunks, ", "))
		if p.ChunkCount > len(p.Chunks) {
			b.WriteString(", ...")
		}
		b.WriteString(")")
	} else if len(p.Chunks) > 0 {
		fmt.Fprintf(&b, " chunk %s", p.Chunks[0])
	}
	if p.Detail != "" {
		b.WriteString(": " + p.Detail)
	}
	return b.String()
}

// CheckReport is the result of Check.
type CheckReport struct {
	OK         bool  `json:"ok"`
	ReadData   bool  `json:"read_data"`
	DurationMS int64 `json:"duration_ms"`

	Roots      int    `json:"roots"`
	Versions   uint64 `json:"versions"`
	Candidates uint64 `json:"candidates"`
	// Contents and ChunksReferenced count the distinct contents checked
	// and their chunk references.
	Contents         uint64 `json:"contents"`
	ChunksReferenced uint64 `json:"chunks_referenced"`

	ChunksIndexed uint64 `json:"chunks_indexed"`
	Packs         int    `json:"packs"`
	Records       uint64 `json:"records"`
	ScannedBytes  int64  `json:"scanned_bytes"`
	// OrphanChunks are indexed but referenced by nothing: garbage for the
	// next collection, not errors. (Counted through a Bloom filter, so
	// a few may be missed.) OrphanRecords and OrphanBytes are records in
	// packs that no entry points at.
	OrphanChunks  uint64 `json:"orphan_chunks"`
	OrphanRecords uint64 `json:"orphan_records"`
	OrphanBytes   int64  `json:"orphan_bytes"`

	Problems []Problem `json:"problems"`
	// Repair is set by Repair.
	Repair *RepairReport `json:"repair,omitempty"`
}

// RepairReport says what Repair rebuilt, and what is lost for good.
type RepairReport struct {
	Packs        int    `json:"packs"`
	Records      uint64 `json:"records"`
	Indexed      uint64 `json:"indexed"`
	Duplicates   uint64 `json:"duplicates"`
	BadRegions   int    `json:"bad_regions"`
	SkippedBytes int64  `json:"skipped_bytes"`
	// Lost are the versions and candidates whose content cannot be read
	// back even from the rebuilt index.
	Lost []Problem `json:"lost"`
}

// shownChunks bounds the chunk IDs a problem lists.
const shownChunks = 4

// verdictCache bounds the contents whose verdict is remembered, so a
// content many versions share is looked up once (mostly).
const verdictCache = 1 << 16

// verdict is what checking one content found: nothing, or a problem
// without its root/path/version.
type verdict struct {
	problem *Problem
}

// Check verifies metadata against the index and the index against the
// packs (see the package documentation); with readData every chunk is
// decoded and hashed again. Run it when no collection runs: a chunk
// deleted meanwhile would look missing.
func Check(ctx context.Context, store CheckStore, refs CheckReferences, readData bool) (CheckReport, error) {
	start := time.Now()
	rep := CheckReport{ReadData: readData, Problems: []Problem{}}
	crep, err := store.Check(ctx, readData)
	if err != nil {
		return rep, fmt.Errorf("gc: check chunk store: %w", err)
	}
	rep.ChunksIndexed, rep.Packs, rep.Records, rep.ScannedBytes = crep.Chunks, crep.Packs, crep.Records, crep.ScannedBytes
	rep.OrphanRecords, rep.OrphanBytes = crep.OrphanRecords, crep.OrphanBytes
	damaged := cas.NewIDSet(crep.Affected()...)
	for _, p := range crep.Problems {
		pr := Problem{Kind: p.Kind.String(), Pack: p.Pack, Offset: p.Offset, Detail: p.Detail}
		if !p.ID.IsZero() {
			pr.Chunks = []string{p.ID.String()}
		}
		rep.Problems = append(rep.Problems, pr)
	}

	roots, err := refs.ListRoots(ctx)
	if err != nil {
		return rep, fmt.Errorf("gc: check: list roots: %w", err)
	}
	rep.Roots = len(roots)
	names := make(map[manifest.RootID]string, len(roots))
	for _, r := range roots {
		names[r.ID] = r.Name
	}

	marks := newMarkSet(crep.Chunks, rand.Uint64()|1)
	verdicts := make(map[cas.ID]verdict)
	_, err = refs.ForEachRef(ctx, func(r manifest.Ref) error {
		if r.Candidate {
			rep.Candidates++
		} else {
			rep.Versions++
		}
		if !r.HasChunks() {
			return nil
		}
		v, seen := verdicts[r.Hash]
		if !seen {
			var err error
			if v, err = checkContent(ctx, store, refs, marks, damaged, r.Hash, &rep); err != nil {
				return err
			}
			if len(verdicts) >= verdictCache {
				clear(verdicts)
			}
			verdicts[r.Hash] = v
		}
		if v.problem != nil {
			p := *v.problem
			p.Root, p.Path, p.Seq, p.Candidate = names[r.Root], r.Path, r.Seq, r.Candidate
			if p.Root == "" {
				p.Root = r.Root.String()
			}
			rep.Problems = append(rep.Problems, p)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("gc: check references: %w", err)
	}
	err = store.ForEachChunk(ctx, func(id cas.ID, _ cas.Location) error {
		if !marks.Has(id) {
			rep.OrphanChunks++
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("gc: check: count orphans: %w", err)
	}
	rep.OK = len(rep.Problems) == 0
	rep.DurationMS = time.Since(start).Milliseconds()
	return rep, nil
}

// checkContent checks one content: its chunk list, and each chunk's
// presence in the index and health in the packs.
func checkContent(ctx context.Context, store CheckStore, refs CheckReferences, marks *markSet, damaged cas.IDSet, hash cas.ID, rep *CheckReport) (verdict, error) {
	rep.Contents++
	chunks, err := refs.ChunkList(ctx, hash)
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return verdict{&Problem{Kind: ProblemMissingChunkList, Hash: hash.String()}}, nil
	case errors.Is(err, manifest.ErrCorrupt):
		return verdict{&Problem{Kind: ProblemCorruptChunkList, Hash: hash.String(), Detail: err.Error()}}, nil
	case err != nil:
		return verdict{}, fmt.Errorf("chunk list %s: %w", hash, err)
	}
	ids := make([]cas.ID, len(chunks))
	for i, c := range chunks {
		ids[i] = c.ID
		marks.Add(c.ID)
	}
	rep.ChunksReferenced += uint64(len(ids))
	present, err := store.Has(ctx, ids)
	if err != nil {
		return verdict{}, fmt.Errorf("look up chunks of %s: %w", hash, err)
	}
	var missing, bad []cas.ID
	for i, ok := range present {
		switch {
		case !ok:
			missing = append(missing, ids[i])
		case damaged.Has(ids[i]):
			bad = append(bad, ids[i])
		}
	}
	switch {
	case len(missing) > 0:
		return verdict{chunkProblem(ProblemMissingChunk, hash, missing, len(bad))}, nil
	case len(bad) > 0:
		return verdict{chunkProblem(ProblemDamagedChunk, hash, bad, 0)}, nil
	}
	return verdict{}, nil
}

func chunkProblem(kind string, hash cas.ID, ids []cas.ID, alsoDamaged int) *Problem {
	p := &Problem{Kind: kind, Hash: hash.String(), ChunkCount: len(ids)}
	seen := cas.IDSet{}
	for _, id := range ids {
		if len(p.Chunks) == shownChunks {
			break
		}
		if !seen.Has(id) {
			seen.Insert(id)
			p.Chunks = append(p.Chunks, id.String())
		}
	}
	if alsoDamaged > 0 {
		p.Detail = fmt.Sprintf("and %d more chunks damaged", alsoDamaged)
	}
	return p
}

// Repair rebuilds the index from the packs (cas RebuildIndex: every
// valid record indexed again, damaged stretches skipped), then checks,
// and lists in Repair.Lost the versions and candidates whose content is
// still not readable: those chunks exist nowhere. Run it when no
// collection runs.
func Repair(ctx context.Context, store RepairStore, refs CheckReferences, readData bool) (CheckReport, error) {
	rb, err := store.RebuildIndex(ctx)
	if err != nil {
		return CheckReport{}, fmt.Errorf("gc: repair: %w", err)
	}
	rep, err := Check(ctx, store, refs, readData)
	if err != nil {
		return rep, err
	}
	rr := &RepairReport{
		Packs: rb.Packs, Records: rb.Records, Indexed: rb.Indexed, Duplicates: rb.Duplicates,
		BadRegions: len(rb.BadRegions), SkippedBytes: rb.SkippedBytes, Lost: []Problem{},
	}
	for _, p := range rep.Problems {
		if p.Path != "" {
			rr.Lost = append(rr.Lost, p)
		}
	}
	rep.Repair = rr
	return rep, nil
}

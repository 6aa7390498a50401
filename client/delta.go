package client

import (
	"context"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// DeltaRemote is what delta transfers need from a session beyond
// [Remote]; *syncproto.Client has it. An Engine finds it by type
// assertion: without it, pushes send whole chunk lists and whole chunks,
// and pulls fetch whole lists.
type DeltaRemote interface {
	ProposeDelta(ctx context.Context, req *syncpb.ProposeRequest, d *syncproto.ListDelta) (*syncpb.CommitResponse, error)
	Signatures(ctx context.Context, root string, srcs []syncproto.SignatureSource) ([][]byte, error)
	ChunkListFrom(ctx context.Context, root, path string, hash cas.ID, basePath string, baseHash cas.ID, base []syncproto.ChunkRef) (int64, []syncproto.ChunkRef, error)
	GetChunksDict(ctx context.Context, root string, ids []cas.ID, dicts [][]cas.ID, fn func(syncproto.Chunk) error) error
}

var _ DeltaRemote = (*syncproto.Client)(nil)

func (e *Engine) deltaRemote() (DeltaRemote, bool) {
	d, ok := e.remote.(DeltaRemote)
	return d, ok
}

// listSource is a version the server has whose chunk list a proposal is
// written against: the file's own base, or (for a copy or a rename) a
// version of another path with the same content.
type listSource struct {
	path   string
	hash   cas.ID
	chunks []syncproto.ChunkRef
}

// pushPlan is how one pending record travels.
type pushPlan struct {
	rec    *FileRecord
	source *listSource // nil: the whole list, every chunk asked about
	// diff is the record's list against source's, which says what chunks
	// replaced what; delta is diff when it is also smaller than the list,
	// and is then what the proposal sends.
	diff  *syncproto.ListDelta
	delta *syncproto.ListDelta
}

// planPush chooses a delta source for each record that has one: its own
// base when the local state knows the base's chunk list, else another
// path whose base version has the same content (a copy, or the new name
// of a rename). Only records whose delta is smaller than their list keep
// it.
func (e *Engine) planPush(ctx context.Context, r Root, recs []FileRecord, copies *copySources) ([]pushPlan, error) {
	plans := make([]pushPlan, len(recs))
	var orphans []int // new content with no base of its own
	for i := range recs {
		rec := &recs[i]
		plans[i].rec = rec
		if rec.Deleted {
			continue
		}
		base, err := e.st.BaseChunks(ctx, r.Name, rec)
		if err != nil {
			return nil, err
		}
		if base != nil {
			plans[i].source = &listSource{path: rec.Path, hash: rec.BaseHash, chunks: base}
			continue
		}
		if len(rec.Chunks) > 0 {
			orphans = append(orphans, i)
		}
	}
	if len(orphans) > 0 {
		if err := e.findCopies(ctx, r, recs, plans, orphans, copies); err != nil {
			return nil, err
		}
	}
	for i := range plans {
		pl := &plans[i]
		if pl.source == nil {
			continue
		}
		d := syncproto.DiffChunkLists(pl.source.chunks, pl.rec.Chunks)
		d.SourceHash = pl.source.hash
		if pl.source.path != pl.rec.Path {
			d.SourcePath = pl.source.path
		}
		pl.diff = d
		if syncproto.ListDeltaFits(d, len(pl.rec.Chunks)) {
			pl.delta = d
		}
	}
	return plans, nil
}

// copySources finds, for one push, the records whose base version has a
// given content: the delta source of a copy, or of a rename's new name
// (a deletion and a new file in the same push). It is built once per
// push, for the content hashes of all the push's pending records: before
// the first page of a push that takes several (a deletion pushed in an
// early page must still be found by a rename in a later one), else on
// first need.
type copySources struct {
	built bool
	paths map[cas.ID][]string // at most two per hash: one is not the copy's own
}

// findCopies gives the records at orphans a source with their content:
// another record of the root whose base version has the same hash. The
// records of the page are looked at first, then, if some remain, those of
// cs.
func (e *Engine) findCopies(ctx context.Context, r Root, recs []FileRecord, plans []pushPlan, orphans []int, cs *copySources) error {
	want := make(map[cas.ID][]int, len(orphans))
	for _, i := range orphans {
		want[recs[i].Hash] = append(want[recs[i].Hash], i)
	}
	remaining := len(orphans)
	found := func(path string, hash cas.ID) {
		for _, i := range want[hash] {
			if plans[i].source == nil && recs[i].Path != path {
				plans[i].source = &listSource{path: path, hash: hash, chunks: recs[i].Chunks}
				remaining--
			}
		}
	}
	for i := range recs {
		if recs[i].BaseSeq != 0 {
			found(recs[i].Path, recs[i].BaseHash)
		}
	}
	if remaining == 0 {
		return nil
	}
	if !cs.built {
		if err := cs.build(ctx, e.st, r.Name); err != nil {
			return err
		}
	}
	for hash := range want {
		for _, path := range cs.paths[hash] {
			found(path, hash)
		}
	}
	return nil
}

func (cs *copySources) build(ctx context.Context, st *State, root string) error {
	want := make(cas.IDSet)
	err := st.pendingFiles(ctx, root, "", false, func(rec FileRecord) error {
		if !rec.Deleted {
			want.Insert(rec.Hash)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cs.paths = map[cas.ID][]string{}
	err = st.Files(ctx, root, false, func(rec FileRecord) error {
		if rec.BaseSeq != 0 && want.Has(rec.BaseHash) && len(cs.paths[rec.BaseHash]) < 2 {
			cs.paths[rec.BaseHash] = append(cs.paths[rec.BaseHash], rec.Path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	cs.built = true
	return nil
}

// replacement is a stretch of a new chunk list that took the place of a
// stretch of its source's: the chunks a new chunk most likely changed from.
type replacement struct {
	target   []syncproto.ChunkRef
	replaced []syncproto.ChunkRef
}

// replacements walks a delta and pairs each run of inserted entries with
// the source entries dropped right after it (the next run's skip, or the
// source's tail after the last run): an edit inside a chunk shows as such
// a pair, whatever the chunker did around it.
func replacements(source []syncproto.ChunkRef, d *syncproto.ListDelta) []replacement {
	var out []replacement
	var cursor uint64
	added := d.New
	for i, run := range d.Runs {
		cursor += uint64(run.Skip) + uint64(run.Copy)
		if cursor > uint64(len(source)) || uint64(run.Insert) > uint64(len(added)) {
			return out // not a delta of this source; nothing to pair
		}
		ins := added[:run.Insert]
		added = added[run.Insert:]
		end := uint64(len(source))
		if i+1 < len(d.Runs) {
			end = min(end, cursor+uint64(d.Runs[i+1].Skip))
		}
		if len(ins) > 0 && end > cursor {
			out = append(out, replacement{target: ins, replaced: source[cursor:end]})
		}
	}
	return out
}

// deltaChoice is what a new chunk can be encoded against: the source
// chunks around the same place in the stretch it replaced.
type deltaChoice struct {
	path      string // of the version the sources are in
	hash      cas.ID
	sources   []syncproto.ChunkRef
	blockSize int
}

// deltaChoices maps each inserted chunk of plan's delta to the source
// chunks it is likely an edit of: those overlapping the same relative
// bytes of the replaced stretch, give or take one chunk, at most
// MaxDeltaSources.
func deltaChoices(pl *pushPlan) map[cas.ID]deltaChoice {
	if pl.diff == nil || pl.source == nil || pl.source.path != pl.rec.Path {
		return nil
	}
	out := map[cas.ID]deltaChoice{}
	for _, rp := range replacements(pl.source.chunks, pl.diff) {
		var total int64
		for _, c := range rp.replaced {
			total += int64(c.Size)
		}
		bs := syncproto.SignatureBlockSize(int(total / int64(len(rp.replaced))))
		for id, srcs := range aroundSources(rp) {
			out[id] = deltaChoice{path: pl.source.path, hash: pl.source.hash, sources: srcs, blockSize: bs}
		}
	}
	return out
}

// aroundSources picks, for each new chunk of a replacement, the replaced
// chunks overlapping the same relative bytes give or take the new chunk's
// size, at most MaxDeltaSources: where an edit inside a chunk left most of
// its bytes.
func aroundSources(rp replacement) map[cas.ID][]syncproto.ChunkRef {
	out := map[cas.ID][]syncproto.ChunkRef{}
	var at int64
	for _, c := range rp.target {
		lo, hi := at-int64(c.Size), at+2*int64(c.Size)
		at += int64(c.Size)
		var srcs []syncproto.ChunkRef
		var off int64
		for _, s := range rp.replaced {
			if off < hi && off+int64(s.Size) > lo && len(srcs) < syncproto.MaxDeltaSources {
				srcs = append(srcs, s)
			}
			off += int64(s.Size)
		}
		if len(srcs) > 0 {
			out[c.ID] = srcs
		}
	}
	return out
}

// signDeltas asks the server for the signatures of the sources of the
// chunks in choices and returns, per chunk, its delta sources ready for
// syncproto.EncodeDelta. A server that cannot give them is not an error:
// those chunks travel whole.
func (e *Engine) signDeltas(ctx context.Context, dr DeltaRemote, root string, choices map[cas.ID]deltaChoice) map[cas.ID][]syncproto.DeltaSource {
	type key struct {
		path string
		hash cas.ID
		bs   int
	}
	index := map[key]int{}
	var reqs []syncproto.SignatureSource
	type at struct{ req, pos int }
	where := map[key]map[cas.ID]at{}
	for _, ch := range choices {
		k := key{ch.path, ch.hash, ch.blockSize}
		i, ok := index[k]
		if !ok {
			i = len(reqs)
			index[k] = i
			reqs = append(reqs, syncproto.SignatureSource{Path: ch.path, Hash: ch.hash, BlockSize: ch.blockSize})
			where[k] = map[cas.ID]at{}
		}
		for _, s := range ch.sources {
			if _, ok := where[k][s.ID]; !ok {
				where[k][s.ID] = at{i, len(reqs[i].IDs)}
				reqs[i].IDs = append(reqs[i].IDs, s.ID)
			}
		}
	}
	if len(reqs) == 0 {
		return nil
	}
	sigs, err := dr.Signatures(ctx, root, reqs)
	if err != nil {
		return nil
	}
	// The answers come in request order: flatten the positions.
	start := make([]int, len(reqs))
	n := 0
	for i, r := range reqs {
		start[i] = n
		n += len(r.IDs)
	}
	if len(sigs) != n {
		return nil
	}
	out := make(map[cas.ID][]syncproto.DeltaSource, len(choices))
	for id, ch := range choices {
		k := key{ch.path, ch.hash, ch.blockSize}
		srcs := make([]syncproto.DeltaSource, 0, len(ch.sources))
		for _, s := range ch.sources {
			a := where[k][s.ID]
			srcs = append(srcs, syncproto.DeltaSource{ID: s.ID, Size: int(s.Size), BlockSize: ch.blockSize, Signature: sigs[start[a.req]+a.pos]})
		}
		out[id] = srcs
	}
	return out
}

package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// chunkSource is where a chunk to upload lives in the local tree: read
// again from the file by offset when it is sent, so an upload never holds
// more than one batch of chunks in memory.
type chunkSource struct {
	id   cas.ID
	path string
	off  int64
	size uint32
	// stat is the file's stat when the chunk was hashed: a file whose
	// stat differs when it is opened for the upload has changed.
	stat FileStat
}

// push proposes every pending local change of root: it uploads the chunks
// the server lacks, then proposes each file on its base. It goes through
// the pending records a page at a time, so that memory holds one page's
// chunk lists however large the change.
func (e *Engine) push(ctx context.Context, r Root, p *pass) error {
	copies := &copySources{}
	after := ""
	for first := true; ; first = false {
		recs, more, err := e.st.PendingPage(ctx, r.Name, after, pushPageFiles, pushPageChunks)
		if err != nil {
			return err
		}
		if _, ok := e.deltaRemote(); ok && more && first {
			if err := copies.build(ctx, e.st, r.Name); err != nil {
				return err
			}
		}
		if len(recs) > 0 {
			if err := e.pushPage(ctx, r, recs, copies, p); err != nil {
				return err
			}
			after = recs[len(recs)-1].Path
		}
		if !more {
			return nil
		}
	}
}

// A push page holds at most pushPageFiles records and, past its first,
// pushPageChunks chunk list entries (36 bytes each in memory). Variables
// for tests.
var (
	pushPageFiles  = 16384
	pushPageChunks = 1 << 20
)

// pushPage pushes the pending records recs.
func (e *Engine) pushPage(ctx context.Context, r Root, recs []FileRecord, copies *copySources, p *pass) error {
	var live []FileRecord
	for _, rec := range recs {
		if rec.Deleted && rec.BaseSeq == 0 {
			// Created and deleted before the server ever saw it.
			if err := e.st.Accept(ctx, r.Name, rec.Path, rec.LastUpdate, 0, cas.ID{}); err != nil {
				return err
			}
			continue
		}
		if err := relpath.Check(rec.Path); err != nil {
			e.warn(p, rec.Path, err)
			continue
		}
		live = append(live, rec)
	}
	var plans []pushPlan
	if _, ok := e.deltaRemote(); ok {
		var err error
		if plans, err = e.planPush(ctx, r, live, copies); err != nil {
			return err
		}
	} else {
		plans = plainPlans(live)
	}
	// Groups of files go through upload and proposal each on their own,
	// a few at once, so the proposals of one overlap the uploads of the
	// next.
	claims := &chunkClaims{m: map[cas.ID]chan struct{}{}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(groupsInFlight)
	for _, group := range groupPlans(plans) {
		g.Go(func() error { return e.pushGroup(gctx, r, group, claims, p) })
	}
	return g.Wait()
}

// groupsInFlight is how many groups of a push upload or propose at once.
const groupsInFlight = 3

// A group holds at most groupFiles files and, past its first file,
// groupBytes of content. Variables for tests.
var (
	groupFiles       = 2 * batchProposals
	groupBytes int64 = 32 << 20
)

// groupPlans cuts plans into consecutive groups.
func groupPlans(plans []pushPlan) [][]pushPlan {
	var groups [][]pushPlan
	start, bytes := 0, int64(0)
	for i := range plans {
		size := plans[i].rec.Stat.Size
		if i > start && (i-start == groupFiles || bytes+size > groupBytes) {
			groups = append(groups, plans[start:i])
			start, bytes = i, 0
		}
		bytes += size
	}
	if start < len(plans) {
		groups = append(groups, plans[start:])
	}
	return groups
}

// chunkClaims says which group of a push uploads each chunk, so a chunk
// shared by two groups travels once and the second group's proposals wait
// for it.
type chunkClaims struct {
	mu sync.Mutex
	m  map[cas.ID]chan struct{} // closed once the claiming group's upload is done
}

// claim takes id for the caller, or returns the channel of the group that
// has it.
func (c *chunkClaims) claim(id cas.ID) (mine chan struct{}, theirs chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.m[id]; ok {
		return nil, ch
	}
	ch := make(chan struct{})
	c.m[id] = ch
	return ch, nil
}

// pushGroup uploads what the server lacks of a group's files, then
// proposes them: small files in batches, the others one by one.
func (e *Engine) pushGroup(ctx context.Context, r Root, plans []pushPlan, claims *chunkClaims, p *pass) error {
	changed, err := e.uploadPlans(ctx, r, plans, claims, p)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.opts.Proposals)
	br, batching := e.batchRemote()
	var batch []*pushPlan
	batchEntries := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		items := batch
		batch, batchEntries = nil, 0
		g.Go(func() error { return e.proposeBatch(gctx, br, r, items, p) })
	}
	for i := range plans {
		pl := &plans[i]
		if changed[pl.rec.Path] {
			continue // changed while uploading: the next scan sees it
		}
		n := len(pl.rec.Chunks)
		if !batching || n > maxBatchedChunks {
			g.Go(func() error { return e.propose(gctx, r, pl, p) })
			continue
		}
		if len(batch) == batchProposals || batchEntries+n > syncproto.MaxBatchEntries {
			flush()
		}
		batch = append(batch, pl)
		batchEntries += n
	}
	flush()
	return g.Wait()
}

// A file of at most maxBatchedChunks chunks is proposed in a batch of at
// most batchProposals files (well under the frame limit with the longest
// paths); a longer list travels in its own transaction, as a delta when it
// has one.
const (
	maxBatchedChunks = 16
	batchProposals   = 256
)

// BatchRemote proposes many files in one transaction (see
// syncproto.Client.ProposeBatch).
type BatchRemote interface {
	ProposeBatch(ctx context.Context, root string, items []syncproto.BatchProposal) ([]syncproto.BatchResult, error)
}

var _ BatchRemote = (*syncproto.Client)(nil)

// batchRemote returns the remote's batch proposals, unless it has none or
// its server answered that it takes none.
func (e *Engine) batchRemote() (BatchRemote, bool) {
	if e.noBatches.Load() {
		return nil, false
	}
	b, ok := e.remote.(BatchRemote)
	return b, ok
}

// proposeBatch proposes plans in one transaction and records each
// outcome. An item the server could not take as it was (chunks missing,
// or a server without batches) is proposed again on its own, which
// uploads what is missing.
func (e *Engine) proposeBatch(ctx context.Context, br BatchRemote, r Root, plans []*pushPlan, p *pass) error {
	items := make([]syncproto.BatchProposal, len(plans))
	for i, pl := range plans {
		items[i] = syncproto.BatchProposal{Request: proposal(r.Name, pl.rec)}
		if !pl.rec.Deleted {
			items[i].Chunks = pl.rec.Chunks
		}
	}
	results, err := br.ProposeBatch(ctx, r.Name, items)
	if errors.Is(err, syncproto.ErrUnsupported) {
		e.noBatches.Store(true)
		results, err = make([]syncproto.BatchResult, len(plans)), nil
		for i := range results {
			results[i].Err = syncproto.ErrUnsupported
		}
	}
	if err != nil {
		return err
	}
	var accepted []Acceptance
	var acceptedFrom []int // results index of each accepted item
	for i, res := range results {
		pl := plans[i]
		if errors.Is(res.Err, syncproto.ErrMissingChunks) || errors.Is(res.Err, syncproto.ErrUnsupported) {
			if err := e.propose(ctx, r, pl, p); err != nil {
				return err
			}
			continue
		}
		if res.Err == nil && res.Commit.GetOutcome() != syncpb.CommitResponse_OUTCOME_SUPERSEDED {
			if a, err := acceptance(pl.rec, res.Commit); err == nil {
				accepted = append(accepted, a)
				acceptedFrom = append(acceptedFrom, i)
				continue
			} // settle reports a head it cannot read
		}
		if err := e.settle(ctx, r, pl.rec, res.Commit, res.Err, p); err != nil {
			return err
		}
	}
	if err := e.st.AcceptMany(ctx, r.Name, accepted); err != nil {
		return err
	}
	for _, i := range acceptedFrom {
		noteAccepted(p, plans[i].rec, results[i].Commit)
	}
	return nil
}

// acceptance is what the state records for a proposal of rec that the
// server accepted (committed or found converged) with resp.
func acceptance(rec *FileRecord, resp *syncpb.CommitResponse) (Acceptance, error) {
	head := resp.GetHead()
	hash, err := headHash(head)
	if err != nil {
		return Acceptance{}, fmt.Errorf("%w: commit of %q: head hash: %w", syncproto.ErrBadRequest, rec.Path, err)
	}
	return Acceptance{Path: rec.Path, LastUpdate: rec.LastUpdate, Seq: head.GetSeq(), Hash: hash}, nil
}

// plainPlans are plans without delta sources: whole lists, every chunk
// asked about.
func plainPlans(recs []FileRecord) []pushPlan {
	plans := make([]pushPlan, len(recs))
	for i := range recs {
		plans[i].rec = &recs[i]
	}
	return plans
}

// upload sends the chunks of recs that the server lacks, whole. It
// returns the paths whose local content no longer matches their chunk
// list.
func (e *Engine) upload(ctx context.Context, r Root, recs []FileRecord, p *pass) (map[string]bool, error) {
	return e.uploadPlans(ctx, r, plainPlans(recs), nil, p)
}

// uploadPlans sends the chunks of the plans' records that the server
// lacks. The chunks of a plan's delta source are the server's already and
// are not asked about; a new chunk that replaced chunks of its file's base
// travels as a delta against them when the server gives their signatures
// and that is smaller. It returns the paths whose local content no longer
// matches their chunk list. With claims, a chunk another group of the
// push claimed is left to it and waited for before returning; without,
// every chunk is asked about.
func (e *Engine) uploadPlans(ctx context.Context, r Root, plans []pushPlan, claims *chunkClaims, p *pass) (map[string]bool, error) {
	known := make(cas.IDSet)
	for _, pl := range plans {
		if pl.source != nil {
			for _, c := range pl.source.chunks {
				known.Insert(c.ID)
			}
		}
	}
	seen := make(cas.IDSet)
	var srcs []chunkSource
	var wholes []wholeSpan
	choices := map[cas.ID]deltaChoice{}
	skipped := 0
	var mine, theirs []chan struct{}
	defer func() {
		// Released even on failure: a group waiting for these chunks
		// then asks the server, which says they are missing.
		for _, ch := range mine {
			close(ch)
		}
	}()
	for i := range plans {
		rec := plans[i].rec
		if rec.Deleted {
			continue
		}
		var off int64
		start := len(srcs)
		for _, c := range rec.Chunks {
			switch {
			case seen.Has(c.ID):
			case known.Has(c.ID):
				seen.Insert(c.ID)
				skipped++
			default:
				seen.Insert(c.ID)
				if claims != nil {
					m, t := claims.claim(c.ID)
					if t != nil {
						theirs = append(theirs, t)
						break
					}
					mine = append(mine, m)
				}
				srcs = append(srcs, chunkSource{id: c.ID, path: rec.Path, off: off, size: c.Size, stat: rec.Stat})
			}
			off += int64(c.Size)
		}
		if n := len(rec.Chunks); n > 1 && len(srcs)-start == n {
			// Every chunk of the file is this group's to send, once
			// each: if the server lacks them all, they can go as one
			// run that the server hashes as it receives it.
			wholes = append(wholes, wholeSpan{hash: rec.Hash, start: start, end: len(srcs)})
		}
		for id, ch := range deltaChoices(&plans[i]) {
			choices[id] = ch
		}
	}
	p.count(func(s *Stats) { s.ChunksSkipped += skipped })
	changed, err := e.uploadSources(ctx, r, srcs, wholes, choices, p)
	if err != nil {
		return nil, err
	}
	// Released before waiting for the others: two groups that each wait
	// for a chunk of the other must not wait forever.
	for _, ch := range mine {
		close(ch)
	}
	mine = nil
	for _, ch := range theirs {
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return changed, nil
}

// wholeSpan is the chunks of one file among an upload's sources,
// srcs[start:end]: its whole chunk list, in order.
type wholeSpan struct {
	hash       cas.ID
	start, end int
}

// uploadBatch is what one PutChunks stream sends: chunks, and the runs of
// them that are whole files (syncproto.WholeRun).
type uploadBatch struct {
	srcs []chunkSource
	runs []syncproto.WholeRun
}

// uploadSources sends the sources the server lacks in batches of about
// UploadBatchBytes, several at once. A file of wholes whose chunks the
// server lacks all goes whole in one batch (alone when larger than a
// batch), named as a run, so that the server hashes it as it arrives
// instead of reading it back when it is proposed.
func (e *Engine) uploadSources(ctx context.Context, r Root, srcs []chunkSource, wholes []wholeSpan, choices map[cas.ID]deltaChoice, p *pass) (map[string]bool, error) {
	changed := make(map[string]bool)
	if len(srcs) == 0 {
		return changed, nil
	}
	have, err := e.haveSources(ctx, r, srcs)
	if err != nil {
		return nil, err
	}
	var batches []uploadBatch
	var cur uploadBatch
	curBytes := 0
	loose := uint32(0) // chunks in cur since its last run
	skipped := 0
	var planned int64 // raw bytes to send, for the progress listener
	wanted := map[cas.ID]deltaChoice{}
	flush := func() {
		if len(cur.srcs) > 0 {
			batches = append(batches, cur)
			cur, curBytes, loose = uploadBatch{}, 0, 0
		}
	}
	flushIfOver := func(n int) {
		if curBytes+n > e.opts.UploadBatchBytes {
			flush()
		}
	}
	add := func(s chunkSource) {
		if ch, ok := choices[s.id]; ok {
			wanted[s.id] = ch
		}
		cur.srcs = append(cur.srcs, s)
		curBytes += int(s.size)
		planned += int64(s.size)
	}
	for i := 0; i < len(srcs); {
		if len(wholes) > 0 && wholes[0].start == i {
			w := wholes[0]
			wholes = wholes[1:]
			if !slices.Contains(have[w.start:w.end], true) {
				n := 0
				for _, s := range srcs[w.start:w.end] {
					n += int(s.size)
				}
				if flushIfOver(n); len(cur.runs) == syncproto.MaxWholeRuns {
					flush()
				}
				cur.runs = append(cur.runs, syncproto.WholeRun{Skip: loose, Hash: w.hash, Chunks: uint32(w.end - w.start)})
				loose = 0
				for _, s := range srcs[w.start:w.end] {
					add(s)
				}
				i = w.end
				continue
			}
		}
		s := srcs[i]
		if have[i] {
			skipped++
			i++
			continue
		}
		flushIfOver(int(s.size))
		add(s)
		loose++
		i++
	}
	flush()
	p.count(func(s *Stats) { s.ChunksSkipped += skipped })
	p.progress.plan(Upload, planned)
	var deltas map[cas.ID][]syncproto.DeltaSource
	if dr, ok := e.deltaRemote(); ok && len(wanted) > 0 {
		deltas = e.signDeltas(ctx, dr, r.Name, wanted)
	}

	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(e.opts.UploadStreams)
	for _, batch := range batches {
		g.Go(func() error {
			buf := p.uploadBuf()
			defer p.doneWith(buf)
			sent, bad, err := e.sendBatch(gctx, r, batch, deltas, buf, p)
			if err != nil {
				return err
			}
			if len(bad) > 0 {
				mu.Lock()
				for _, path := range bad {
					changed[path] = true
				}
				mu.Unlock()
			}
			p.count(func(s *Stats) { s.ChunksSent += sent })
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return changed, nil
}

// sendBatch uploads one batch of chunks, read as they are sent, and
// reports their bytes to the pass's progress as they go. It returns how
// many chunks went out and the files that changed since the scan.
func (e *Engine) sendBatch(ctx context.Context, r Root, batch uploadBatch, deltas map[cas.ID][]syncproto.DeltaSource, buf *uploadBuf, p *pass) (int, []string, error) {
	br := batchReader{dir: r.Dir, deltas: deltas, runs: batch.runs}
	// A batch sent again (below) counts its bytes once.
	var reported int64
	report := func(read int64, last bool) {
		if n := read - reported; n >= progressStep || (last && n > 0) {
			p.progress.moved(Upload, n)
			reported = read
		}
	}
	srcs := batch.srcs
	res, err := e.putStream(ctx, r, br, srcs, buf, report)
	if err != nil && res.deltas && deltaRefused(err) {
		// The server could not rebuild a delta (a source gone, or a
		// signature that matched wrong bytes): send them whole.
		br.deltas = nil
		if srcs, err = e.retrySources(ctx, r, &br, srcs); err == nil {
			res, err = e.putStream(ctx, r, br, srcs, buf, report)
		}
	}
	if errors.Is(err, syncproto.ErrHashMismatch) {
		// A file changed under an unchanged stat: find it by hashing.
		br.deltas, br.verify = nil, true
		if srcs, err = e.retrySources(ctx, r, &br, srcs); err == nil {
			res, err = e.putStream(ctx, r, br, srcs, buf, report)
		}
	}
	if err != nil {
		return 0, nil, err
	}
	report(res.rawBytes, true)
	return res.sent, res.changed, nil
}

// retrySources is what a batch sends again after a refusal. A batch with
// whole runs may be one large file: the chunks the server stored before
// the refusal are left out rather than sent again, and the runs with them
// (they no longer match the stream).
func (e *Engine) retrySources(ctx context.Context, r Root, br *batchReader, srcs []chunkSource) ([]chunkSource, error) {
	if len(br.runs) == 0 {
		return srcs, nil
	}
	br.runs = nil
	have, err := e.haveSources(ctx, r, srcs)
	if err != nil {
		return nil, err
	}
	var left []chunkSource
	for i, s := range srcs {
		if !have[i] {
			left = append(left, s)
		}
	}
	return left, nil
}

// haveSources asks the server which of srcs' chunks it has.
func (e *Engine) haveSources(ctx context.Context, r Root, srcs []chunkSource) ([]bool, error) {
	ids := make([]cas.ID, len(srcs))
	for i, s := range srcs {
		ids[i] = s.id
	}
	have, err := e.remote.HaveChunks(ctx, r.Name, ids)
	if err != nil {
		return nil, err
	}
	if len(have) != len(srcs) {
		return nil, fmt.Errorf("%w: have chunks: %d answers for %d chunks", syncproto.ErrBadRequest, len(have), len(srcs))
	}
	return have, nil
}

// progressStep is how many bytes an upload reads between progress
// reports: a large file sent in one batch still shows it moving.
const progressStep = 1 << 20

// streamed is what one streamed upload of a batch sent.
type streamed struct {
	sent     int
	rawBytes int64
	deltas   bool     // a chunk went as a delta
	changed  []string // files that changed since the scan
}

// chunkStreamer is a Remote that uploads chunks as they are read, so that
// a batch is never in memory at once (syncproto.Client is one).
type chunkStreamer interface {
	PutChunkStream(ctx context.Context, root string, next func() (syncproto.Chunk, error)) error
}

var _ chunkStreamer = (*syncproto.Client)(nil)

// runStreamer is a chunkStreamer that can name an upload's whole runs.
type runStreamer interface {
	PutChunkRuns(ctx context.Context, root string, runs []syncproto.WholeRun, next func() (syncproto.Chunk, error)) error
}

var _ runStreamer = (*syncproto.Client)(nil)

// putStream uploads batch as br reads it, and closes its files. report,
// if set, is told the raw bytes read so far after each chunk (last false)
// as they are read.
func (e *Engine) putStream(ctx context.Context, r Root, br batchReader, batch []chunkSource, buf *uploadBuf, report func(read int64, last bool)) (streamed, error) {
	cs := br.stream(ctx, batch, buf)
	cs.report = report
	var err error
	if rs, ok := e.remote.(runStreamer); ok && len(br.runs) > 0 {
		err = rs.PutChunkRuns(ctx, r.Name, br.runs, cs.Next)
	} else if streamer, ok := e.remote.(chunkStreamer); ok {
		err = streamer.PutChunkStream(ctx, r.Name, cs.Next)
	} else {
		err = putCollected(ctx, e.remote, r.Name, cs.Next)
	}
	return streamed{sent: cs.sent, rawBytes: cs.rawBytes, deltas: cs.deltas, changed: cs.finish()}, err
}

// putCollected uploads what next returns with PutChunks, for a Remote that
// cannot stream: the chunks are copied out of the reused buffers.
func putCollected(ctx context.Context, remote Remote, root string, next func() (syncproto.Chunk, error)) error {
	var chunks []syncproto.Chunk
	for {
		c, err := next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		c.Data = bytes.Clone(c.Data)
		chunks = append(chunks, c)
	}
	if len(chunks) == 0 {
		return nil
	}
	return remote.PutChunks(ctx, root, chunks)
}

// deltaRefused reports the answers to a delta (an upload or a proposal)
// after which the same content, sent whole, may well succeed.
func deltaRefused(err error) bool {
	return errors.Is(err, syncproto.ErrHashMismatch) || errors.Is(err, syncproto.ErrNotFound) ||
		errors.Is(err, syncproto.ErrUnsupported) || errors.Is(err, syncproto.ErrBadRequest)
}

// uploadBuf holds one chunk of an upload, read and compressed, until the
// next: reused from chunk to chunk and batch to batch, so an upload neither
// allocates nor faults in fresh memory for every chunk, and holds one chunk
// per stream whatever the batch size.
type uploadBuf struct {
	raw, packed []byte
}

// batchReader reads the chunks of upload batches from their files.
type batchReader struct {
	dir string
	// deltas are the sources a chunk may be sent as a delta against.
	deltas map[cas.ID][]syncproto.DeltaSource
	// verify hashes every chunk read. Without it, a file whose stat is
	// still the one its chunks were hashed under is trusted to hold them,
	// as the scan trusts an unchanged stat; the server verifies every
	// chunk anyway, and an upload it refuses is read again verified.
	verify bool
	// runs are the whole files of the batch, told to the server. A file
	// left out (changed since the scan) shifts the runs after it: the
	// server then finds they do not hash to their contents and reads
	// those back when they are proposed, as without runs.
	runs []syncproto.WholeRun
}

// stream returns the chunks of batch one at a time, read into buf. A
// batch of at least encodeAheadBytes (one large file: a whole run) is read
// and compressed a few chunks ahead on several cores, since it travels on
// one stream where smaller batches go several at once.
func (br batchReader) stream(ctx context.Context, batch []chunkSource, buf *uploadBuf) *chunkStream {
	cs := &chunkStream{ctx: ctx, br: br, batch: batch, buf: buf, files: make(map[string]*regularFile), bad: make(map[string]bool)}
	var size int64
	for _, s := range batch {
		size += int64(s.size)
	}
	if workers := min(encodeAheadWorkers, runtime.GOMAXPROCS(0)); workers > 1 && size >= encodeAheadBytes {
		cs.startAhead(workers)
	}
	return cs
}

// A batch of encodeAheadBytes or more is encoded ahead by up to
// encodeAheadWorkers goroutines, each on a chunk of its own. Variables for
// tests.
var (
	encodeAheadBytes   int64 = 16 << 20
	encodeAheadWorkers       = 4
)

// aheadChunk is a chunk read and encoded ahead of Next, into buf.
type aheadChunk struct {
	s    chunkSource
	f    *regularFile
	buf  *uploadBuf
	c    syncproto.Chunk
	bad  bool // unreadable, or not its ID (verify)
	err  error
	done chan struct{}
}

func (cs *chunkStream) startAhead(workers int) {
	cs.jobs = make(chan *aheadChunk, 2*workers)
	cs.free = []*uploadBuf{cs.buf}
	for range workers {
		cs.workers.Add(1)
		go func() {
			defer cs.workers.Done()
			for a := range cs.jobs {
				a.bad, a.c, a.err = cs.br.readChunk(a.s, a.f, a.buf)
				close(a.done)
			}
		}()
	}
}

// readChunk reads s from f into buf and encodes it; bad when it cannot be
// read whole or (verify) does not hash to its ID. The chunk's Data is in
// buf.
func (br batchReader) readChunk(s chunkSource, f *regularFile, buf *uploadBuf) (bool, syncproto.Chunk, error) {
	if cap(buf.raw) < int(s.size) {
		buf.raw = make([]byte, 0, s.size)
	}
	data := buf.raw[:s.size]
	if n, err := f.ReadAt(data, s.off); n != len(data) || (err != nil && err != io.EOF) || (br.verify && cas.Sum(data) != s.id) {
		return true, syncproto.Chunk{}, nil
	}
	c, err := br.encode(s, data, &buf.packed)
	return false, c, err
}

// nextAhead is Next for a stream that encodes ahead: it keeps the next
// chunks queued in order and hands them out as they are done.
func (cs *chunkStream) nextAhead() (syncproto.Chunk, error) {
	if cs.out != nil {
		cs.free = append(cs.free, cs.out.buf) // the caller is done with it
		cs.out = nil
	}
	for {
		if err := cs.ctx.Err(); err != nil {
			return syncproto.Chunk{}, err
		}
		for len(cs.queue) < cap(cs.jobs) && cs.next < len(cs.batch) {
			s := cs.batch[cs.next]
			cs.next++
			f, err := cs.file(s)
			if err != nil {
				return syncproto.Chunk{}, err
			}
			if f == nil || cs.bad[s.path] {
				continue
			}
			a := &aheadChunk{s: s, f: f, done: make(chan struct{})}
			if n := len(cs.free); n > 0 {
				a.buf, cs.free = cs.free[n-1], cs.free[:n-1]
			} else {
				a.buf = new(uploadBuf)
			}
			cs.queue = append(cs.queue, a)
			cs.jobs <- a // never blocks: at most cap(jobs) are queued
		}
		if len(cs.queue) == 0 {
			return syncproto.Chunk{}, io.EOF
		}
		a := cs.queue[0]
		select {
		case <-a.done:
		case <-cs.ctx.Done():
			return syncproto.Chunk{}, cs.ctx.Err()
		}
		cs.queue = cs.queue[1:]
		switch {
		case a.err != nil:
			return syncproto.Chunk{}, a.err
		case a.bad || cs.bad[a.s.path]:
			// Its file's earlier chunks went out; its later ones,
			// queued already, are dropped as they come.
			cs.bad[a.s.path] = true
			cs.free = append(cs.free, a.buf)
			continue
		}
		cs.out = a
		return cs.emit(a.c), nil
	}
}

// emit counts c as sent and returns it.
func (cs *chunkStream) emit(c syncproto.Chunk) syncproto.Chunk {
	cs.sent++
	cs.rawBytes += int64(c.RawLen)
	cs.deltas = cs.deltas || c.Codec == syncproto.ChunkDelta
	if cs.report != nil {
		cs.report(cs.rawBytes, false)
	}
	return c
}

// chunkStream reads the chunks of one batch on demand, each as a delta
// against its sources when that is smaller, for an upload that sends each
// before it reads the next. The chunks of a file that changed since the
// scan (its stat when opened differs) or cannot be read are left out, and
// finish reports it.
type chunkStream struct {
	ctx   context.Context
	br    batchReader
	batch []chunkSource
	next  int
	buf   *uploadBuf
	files map[string]*regularFile // nil for a file that could not be opened or changed
	bad   map[string]bool
	// What went out: counts for the pass's statistics, and whether a
	// delta did (a refused delta is sent again whole).
	sent     int
	rawBytes int64
	deltas   bool
	report   func(read int64, last bool) // nil: nobody follows

	// Encoding ahead (startAhead): jobs feeds the workers, queue holds
	// the chunks handed to them in batch order, out is the one Next
	// returned last (its buffer is the caller's until the next call),
	// free the buffers not in use.
	jobs    chan *aheadChunk
	workers sync.WaitGroup
	queue   []*aheadChunk
	out     *aheadChunk
	free    []*uploadBuf
}

// Next returns the next chunk, valid until the following call, or io.EOF.
func (cs *chunkStream) Next() (syncproto.Chunk, error) {
	if cs.jobs != nil {
		return cs.nextAhead()
	}
	for ; cs.next < len(cs.batch); cs.next++ {
		if err := cs.ctx.Err(); err != nil {
			return syncproto.Chunk{}, err
		}
		s := cs.batch[cs.next]
		f, err := cs.file(s)
		if err != nil {
			return syncproto.Chunk{}, err
		}
		if f == nil || cs.bad[s.path] {
			continue
		}
		bad, c, err := cs.br.readChunk(s, f, cs.buf)
		if err != nil {
			return syncproto.Chunk{}, err
		}
		if bad {
			cs.bad[s.path] = true
			continue
		}
		cs.next++
		return cs.emit(c), nil
	}
	return syncproto.Chunk{}, io.EOF
}

// file opens the file of s once per batch; nil, and the path in bad, when
// it cannot be read or changed since the scan.
func (cs *chunkStream) file(s chunkSource) (*regularFile, error) {
	if f, ok := cs.files[s.path]; ok {
		return f, nil
	}
	cs.files[s.path] = nil
	name, err := relpath.Join(cs.br.dir, s.path)
	if err != nil {
		return nil, err
	}
	f, pre, err := openRegular(name)
	switch {
	case err != nil:
		cs.bad[s.path] = true
		return nil, nil
	case !cs.br.verify && !pre.Same(s.stat):
		// Changed since the scan: none of its chunks goes out (they
		// would not match their IDs, and the server would refuse the
		// whole batch).
		_ = f.Close()
		cs.bad[s.path] = true
		return nil, nil
	}
	cs.files[s.path] = f
	return f, nil
}

// finish closes the batch's files and returns those that changed since
// the scan, sorted.
//
// A file written while its chunks are read is not looked for: a chunk
// whose bytes changed is refused by the server (and the batch read again
// hashed), and chunks that still match are the scanned version's, which
// then commits as it was scanned; the next scan finds the new content.
func (cs *chunkStream) finish() []string {
	if cs.jobs != nil {
		// The workers finish what they were handed before the files
		// they read close.
		close(cs.jobs)
		cs.workers.Wait()
		cs.jobs = nil
	}
	for _, f := range cs.files {
		if f != nil {
			_ = f.Close()
		}
	}
	cs.files = nil
	changed := make([]string, 0, len(cs.bad))
	for path := range cs.bad {
		changed = append(changed, path)
	}
	slices.Sort(changed)
	return changed
}

// encode is a chunk's wire form: compressed into packed (reused), or a
// delta against its sources when that is smaller.
func (br batchReader) encode(s chunkSource, data []byte, packed *[]byte) (syncproto.Chunk, error) {
	st, grown, err := cas.AppendCompressed((*packed)[:0], data)
	if err != nil {
		return syncproto.Chunk{}, fmt.Errorf("compress chunk %s of %q: %w", s.id.Short(), s.path, err)
	}
	*packed = grown
	c := syncproto.Chunk{Codec: syncproto.ChunkCodec(st.Codec), ID: s.id, RawLen: st.RawLen, Data: st.Data}
	if srcs := br.deltas[s.id]; srcs != nil {
		if dc, ok := syncproto.EncodeDelta(s.id, data, srcs); ok && len(dc.Data) < len(c.Data) {
			c = dc
		}
	}
	return c, nil
}

// proposal builds the please-sync request of a pending record.
func proposal(root string, rec *FileRecord) *syncpb.ProposeRequest {
	req := &syncpb.ProposeRequest{
		Root: root, Path: rec.Path, BaseSeq: rec.BaseSeq, LastUpdate: rec.LastUpdate,
		Deleted: rec.Deleted,
	}
	if rec.BaseSeq != 0 {
		req.BaseHash = rec.BaseHash[:]
	}
	if !rec.Deleted {
		req.Hash = rec.Hash[:]
		req.Size = rec.Stat.Size
		req.Mode = rec.Stat.Mode
		req.Mtime = rec.Stat.MTime
	}
	return req
}

// propose asks the server to commit one pending record and records the
// outcome. A delta proposal the server cannot take (its source gone, or a
// base list that was not the server's) is made again with the whole list.
func (e *Engine) propose(ctx context.Context, r Root, pl *pushPlan, p *pass) error {
	rec := pl.rec
	var chunks []syncproto.ChunkRef
	if !rec.Deleted {
		chunks = rec.Chunks
	}
	dr, deltas := e.deltaRemote()
	useDelta := deltas && pl.delta != nil
	send := func() (*syncpb.CommitResponse, error) {
		if useDelta {
			return dr.ProposeDelta(ctx, proposal(r.Name, rec), pl.delta)
		}
		return e.remote.Propose(ctx, proposal(r.Name, rec), chunks)
	}
	resp, err := send()
	if useDelta && (deltaRefused(err) || errors.Is(err, syncproto.ErrMissingChunks)) {
		useDelta = false
		resp, err = send()
	}
	if errors.Is(err, syncproto.ErrMissingChunks) {
		// Another client's upload may have been collected, or a chunk
		// lost: upload this file's chunks again and retry once.
		if _, uerr := e.upload(ctx, r, []FileRecord{*rec}, p); uerr != nil {
			return uerr
		}
		resp, err = send()
	}
	return e.settle(ctx, r, rec, resp, err, p)
}

// settle records the server's answer to the proposal of rec: the new base,
// a conflict, a supersession, or a warning for a file the server refused.
func (e *Engine) settle(ctx context.Context, r Root, rec *FileRecord, resp *syncpb.CommitResponse, err error, p *pass) error {
	switch {
	case errors.Is(err, syncproto.ErrConflict):
		p.conflict(rec.Path)
		return e.st.MarkCandidate(ctx, r.Name, rec.Path, rec.LastUpdate, rec.Hash)
	case errors.Is(err, syncproto.ErrInvalidPath), errors.Is(err, syncproto.ErrBadRequest),
		errors.Is(err, syncproto.ErrMissingChunks), errors.Is(err, syncproto.ErrHashMismatch):
		e.warn(p, rec.Path, err)
		return nil
	case err != nil:
		return err
	}
	if resp.GetOutcome() == syncpb.CommitResponse_OUTCOME_SUPERSEDED {
		return e.supersede(ctx, r, rec, resp.GetHead(), p)
	}
	a, err := acceptance(rec, resp)
	if err != nil {
		return err
	}
	if err := e.st.AcceptMany(ctx, r.Name, []Acceptance{a}); err != nil {
		return err
	}
	noteAccepted(p, rec, resp)
	return nil
}

// noteAccepted counts an accepted change of rec in the pass.
func noteAccepted(p *pass, rec *FileRecord, resp *syncpb.CommitResponse) {
	if resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED {
		return
	}
	p.committedSeq(resp.GetHead().GetSeq())
	p.count(func(s *Stats) {
		if rec.Deleted {
			s.FilesDeleted++
		} else {
			s.FilesUploaded++
		}
	})
}

// supersede answers a proposal the server found superseded: the content
// rec proposed is already in the file's history (a conflict over it was
// resolved while this client was away, or the file was replaced since),
// and head is what this client must take. The local copy is replaced as a
// force-sync would, without proposing it again; it stays recoverable from
// the server's history. A local file changed since rec was scanned is left
// for the next pass, which pushes that change.
func (e *Engine) supersede(ctx context.Context, r Root, rec *FileRecord, head *syncpb.FileHead, p *pass) error {
	if head == nil || head.GetPath() != rec.Path || checkHead(head) != nil {
		e.warn(p, rec.Path, fmt.Errorf("%w: superseded proposal answered with head %v", syncproto.ErrBadRequest, head))
		return nil
	}
	kept := &keptContent{deleted: rec.Deleted, hash: rec.Hash}
	// A pass of its own: the bytes of this replacement are not part of the
	// push the progress listener was told about.
	sub := &pass{root: r.Name}
	err := e.forceLocked(ctx, r, head, kept, sub)
	p.count(func(s *Stats) { s.Add(sub.res.Stats) })
	switch {
	case err == nil:
	case isFatal(err):
		return err
	default:
		e.warn(p, rec.Path, fmt.Errorf("superseded on the server by version %d, not replaced here: %w", head.GetSeq(), err))
		return nil
	}
	p.mu.Lock()
	p.res.Superseded++
	p.res.SupersededList = append(p.res.SupersededList, Superseded{Root: r.Name, Path: rec.Path, Seq: head.GetSeq()})
	p.mu.Unlock()
	return nil
}

package server

import (
	"encoding/binary"
	"sync"

	"github.com/zeebo/blake3"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
)

// A content the server has not seen is committed only once its proposed
// chunk list is known to make it: otherwise a client could store a wrong
// list for a hash other roots hold, or claim a hash it only heard of and
// download its content. verifyContent proves it by reading the chunks back
// and hashing them, which for a large new file costs a second decoding and
// hashing of every byte just stored. An upload that names its whole runs
// (syncproto.WholeRun) lets the server hash each run's chunks as they
// arrive instead; a run that hashes to its content is remembered here, so
// the proposal that follows finds its list proven.

// wholeMemory is how many proven lists are remembered: a proposal follows
// its upload within the same push, so only the recent ones matter.
const wholeMemory = 4096

// provenLists remembers contents whose chunk lists an upload proved: the
// content hash and the digest of the list (listDigest). It forgets the
// oldest beyond wholeMemory.
type provenLists struct {
	mu    sync.Mutex
	m     map[cas.ID]cas.ID
	order []cas.ID // ring of the keys, oldest at next
	next  int
}

func newProvenLists() *provenLists {
	return &provenLists{m: make(map[cas.ID]cas.ID)}
}

func (p *provenLists) add(hash, list cas.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.m[hash]; ok {
		p.m[hash] = list
		return
	}
	if len(p.order) < wholeMemory {
		p.order = append(p.order, hash)
	} else {
		delete(p.m, p.order[p.next])
		p.order[p.next] = hash
		p.next = (p.next + 1) % wholeMemory
	}
	p.m[hash] = list
}

// proves reports whether chunks were proven to make the content hash.
func (p *provenLists) proves(hash cas.ID, chunks []manifest.Chunk) bool {
	p.mu.Lock()
	list, ok := p.m[hash]
	p.mu.Unlock()
	return ok && list == listDigest(chunks)
}

// listDigest identifies a chunk list: IDs and sizes in order.
func listDigest(chunks []manifest.Chunk) cas.ID {
	var d listDigester
	d.reset()
	for _, c := range chunks {
		d.add(c.ID, c.Size)
	}
	return d.sum()
}

type listDigester struct{ h *blake3.Hasher }

func (d *listDigester) reset() {
	if d.h == nil {
		d.h = blake3.New()
	} else {
		d.h.Reset()
	}
}

func (d *listDigester) add(id cas.ID, size uint32) {
	var b [cas.IDSize + 4]byte
	copy(b[:], id[:])
	binary.LittleEndian.PutUint32(b[cas.IDSize:], size)
	_, _ = d.h.Write(b[:])
}

func (d *listDigester) sum() cas.ID {
	var out cas.ID
	d.h.Sum(out[:0])
	return out
}

// runHasher follows an upload's whole runs chunk by chunk, in stream
// order, and hands each run that hashes to its content to proven. Runs are
// the client's claims: one that does not add up is dropped, never an
// error, and whatever it holds is still verified chunk by chunk.
//
// The stream's goroutine only counts (chunk); a goroutine of the hasher's
// own hashes the runs' bytes, copied, so that a large file arriving on one
// stream is stored and hashed on two cores. close waits for it: a run is
// proven before the upload is acknowledged and its proposal can come.
type runHasher struct {
	runs   []syncproto.WholeRun
	proven *provenLists
	run    int    // the current run, len(runs) when none is left
	skip   uint32 // frames still to pass before the current run starts
	left   uint32 // the current run's frames still to come, once started

	pieces chan runPiece
	done   chan struct{}
}

// runPiece is a chunk of a run, for the hashing goroutine; last marks the
// run's final chunk.
type runPiece struct {
	id   cas.ID
	data *[]byte // from piecePool
	last bool
	run  int
}

// piecesAhead bounds the chunks copied and not yet hashed.
const piecesAhead = 4

var piecePool = sync.Pool{New: func() any { return new([]byte) }}

func newRunHasher(runs []syncproto.WholeRun, proven *provenLists) *runHasher {
	h := &runHasher{runs: runs, proven: proven, pieces: make(chan runPiece, piecesAhead), done: make(chan struct{})}
	h.start(0)
	go h.hash()
	return h
}

// start makes run i the current one. A run of no chunks (the protocol
// refuses them) ends the following.
func (h *runHasher) start(i int) {
	h.run = i
	if i < len(h.runs) {
		h.skip, h.left = h.runs[i].Skip, h.runs[i].Chunks
		if h.left == 0 {
			h.run = len(h.runs)
		}
	}
}

// chunk takes the next chunk of the upload, verified against id; data is
// valid only during the call.
func (h *runHasher) chunk(id cas.ID, data []byte) {
	if h.run >= len(h.runs) {
		return
	}
	if h.skip > 0 {
		h.skip--
		return
	}
	buf := piecePool.Get().(*[]byte)
	*buf = append((*buf)[:0], data...)
	h.left--
	h.pieces <- runPiece{id: id, data: buf, last: h.left == 0, run: h.run}
	if h.left == 0 {
		h.start(h.run + 1)
	}
}

// close ends the upload's following once every run it completed is
// hashed (and, if it holds, proven).
func (h *runHasher) close() {
	close(h.pieces)
	<-h.done
}

// hash is the hashing goroutine.
func (h *runHasher) hash() {
	defer close(h.done)
	data := blake3.New()
	var list listDigester
	list.reset()
	for p := range h.pieces {
		_, _ = data.Write(*p.data)
		list.add(p.id, uint32(len(*p.data)))
		piecePool.Put(p.data)
		if !p.last {
			continue
		}
		var sum cas.ID
		data.Sum(sum[:0])
		if r := h.runs[p.run]; sum == r.Hash {
			h.proven.add(r.Hash, list.sum())
		}
		data.Reset()
		list.reset()
	}
}

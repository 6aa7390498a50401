package server

import (
	"sync"

	"github.com/quic-s/quics/cas"
)

// MaxPinsPerSession bounds the chunks one session pins. Pins only protect
// uploads in flight; past the bound a session still works, and the
// commit's own re-check turns a chunk collected meanwhile into a request
// to upload it again.
const MaxPinsPerSession = 1 << 18

// Pins is the server-wide registry of pinned chunks: chunks a session was
// told the server has, or that it uploaded, and has not committed yet.
// Garbage collection consults it (Track) so that "the server says it has
// chunk X, gc deletes X, the commit names X" cannot happen silently. Each
// session pins through its own PinSet; a chunk stays pinned while any set
// holds it. Pins is safe for concurrent use.
type Pins struct {
	mu       sync.Mutex
	counts   map[cas.ID]int // number of sets holding the chunk
	trackers map[*PinTracker]struct{}

	// maintenance admits one garbage collection or check at a time: each
	// must see the index without another one changing it.
	maintenance sync.Mutex
}

// NewPins returns an empty registry.
func NewPins() *Pins {
	return &Pins{counts: make(map[cas.ID]int), trackers: make(map[*PinTracker]struct{})}
}

// PinTracker remembers, for one garbage collection, every chunk pinned
// when it started or since, whether or not the pin was released
// meanwhile: a pin released by a commit or a stored conflict candidate
// leaves a reference the collection's own walk may not have seen.
type PinTracker struct {
	pins *Pins
	seen cas.IDSet // guarded by pins.mu
}

// Track starts a PinTracker; Stop it when the collection ends.
func (p *Pins) Track() *PinTracker {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := &PinTracker{pins: p, seen: make(cas.IDSet, len(p.counts))}
	for id := range p.counts {
		t.seen.Insert(id)
	}
	p.trackers[t] = struct{}{}
	return t
}

// Pinned reports whether id was pinned when Track was called or has been
// pinned since (until Stop).
func (t *PinTracker) Pinned(id cas.ID) bool {
	t.pins.mu.Lock()
	defer t.pins.mu.Unlock()
	return t.seen.Has(id)
}

// Stop ends the recording; Pinned keeps answering from what was seen.
func (t *PinTracker) Stop() {
	t.pins.mu.Lock()
	defer t.pins.mu.Unlock()
	delete(t.pins.trackers, t)
}

// Pinned reports whether any session pins id.
func (p *Pins) Pinned(id cas.ID) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[id] > 0
}

// Len is the number of distinct pinned chunks.
func (p *Pins) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.counts)
}

// Snapshot returns the chunks pinned right now. (A collection uses Track,
// which also sees pins added and released while it runs.)
func (p *Pins) Snapshot() cas.IDSet {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(cas.IDSet, len(p.counts))
	for id := range p.counts {
		out.Insert(id)
	}
	return out
}

// NewSet returns an empty pin set registered with p.
func (p *Pins) NewSet() *PinSet {
	return &PinSet{pins: p, ids: make(map[cas.ID]struct{})}
}

// PinSet is one session's pins.
type PinSet struct {
	pins *Pins
	mu   sync.Mutex
	ids  map[cas.ID]struct{}
}

// Add pins ids, up to MaxPinsPerSession for the set; it returns how many
// of them are now held by the set.
func (s *PinSet) Add(ids ...cas.ID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	held := 0
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.ids[id]; ok {
			held++
			continue
		}
		if len(s.ids) >= MaxPinsPerSession {
			continue
		}
		s.ids[id] = struct{}{}
		s.pins.counts[id]++
		for t := range s.pins.trackers {
			t.seen.Insert(id)
		}
		held++
	}
	return held
}

// Release unpins ids held by the set; others are ignored.
func (s *PinSet) Release(ids ...cas.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	for _, id := range ids {
		if _, ok := s.ids[id]; ok {
			delete(s.ids, id)
			s.pins.unpinLocked(id)
		}
	}
}

// ReleaseAll unpins everything the set holds.
func (s *PinSet) ReleaseAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pins.mu.Lock()
	defer s.pins.mu.Unlock()
	for id := range s.ids {
		s.pins.unpinLocked(id)
	}
	clear(s.ids)
}

// Len is the number of chunks the set holds.
func (s *PinSet) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

func (p *Pins) unpinLocked(id cas.ID) {
	if p.counts[id] <= 1 {
		delete(p.counts, id)
		return
	}
	p.counts[id]--
}

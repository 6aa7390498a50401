package main

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/quic-s/quics/client"
)

// barThreshold is the size from which a transfer gets a progress bar:
// smaller ones are over before a bar tells anything.
const barThreshold = 4 << 20

// barGate decides whether qic sync draws progress bars. Bars are for a
// person watching a terminal: never in --json output, never when the
// output goes to a pipe or a file.
type barGate struct {
	stdoutTerminal bool // the result goes to a person, not a program
	stderrTerminal bool // where bars are drawn, beside the warnings
	json           bool // --json: the output is for a program
}

// allowed reports whether any bar may be drawn.
func (g barGate) allowed() bool {
	return g.stdoutTerminal && g.stderrTerminal && !g.json
}

// show reports whether a transfer that plans to move planned bytes gets
// a bar.
func (g barGate) show(planned int64) bool {
	return g.allowed() && planned > barThreshold
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// transfer is what a bar counts for one direction: the bytes planned and
// moved since the direction was last idle (all it planned moved).
type transfer struct {
	planned, moved int64
	done           bool // its bar was drawn and ended: no second one
}

// syncBars is the client.Progress of qic sync: one bar per transfer (a
// root's downloads, then its uploads) that the gate lets through, drawn
// on w. A finished bar stays on screen as a summary line.
type syncBars struct {
	gate barGate
	w    io.Writer

	mu     sync.Mutex
	up     transfer
	down   transfer
	bar    *progressbar.ProgressBar // nil while no bar is drawn
	barDir client.Direction
}

var _ client.Progress = (*syncBars)(nil)

func newSyncBars(gate barGate, w io.Writer) *syncBars {
	return &syncBars{gate: gate, w: w}
}

func (s *syncBars) transfer(d client.Direction) *transfer {
	if d == client.Upload {
		return &s.up
	}
	return &s.down
}

// Plan implements client.Progress.
func (s *syncBars) Plan(d client.Direction, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.transfer(d)
	if t.planned == t.moved {
		*t = transfer{} // idle: a new transfer starts
	}
	t.planned += n
	s.update(d)
}

// Moved implements client.Progress.
func (s *syncBars) Moved(d client.Direction, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.transfer(d).moved += n
	s.update(d)
}

// update redraws the bar of direction d, creating it when the transfer
// has become large enough and ending it when the transfer is done.
func (s *syncBars) update(d client.Direction) {
	t := s.transfer(d)
	if t.done {
		return
	}
	if s.bar == nil || s.barDir != d {
		if !s.gate.show(t.planned) {
			return
		}
		s.stop() // the other direction's transfer stopped short
		s.bar, s.barDir = s.newBar(d, t.planned), d
	}
	if t.planned <= 0 {
		// Nothing moved after all: no summary line to leave.
		_ = s.bar.Clear()
		s.bar, t.done = nil, true
		return
	}
	if s.bar.GetMax64() != t.planned {
		s.bar.ChangeMax64(t.planned)
	}
	_ = s.bar.Set64(min(t.moved, t.planned))
	if t.moved >= t.planned {
		s.bar, t.done = nil, true // finished; its line stays
	}
}

func (s *syncBars) newBar(d client.Direction, planned int64) *progressbar.ProgressBar {
	w := s.w
	return progressbar.NewOptions64(planned,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(fmt.Sprintf("%-8s", d)),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		progressbar.OptionSetRenderBlankState(true),
	)
}

// stop ends the bar being drawn, if any, where it is. The caller holds mu.
func (s *syncBars) stop() {
	if s.bar != nil {
		_ = s.bar.Exit()
		s.bar = nil
		s.transfer(s.barDir).done = true
	}
}

// Close ends a bar a failed sync left unfinished, so that what qic
// prints next starts on a line of its own.
func (s *syncBars) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stop()
}

// warn prints a warning on its own line above the bar being drawn, which
// the next update redraws.
func (s *syncBars) warn(wn client.Warning) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bar != nil {
		_ = s.bar.Clear()
	}
	warnTo(s.w)(wn)
}

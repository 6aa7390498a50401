package client

import (
	"io"
	"sync/atomic"
)

// Direction is which way a transfer moves bytes.
type Direction uint8

// The directions a sync pass moves bytes in.
const (
	Upload   Direction = 1 // from the local tree to the server
	Download Direction = 2 // from the server (or a local copy of a chunk) into the local tree
)

func (d Direction) String() string {
	switch d {
	case Upload:
		return "upload"
	case Download:
		return "download"
	}
	return "unknown direction"
}

// Progress is told how many bytes a sync pass is about to move and how
// many it has moved, so that a command can draw a progress bar. Its
// methods are called from several goroutines at once and must be quick:
// a transfer waits for them.
//
// Upload bytes are the uncompressed size of the chunks the server lacks
// (chunks it already has are not planned); each batch counts as moved
// once the server has stored it. Download bytes are the content of the
// files a pull writes, planned for all of a pull's files before the
// first is written and moved as the file is written, whether a chunk was
// fetched or copied from a local file that holds it.
//
// A pass pulls, then pushes: its downloads are planned, move and end
// before its uploads are planned. Bytes planned that do not move after
// all (a file changed locally meanwhile, a transfer failed) are taken
// back with a negative Plan when the pull or the push ends, so that at
// the end of each the sums of Plan and of Moved are equal in each
// direction.
type Progress interface {
	// Plan adds n to the bytes expected to move in direction d.
	Plan(d Direction, n int64)
	// Moved reports n more bytes moved in direction d.
	Moved(d Direction, n int64)
}

// transferCount is what one pass planned and moved in one direction.
type transferCount struct {
	planned, moved atomic.Int64
}

// progress forwards to the listener (if any) and keeps the pass's own
// counts, so that the end of a pull or a push can settle what did not
// move.
type progress struct {
	to       Progress // nil: nobody listens
	up, down transferCount
}

func (pr *progress) count(d Direction) *transferCount {
	if d == Upload {
		return &pr.up
	}
	return &pr.down
}

func (pr *progress) plan(d Direction, n int64) {
	if pr.to == nil || n == 0 {
		return
	}
	pr.count(d).planned.Add(n)
	pr.to.Plan(d, n)
}

func (pr *progress) moved(d Direction, n int64) {
	if pr.to == nil || n == 0 {
		return
	}
	pr.count(d).moved.Add(n)
	pr.to.Moved(d, n)
}

// settle takes back what was planned and did not move (or plans what
// moved beyond the plan, when a head's size was wrong), leaving the
// listener's totals equal.
func (pr *progress) settle() {
	if pr.to == nil {
		return
	}
	for _, d := range []Direction{Upload, Download} {
		c := pr.count(d)
		if diff := c.moved.Load() - c.planned.Load(); diff != 0 {
			c.planned.Add(diff)
			pr.to.Plan(d, diff)
		}
	}
}

// progressWriter reports the bytes written through it as downloaded.
type progressWriter struct {
	w  io.Writer
	pr *progress
}

func (pw progressWriter) Write(b []byte) (int, error) {
	n, err := pw.w.Write(b)
	pw.pr.moved(Download, int64(n))
	return n, err
}

package chunker

import (
	"errors"
	"fmt"
	"io"
)

// windowSize is how many bytes the rolling hash sees: each byte is shifted one
// bit further left per step, so after 64 steps it has left the 64-bit word.
const windowSize = 64

// maxEmptyReads is how many reads in a row may return no bytes and no error
// before the reader is declared stuck (the same limit bufio uses).
const maxEmptyReads = 100

var (
	// ErrNilReader is returned by Next when the chunker has no reader.
	ErrNilReader = errors.New("chunker: nil reader")
	// ErrBadReader is returned (wrapped) when a reader reports having read a
	// negative count or more bytes than it was given room for.
	ErrBadReader = errors.New("chunker: reader returned an impossible byte count")
)

// Chunk is one piece of the stream.
type Chunk struct {
	// Offset is where the chunk starts in the stream.
	Offset int64
	// Length is len(Data).
	Length int
	// Data is the chunk's content. It aliases the chunker's buffer and is
	// valid only until the next call to Next or Reset; copy it to keep it.
	Data []byte
}

// Chunker splits a stream into content-defined chunks. Memory use is a buffer
// of twice Params.Max, whatever the length of the stream. A Chunker is not
// safe for concurrent use.
type Chunker struct {
	r   io.Reader
	cut cutter

	// buf[start:end] holds bytes read but not yet returned in a chunk;
	// offset is the stream position of buf[start].
	buf        []byte
	start, end int
	offset     int64

	eof bool  // r has returned io.EOF
	err error // sticky: a read error, returned once the buffer is drained of decided chunks
}

// New returns a Chunker that reads r and cuts it with p. It fails with an
// error wrapping ErrInvalidParams if p is not valid.
func New(r io.Reader, p Params) (*Chunker, error) {
	cut, err := newCutter(p)
	if err != nil {
		return nil, err
	}
	return &Chunker{r: r, cut: cut, buf: make([]byte, 2*p.Max)}, nil
}

// Reset makes c chunk r from its start, reusing c's buffer and parameters.
// Chunks returned before the reset must no longer be used.
func (c *Chunker) Reset(r io.Reader) {
	c.r = r
	c.start, c.end, c.offset = 0, 0, 0
	c.eof, c.err = false, nil
}

// Next returns the next chunk. After the last chunk it returns io.EOF, and an
// empty stream yields io.EOF at once. A read error is returned wrapped, with
// the stream offset it happened at; once an error is returned, every later
// call returns it too.
//
// Where the stream is cut does not depend on how the reader splits its data
// into reads: Next reads until it holds Max bytes (or the stream ends) before
// it looks for a cut, so it always decides on the same bytes.
func (c *Chunker) Next() (Chunk, error) {
	if c.end-c.start < c.cut.max && !c.eof && c.err == nil {
		c.fill()
	}
	avail := c.end - c.start
	if c.err != nil && avail < c.cut.max {
		// Without the rest of the stream the next cut is unknown.
		return Chunk{}, c.err
	}
	if avail == 0 {
		return Chunk{}, io.EOF
	}
	n := c.cut.next(c.buf[c.start:c.end])
	data := c.buf[c.start : c.start+n : c.start+n]
	ch := Chunk{Offset: c.offset, Length: n, Data: data}
	c.start += n
	c.offset += int64(n)
	return ch, nil
}

// fill reads until the buffer holds at least Max unreturned bytes, the stream
// ends, or the reader fails. Memory stays at len(c.buf) = 2*Max: when fewer
// than Max bytes of room remain past start, the unreturned bytes (fewer than
// Max) move to the front, so each byte is copied at most about once.
func (c *Chunker) fill() {
	if c.r == nil {
		c.err = ErrNilReader
		return
	}
	if len(c.buf)-c.start < c.cut.max {
		c.end = copy(c.buf, c.buf[c.start:c.end])
		c.start = 0
	}
	empty := 0
	for c.end-c.start < c.cut.max {
		room := len(c.buf) - c.end
		n, err := c.r.Read(c.buf[c.end:])
		if n < 0 || n > room {
			c.err = fmt.Errorf("%w: %d for a buffer of %d at stream offset %d",
				ErrBadReader, n, room, c.offset+int64(c.end-c.start))
			return
		}
		c.end += n
		if err == io.EOF {
			c.eof = true
			return
		}
		if err != nil {
			c.err = fmt.Errorf("chunker: read at stream offset %d: %w", c.offset+int64(c.end-c.start), err)
			return
		}
		if n > 0 {
			empty = 0
		} else if empty++; empty >= maxEmptyReads {
			c.err = fmt.Errorf("chunker: read at stream offset %d: %w", c.offset+int64(c.end-c.start), io.ErrNoProgress)
			return
		}
	}
}

// Boundaries returns where data is cut with p: the end offset of each chunk,
// in increasing order, the last one being len(data). Empty data has no chunks.
// It cuts exactly where a Chunker reading data would.
func Boundaries(data []byte, p Params) ([]int, error) {
	cut, err := newCutter(p)
	if err != nil {
		return nil, err
	}
	var ends []int
	for off := 0; off < len(data); {
		off += cut.next(data[off:])
		ends = append(ends, off)
	}
	return ends, nil
}

// cutter finds cut points; it is Params prepared for the hot loop.
type cutter struct {
	min, avg, max int
	strict, loose uint64 // masks before and from Avg
}

func newCutter(p Params) (cutter, error) {
	if err := p.Validate(); err != nil {
		return cutter{}, err
	}
	strict, loose := p.masks()
	return cutter{min: p.Min, avg: p.Avg, max: p.Max, strict: strict, loose: loose}, nil
}

// next returns the length of the chunk that starts at data[0]. data must hold
// at least Max bytes, or else everything up to the end of the stream.
//
// The hash of the window ending at data[i] is tested for a cut of length i+1.
// Lengths below Min are never tested, so hashing starts just early enough to
// fill the window for length Min: the first Min-64 bytes are skipped
// (FastCDC's cut-point skipping), which also saves hashing about a fifth of the
// data with the default parameters.
func (c *cutter) next(data []byte) int {
	n := len(data)
	if n <= c.min {
		return n
	}
	n = min(n, c.max)
	var h uint64
	for _, b := range data[c.min-windowSize : c.min-1] {
		h = h<<1 + gear[b]
	}
	// Indices before avg-1 end chunks shorter than Avg: the strict mask.
	mid := min(c.avg-1, n)
	i, h := scan(data[c.min-1:mid], h, c.strict)
	if i >= 0 {
		return c.min + i
	}
	if i, _ = scan(data[mid:n], h, c.loose); i >= 0 {
		return mid + i + 1
	}
	return n
}

// scan rolls the hash h over data and returns the index of the first byte
// after which h&mask == 0, or -1, and the hash at that point.
//
// It takes two bytes a step: h<<2 + (gear[b0]<<1 + gear[b1]) puts two
// dependent operations, not four, on the loop-carried chain through h, and
// the hash after b0 alone is computed off that chain.
func scan(data []byte, h, mask uint64) (int, uint64) {
	i := 0
	for ; i < len(data)-1; i += 2 {
		g0, g1 := gear[data[i]], gear[data[i+1]]
		h0 := h<<1 + g0
		h = h<<2 + (g0<<1 + g1)
		if h0&mask == 0 {
			return i, h0
		}
		if h&mask == 0 {
			return i + 1, h
		}
	}
	if i < len(data) {
		h = h<<1 + gear[data[i]]
		if h&mask == 0 {
			return i, h
		}
	}
	return -1, h
}

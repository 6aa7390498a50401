package syncproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
)

// FrameType says what a frame's payload is. It travels as a uvarint; every
// type below 0x80 takes one byte.
type FrameType uint64

// Frame types. 0 is never valid, so a zeroed buffer is not a frame.
const (
	FrameInvalid FrameType = 0x00
	// FrameError carries an error for the transaction: uvarint code and a
	// message (see EncodeErrorFrame).
	FrameError FrameType = 0x01
	// FrameChunk carries one chunk's stored bytes (see EncodeChunkFrame).
	FrameChunk FrameType = 0x02
	// 0x03..0x0f are reserved for further transport-level frames.

	// FrameMessage is the first of the types that carry one protobuf
	// message each; the message schema assigns FrameMessage..FrameMessageLast.
	FrameMessage FrameType = 0x10
	// FrameMessageLast is the last message type. 0x80 and above are reserved
	// for extensions and take two or more bytes on the wire.
	FrameMessageLast FrameType = 0x7f
)

// IsMessage reports whether t is in the protobuf message range.
func (t FrameType) IsMessage() bool { return t >= FrameMessage && t <= FrameMessageLast }

func (t FrameType) String() string {
	switch {
	case t == FrameInvalid:
		return "invalid"
	case t == FrameError:
		return "error"
	case t == FrameChunk:
		return "chunk"
	case t.IsMessage():
		return fmt.Sprintf("message(%#x)", uint64(t))
	default:
		return fmt.Sprintf("unknown(%#x)", uint64(t))
	}
}

// Frame size limits.
const (
	// DefaultMaxFramePayload is what a FrameReader accepts unless told
	// otherwise: room for a default 256 KiB chunk many times over, and for
	// large metadata messages.
	DefaultMaxFramePayload = 4 << 20
	// MaxFramePayloadLimit is the hard ceiling on any frame payload, read or
	// written: a 16 MiB chunk (the chunker's largest) plus its header.
	MaxFramePayloadLimit = 16<<20 + 64
	// MaxFrameHeaderLen is the longest type+length header.
	MaxFrameHeaderLen = 2 * binary.MaxVarintLen64
)

// readBufferSize is the bufio buffer of a FrameReader: enough to take many
// small frames per network read; big payloads bypass it.
const readBufferSize = 16 << 10

// growStep is how much payload buffer a FrameReader adds before the bytes to
// fill it have arrived, so a length that the peer never backs with data costs
// little memory.
const growStep = 64 << 10

// FrameReader reads frames from a byte stream. The payload it returns is only
// valid until the next ReadFrame: the buffer is reused. After any error,
// including io.EOF, every later call returns the same error, since the
// position in the stream is then unknown.
type FrameReader struct {
	r   *bufio.Reader
	max int
	buf []byte
	err error
}

// NewFrameReader returns a reader of frames from r whose payloads are at most
// maxPayload bytes (clamped to 1..MaxFramePayloadLimit).
func NewFrameReader(r io.Reader, maxPayload int) *FrameReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, readBufferSize)
	}
	fr := &FrameReader{r: br}
	fr.SetMaxPayload(maxPayload)
	return fr
}

// SetMaxPayload changes the payload limit for the following frames, e.g.
// once a transaction knows its root's chunk size.
func (fr *FrameReader) SetMaxPayload(n int) {
	fr.max = min(max(n, 1), MaxFramePayloadLimit)
}

// MaxPayload returns the current payload limit.
func (fr *FrameReader) MaxPayload() int { return fr.max }

// ReadFrame reads the next frame. At a clean end of stream between frames it
// returns io.EOF. A payload over the limit is refused before anything is
// allocated (ErrFrameTooLarge); a stream that ends inside a frame gives
// ErrTruncated wrapping io.ErrUnexpectedEOF. Types other than FrameInvalid
// are returned whether known or not: the caller decides what it accepts.
func (fr *FrameReader) ReadFrame() (FrameType, []byte, error) {
	if fr.err != nil {
		return FrameInvalid, nil, fr.err
	}
	t, payload, err := fr.readFrame()
	if err != nil {
		fr.err = err
		return FrameInvalid, nil, err
	}
	return t, payload, nil
}

func (fr *FrameReader) readFrame() (FrameType, []byte, error) {
	rawType, err := readUvarint(fr.r)
	if err == io.EOF {
		return 0, nil, io.EOF
	}
	if err != nil {
		return 0, nil, fmt.Errorf("syncproto: frame type: %w", err)
	}
	t := FrameType(rawType)
	if t == FrameInvalid {
		return 0, nil, fmt.Errorf("%w: frame type 0", ErrBadRequest)
	}
	n, err := readUvarint(fr.r)
	if err == io.EOF {
		err = fmt.Errorf("%w: %w", ErrTruncated, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("syncproto: %s frame length: %w", t, err)
	}
	if n > uint64(fr.max) {
		return 0, nil, fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrFrameTooLarge, t, n, fr.max)
	}
	payload, err := fr.readPayload(int(n))
	if err != nil {
		return 0, nil, fmt.Errorf("syncproto: %s frame of %d bytes: %w", t, n, err)
	}
	return t, payload, nil
}

// readPayload reads n bytes into the reused buffer. A buffer too small is
// grown in steps as the bytes arrive, never to n at once.
func (fr *FrameReader) readPayload(n int) ([]byte, error) {
	if n <= cap(fr.buf) {
		b := fr.buf[:n]
		if got, err := io.ReadFull(fr.r, b); err != nil {
			return nil, payloadErr(got, n, err)
		}
		return b, nil
	}
	b := fr.buf[:0]
	for len(b) < n {
		if len(b) == cap(b) {
			grown := make([]byte, len(b), min(n, max(2*cap(b), growStep)))
			copy(grown, b)
			b = grown
			fr.buf = grown
		}
		got, err := io.ReadFull(fr.r, b[len(b):cap(b)])
		b = b[:len(b)+got]
		if err != nil {
			return nil, payloadErr(len(b), n, err)
		}
	}
	return b, nil
}

func payloadErr(got, want int, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("%w: got %d of %d payload bytes: %w", ErrTruncated, got, want, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("after %d of %d payload bytes: %w", got, want, err)
}

// readUvarint reads a canonical (shortest-form) uvarint. io.EOF before the
// first byte is returned as is; inside the varint it is ErrTruncated.
func readUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	var s uint
	for i := range binary.MaxVarintLen64 {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				return 0, fmt.Errorf("%w: inside a varint: %w", ErrTruncated, io.ErrUnexpectedEOF)
			}
			return 0, err
		}
		if b < 0x80 {
			if i == binary.MaxVarintLen64-1 && b > 1 {
				break
			}
			if b == 0 && i > 0 {
				return 0, fmt.Errorf("%w: varint not in shortest form", ErrBadRequest)
			}
			return x | uint64(b)<<s, nil
		}
		x |= uint64(b&0x7f) << s
		s += 7
	}
	return 0, fmt.Errorf("%w: varint overflows 64 bits", ErrBadRequest)
}

// uvarint decodes a canonical uvarint from the start of b.
func uvarint(b []byte) (uint64, int, error) {
	v, n := binary.Uvarint(b)
	switch {
	case n == 0:
		return 0, 0, fmt.Errorf("%w: %w", ErrTruncated, io.ErrUnexpectedEOF)
	case n < 0:
		return 0, 0, fmt.Errorf("%w: varint overflows 64 bits", ErrBadRequest)
	case n > 1 && b[n-1] == 0:
		return 0, 0, fmt.Errorf("%w: varint not in shortest form", ErrBadRequest)
	}
	return v, n, nil
}

// AppendFrame appends a whole frame to dst.
func AppendFrame(dst []byte, t FrameType, payload []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(t))
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	return append(dst, payload...)
}

// coalesceLimit is the largest payload FrameWriter copies next to its header
// to issue a single Write; larger payloads go out as header + payload
// without a copy.
const coalesceLimit = 16 << 10

// FrameWriter writes frames to a byte stream. It is not safe for concurrent
// use: a transaction has one writer.
type FrameWriter struct {
	w    io.Writer
	buf  []byte
	vec  [2][]byte
	bufs net.Buffers // lives here so that WriteTo does not allocate
}

// NewFrameWriter returns a writer of frames to w.
func NewFrameWriter(w io.Writer) *FrameWriter {
	return &FrameWriter{w: w}
}

// WriteFrame writes one frame. Payloads over MaxFramePayloadLimit are refused
// with ErrFrameTooLarge since no reader would accept them.
func (fw *FrameWriter) WriteFrame(t FrameType, payload []byte) error {
	return fw.WriteFrameParts(t, nil, payload)
}

// WriteFrameParts writes one frame whose payload is head followed by body,
// without copying a large body next to the rest.
func (fw *FrameWriter) WriteFrameParts(t FrameType, head, body []byte) error {
	if t == FrameInvalid {
		return errors.New("syncproto: write of frame type 0")
	}
	n := len(head) + len(body)
	if n > MaxFramePayloadLimit {
		return fmt.Errorf("%w: %s frame of %d bytes, limit %d", ErrFrameTooLarge, t, n, MaxFramePayloadLimit)
	}
	fw.buf = binary.AppendUvarint(fw.buf[:0], uint64(t))
	fw.buf = binary.AppendUvarint(fw.buf, uint64(n))
	fw.buf = append(fw.buf, head...)
	if len(body) <= coalesceLimit {
		fw.buf = append(fw.buf, body...)
		if _, err := fw.w.Write(fw.buf); err != nil {
			return fmt.Errorf("syncproto: write %s frame: %w", t, err)
		}
		return nil
	}
	fw.vec = [2][]byte{fw.buf, body}
	fw.bufs = fw.vec[:]
	_, err := fw.bufs.WriteTo(fw.w)
	fw.vec = [2][]byte{} // do not keep the caller's payload alive
	if err != nil {
		return fmt.Errorf("syncproto: write %s frame: %w", t, err)
	}
	return nil
}

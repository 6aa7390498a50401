package syncproto

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/quic-go/quic-go"
)

// Stream is one transaction: a bidirectional QUIC stream read and written in
// frames. Every frame read or written has a deadline (the stream's timeout,
// or the context's deadline if sooner), and canceling the context interrupts
// a blocked call. One goroutine reads and one writes at a time.
type Stream struct {
	qs           *quic.Stream
	fr           *FrameReader
	fw           *FrameWriter
	readTimeout  time.Duration
	writeTimeout time.Duration
	scratch      []byte
}

func newStream(qs *quic.Stream, cfg Config) *Stream {
	return &Stream{
		qs:           qs,
		fr:           NewFrameReader(qs, cfg.MaxFramePayload),
		fw:           NewFrameWriter(qs),
		readTimeout:  cfg.ReadTimeout,
		writeTimeout: cfg.WriteTimeout,
	}
}

// ID returns the QUIC stream ID, for logs.
func (s *Stream) ID() int64 { return int64(s.qs.StreamID()) }

// SetMaxFramePayload changes the largest frame payload accepted from now on.
func (s *Stream) SetMaxFramePayload(n int) { s.fr.SetMaxPayload(n) }

// SetTimeouts changes the per-frame read and write timeouts; zero or
// negative values leave the current ones. A watch stream that waits long for
// the next push raises the read timeout rather than dropping it.
func (s *Stream) SetTimeouts(read, write time.Duration) {
	if read > 0 {
		s.readTimeout = read
	}
	if write > 0 {
		s.writeTimeout = write
	}
}

// deadline is the earlier of now+timeout and ctx's deadline.
func deadline(ctx context.Context, timeout time.Duration) time.Time {
	d := time.Now().Add(timeout)
	if cd, ok := ctx.Deadline(); ok && cd.Before(d) {
		return cd
	}
	return d
}

// interruptOnCancel makes a blocked read or write return when ctx is
// canceled, by moving its deadline to now. The returned stop waits for a
// cancellation already under way, so a late deadline cannot hit the next
// operation.
func interruptOnCancel(ctx context.Context, setDeadline func(time.Time) error) (stop func()) {
	if ctx.Done() == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopAfter := context.AfterFunc(ctx, func() {
		_ = setDeadline(time.Now())
		close(done)
	})
	return func() {
		if !stopAfter() {
			<-done
		}
	}
}

// ReadFrame reads the next frame within the read timeout. The payload is
// valid until the next ReadFrame. An error frame from the peer is returned as
// FrameError with its *Error, so errors.Is(err, ErrNotFound) works directly.
// The peer ending its side cleanly between frames gives io.EOF.
func (s *Stream) ReadFrame(ctx context.Context) (FrameType, []byte, error) {
	if err := ctx.Err(); err != nil {
		return FrameInvalid, nil, err
	}
	_ = s.qs.SetReadDeadline(deadline(ctx, s.readTimeout))
	stop := interruptOnCancel(ctx, s.qs.SetReadDeadline)
	t, payload, err := s.fr.ReadFrame()
	stop()
	if err == io.EOF {
		return FrameInvalid, nil, io.EOF // the transaction's normal end, unwrapped
	}
	if err != nil {
		return FrameInvalid, nil, s.ioErr(ctx, "read", s.readTimeout, err)
	}
	if t == FrameError {
		e, derr := DecodeErrorFrame(payload)
		if derr != nil {
			return t, nil, fmt.Errorf("syncproto: stream %d: %w", s.ID(), derr)
		}
		return t, nil, e
	}
	return t, payload, nil
}

// WriteFrame writes one frame within the write timeout.
func (s *Stream) WriteFrame(ctx context.Context, t FrameType, payload []byte) error {
	return s.writeFrame(ctx, t, nil, payload)
}

// WriteChunk writes c, which must pass checkChunk, as a chunk frame: its
// data is sent from where it is, not copied next to its header.
func (s *Stream) WriteChunk(ctx context.Context, c Chunk) error {
	s.scratch = appendChunkHeader(s.scratch[:0], c)
	return s.writeFrame(ctx, FrameChunk, s.scratch, c.Data)
}

// writeFrame writes the frame of payload head+body within the write
// timeout.
func (s *Stream) writeFrame(ctx context.Context, t FrameType, head, body []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	_ = s.qs.SetWriteDeadline(deadline(ctx, s.writeTimeout))
	stop := interruptOnCancel(ctx, s.qs.SetWriteDeadline)
	err := s.fw.WriteFrameParts(t, head, body)
	stop()
	if err != nil {
		return s.ioErr(ctx, "write", s.writeTimeout, err)
	}
	return nil
}

// WriteError sends err to the peer as an error frame (see WireError for what
// the peer sees).
func (s *Stream) WriteError(ctx context.Context, err error) error {
	s.scratch = EncodeErrorFrame(s.scratch[:0], WireError(err))
	return s.WriteFrame(ctx, FrameError, s.scratch)
}

// Fail ends the transaction with err: it sends the error frame, ends the
// write side so the frame is delivered, and stops reading with err's code so
// the peer stops sending. The returned error is from sending the frame.
func (s *Stream) Fail(ctx context.Context, err error) error {
	werr := s.WriteError(ctx, err)
	_ = s.qs.Close()
	s.qs.CancelRead(quic.StreamErrorCode(CodeOf(err)))
	return werr
}

// CloseWrite ends the write side normally: the peer reads io.EOF after the
// last frame.
func (s *Stream) CloseWrite() error { return s.qs.Close() }

// Reset aborts both directions with code: unsent frames are dropped and the
// peer's reads and writes fail with the code's error.
func (s *Stream) Reset(code Code) {
	s.qs.CancelWrite(quic.StreamErrorCode(code))
	s.qs.CancelRead(quic.StreamErrorCode(code))
}

// finish releases the stream after its handler returned: ends the write side
// if the handler did not, and stops receiving what it did not read. When the
// server is shutting down the handler may have been cut short, so the stream
// is reset with CodeUnavailable rather than ended as if complete.
func (s *Stream) finish(ctx context.Context) {
	if ctx.Err() != nil {
		s.Reset(CodeUnavailable)
		return
	}
	_ = s.qs.Close()
	s.qs.CancelRead(quic.StreamErrorCode(CodeNoError))
}

// ioErr adds context to a read or write error and maps it so errors.Is
// finds ErrTimeout, the context's error, or the peer's code.
func (s *Stream) ioErr(ctx context.Context, op string, timeout time.Duration, err error) error {
	if cerr := ctx.Err(); cerr != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("syncproto: %s stream %d: %w (%w)", op, s.ID(), context.Cause(ctx), err)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %s stream %d: no progress within %v: %w", ErrTimeout, op, s.ID(), timeout, err)
	}
	return fmt.Errorf("syncproto: %s stream %d: %w", op, s.ID(), fromQUIC(err))
}

package syncproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFrameTypeString(t *testing.T) {
	tests := map[FrameType]string{
		FrameInvalid:     "invalid",
		FrameError:       "error",
		FrameChunk:       "chunk",
		FrameMessage:     "message(0x10)",
		FrameMessageLast: "message(0x7f)",
		0x03:             "unknown(0x3)",
		0x80:             "unknown(0x80)",
	}
	for ft, want := range tests {
		if got := ft.String(); got != want {
			t.Errorf("FrameType(%#x).String() = %q, want %q", uint64(ft), got, want)
		}
	}
	if FrameChunk.IsMessage() || !FrameMessage.IsMessage() || !FrameMessageLast.IsMessage() || (FrameMessageLast + 1).IsMessage() {
		t.Error("IsMessage range wrong")
	}
}

type frame struct {
	t       FrameType
	payload []byte
}

func TestFrameRoundTrip(t *testing.T) {
	frames := []frame{
		{FrameMessage, nil},
		{FrameError, []byte("x")},
		{FrameChunk, bytes.Repeat([]byte{7}, coalesceLimit)},
		{FrameMessage + 1, bytes.Repeat([]byte{8}, coalesceLimit+1)},
		{0x1234, bytes.Repeat([]byte{9}, 300<<10)},
		{FrameMessageLast, []byte{}},
	}
	var buf bytes.Buffer
	fw := NewFrameWriter(&buf)
	var want []byte
	for _, f := range frames {
		if err := fw.WriteFrame(f.t, f.payload); err != nil {
			t.Fatal(err)
		}
		want = AppendFrame(want, f.t, f.payload)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("FrameWriter output differs from AppendFrame")
	}
	// One byte at a time exercises every partial-read path.
	fr := NewFrameReader(iotest.OneByteReader(bytes.NewReader(want)), 1<<20)
	for i, f := range frames {
		ft, p, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if ft != f.t || !bytes.Equal(p, f.payload) {
			t.Fatalf("frame %d: got %s/%d bytes, want %s/%d", i, ft, len(p), f.t, len(f.payload))
		}
	}
	for range 2 { // EOF is sticky
		if _, _, err := fr.ReadFrame(); err != io.EOF {
			t.Fatalf("after last frame: %v, want io.EOF", err)
		}
	}
}

func TestFrameWriterSingleWrite(t *testing.T) {
	var w countingWriter
	fw := NewFrameWriter(&w)
	if err := fw.WriteFrame(FrameMessage, make([]byte, coalesceLimit)); err != nil {
		t.Fatal(err)
	}
	if w.writes != 1 {
		t.Errorf("small frame took %d writes, want 1", w.writes)
	}
	if err := fw.WriteFrame(FrameInvalid, nil); err == nil {
		t.Error("frame type 0 was written")
	}
	if err := fw.WriteFrame(FrameChunk, make([]byte, MaxFramePayloadLimit+1)); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("oversized write: %v, want ErrFrameTooLarge", err)
	}
}

type countingWriter struct{ writes int }

func (w *countingWriter) Write(p []byte) (int, error) { w.writes++; return len(p), nil }

func header(t FrameType, n uint64) []byte {
	return binary.AppendUvarint(binary.AppendUvarint(nil, uint64(t)), n)
}

func TestFrameReaderRejects(t *testing.T) {
	const limit = 100
	tests := []struct {
		name  string
		in    []byte
		want  error
		unexp bool // also io.ErrUnexpectedEOF
	}{
		{"empty", nil, io.EOF, false},
		{"type 0", header(0, 0), ErrBadRequest, false},
		{"type cut in varint", []byte{0x80}, ErrTruncated, true},
		{"no length", []byte{0x10}, ErrTruncated, true},
		{"length cut in varint", []byte{0x10, 0x80}, ErrTruncated, true},
		{"payload short", append(header(FrameMessage, 10), 1, 2, 3), ErrTruncated, true},
		{"payload missing", header(FrameMessage, 1), ErrTruncated, true},
		{"over limit", header(FrameMessage, limit+1), ErrFrameTooLarge, false},
		{"2^62 length", header(FrameMessage, 1<<62), ErrFrameTooLarge, false},
		{"max uint64 length", header(FrameMessage, 1<<64-1), ErrFrameTooLarge, false},
		{"varint overflow", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, ErrBadRequest, false},
		{"varint 11 bytes", []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x81, 0x00}, ErrBadRequest, false},
		{"non-minimal type", []byte{0x90, 0x00, 0x00}, ErrBadRequest, false},
		{"non-minimal length", []byte{0x10, 0x80, 0x00}, ErrBadRequest, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fr := NewFrameReader(bytes.NewReader(tt.in), limit)
			_, _, err := fr.ReadFrame()
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if tt.unexp && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("err = %v, want it to wrap io.ErrUnexpectedEOF", err)
			}
			if _, _, again := fr.ReadFrame(); again != err {
				t.Errorf("error not sticky: %v then %v", err, again)
			}
		})
	}
}

func TestFrameReaderAcceptsLimit(t *testing.T) {
	in := AppendFrame(nil, FrameChunk, make([]byte, 100))
	if _, p, err := NewFrameReader(bytes.NewReader(in), 100).ReadFrame(); err != nil || len(p) != 100 {
		t.Fatalf("frame at the limit: %d bytes, %v", len(p), err)
	}
	fr := NewFrameReader(bytes.NewReader(nil), MaxFramePayloadLimit*4)
	if fr.MaxPayload() != MaxFramePayloadLimit {
		t.Errorf("limit not clamped: %d", fr.MaxPayload())
	}
	fr.SetMaxPayload(-5)
	if fr.MaxPayload() != 1 {
		t.Errorf("limit not clamped up: %d", fr.MaxPayload())
	}
}

func TestFrameReaderPassesReadErrors(t *testing.T) {
	boom := errors.New("boom")
	in := AppendFrame(nil, FrameMessage, make([]byte, 50))
	r := io.MultiReader(bytes.NewReader(in[:20]), iotest.ErrReader(boom))
	_, _, err := NewFrameReader(r, 100).ReadFrame()
	if !errors.Is(err, boom) || errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want boom and not ErrTruncated", err)
	}
}

// A peer claiming a huge frame without sending it must not make the reader
// allocate the claimed size.
func TestFrameReaderGrowsWithData(t *testing.T) {
	in := append(header(FrameChunk, MaxFramePayloadLimit), make([]byte, 1000)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := NewFrameReader(bytes.NewReader(in), MaxFramePayloadLimit).ReadFrame()
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("a %d-byte claim backed by 1000 bytes allocated %d bytes", MaxFramePayloadLimit, grew)
	}
	// And a real large frame still arrives whole.
	big := bytes.Repeat([]byte("0123456789"), 100_000)
	_, p, err := NewFrameReader(bytes.NewReader(AppendFrame(nil, FrameChunk, big)), 2<<20).ReadFrame()
	if err != nil || !bytes.Equal(p, big) {
		t.Fatalf("large frame: %d bytes, %v", len(p), err)
	}
}

// loopReader repeats b forever.
type loopReader struct {
	b   []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.b[r.off:])
	r.off = (r.off + n) % len(r.b)
	return n, nil
}

func TestFrameReaderReusesBuffer(t *testing.T) {
	fr := NewFrameReader(&loopReader{b: AppendFrame(nil, FrameChunk, make([]byte, 40<<10))}, 1<<20)
	if _, _, err := fr.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, _, err := fr.ReadFrame(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("ReadFrame allocates %.1f times per frame, want 0", allocs)
	}
}

func FuzzFrameReader(f *testing.F) {
	var seed []byte
	seed = AppendFrame(seed, FrameMessage, []byte("hello"))
	seed = AppendFrame(seed, FrameChunk, bytes.Repeat([]byte{1}, 200))
	seed = AppendFrame(seed, FrameError, EncodeErrorFrame(nil, &Error{Code: CodeNotFound, Message: "x"}))
	f.Add(seed)
	f.Add(AppendFrame(nil, 0x4000, nil))
	f.Add(header(FrameMessage, 1<<62))
	f.Add([]byte{0x10, 0x80, 0x00})
	f.Fuzz(func(t *testing.T, in []byte) {
		fr := NewFrameReader(bytes.NewReader(in), 1024)
		var again []byte
		for {
			ft, p, err := fr.ReadFrame()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrFrameTooLarge) {
					t.Fatalf("unexpected error class: %v", err)
				}
				if err == io.EOF && !bytes.Equal(again, in) {
					t.Fatalf("clean EOF but re-encoding gives %x, input %x", again, in)
				}
				break
			}
			if ft == FrameInvalid || len(p) > 1024 {
				t.Fatalf("returned %s frame of %d bytes", ft, len(p))
			}
			again = AppendFrame(again, ft, p)
		}
		// Frames are canonical: what was read re-encodes to the bytes consumed.
		if !bytes.HasPrefix(in, again) {
			t.Fatalf("re-encoded frames %x are not a prefix of the input %x", again, in)
		}
	})
}

func TestReadUvarintMatchesStdlib(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 300, 1 << 35, 1<<63 - 1, 1 << 63, 1<<64 - 1} {
		b := binary.AppendUvarint(nil, v)
		got, err := readUvarint(bytes.NewReader(b))
		if err != nil || got != v {
			t.Errorf("readUvarint(%x) = %d, %v; want %d", b, got, err, v)
		}
		got, n, err := uvarint(b)
		if err != nil || got != v || n != len(b) {
			t.Errorf("uvarint(%x) = %d, %d, %v", b, got, n, err)
		}
	}
	if _, _, err := uvarint(nil); !errors.Is(err, ErrTruncated) {
		t.Errorf("uvarint(nil) = %v", err)
	}
	if !strings.Contains(ErrTruncated.Error(), "bad request") {
		t.Errorf("ErrTruncated text %q", ErrTruncated)
	}
}

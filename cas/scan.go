package cas

import (
	"context"
	"fmt"
	"io"
)

// scanWindowSize is how much of a pack a sequential scan reads at once.
const scanWindowSize = 4 << 20

// window serves reads of [0, end) of a pack from a large buffer so that a
// sequential scan costs few syscalls. Slices it returns are valid until the
// next call.
type window struct {
	r     io.ReaderAt
	end   int64
	buf   []byte
	start int64 // file offset of buf[0]
}

// bytes returns n bytes at off.
func (w *window) bytes(off int64, n int) ([]byte, error) {
	if off < 0 || n < 0 || off+int64(n) > w.end {
		return nil, io.ErrUnexpectedEOF
	}
	if off >= w.start && off+int64(n) <= w.start+int64(len(w.buf)) {
		return w.buf[off-w.start : off-w.start+int64(n)], nil
	}
	if err := w.fill(off, n); err != nil {
		return nil, err
	}
	return w.buf[:n], nil
}

// from returns the buffered bytes from off to the end of the window, at
// least one byte when off < end.
func (w *window) from(off int64) ([]byte, error) {
	if off < w.start || off >= w.start+int64(len(w.buf)) {
		if off >= w.end {
			return nil, io.ErrUnexpectedEOF
		}
		if err := w.fill(off, 1); err != nil {
			return nil, err
		}
	}
	return w.buf[off-w.start:], nil
}

func (w *window) fill(off int64, atLeast int) error {
	size := min(max(int64(scanWindowSize), int64(atLeast)), w.end-off)
	if int64(cap(w.buf)) < size {
		w.buf = make([]byte, size)
	}
	w.buf = w.buf[:size]
	if err := readFull(w.r, w.buf, off); err != nil {
		w.buf = w.buf[:0]
		return err
	}
	w.start = off
	return nil
}

// scannedRecord is a record found by scanPack; payload is only valid during
// the callback.
type scannedRecord struct {
	off     int64
	h       recordHeader
	payload []byte
}

// badRegion is a stretch of a pack that holds no valid record.
type badRegion struct {
	off, length int64
	reason      error
}

// scanPack walks the records of one pack in [start, end). Every record's
// header and CRC are checked, and with verifyHash its payload is also
// decoded and hashed. Where bytes do not form a valid record, scanPack
// resynchronizes (see resync) and reports the skipped stretch to onBad.
func scanPack(ctx context.Context, r io.ReaderAt, start, end int64, c *codecs, verifyHash bool,
	onRecord func(scannedRecord) error, onBad func(badRegion) error,
) error {
	w := &window{r: r, end: end}
	pos := start
	for n := 0; pos < end; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := readRecordAt(w, pos, c, verifyHash)
		if err == nil {
			if err := onRecord(rec); err != nil {
				return err
			}
			pos += rec.h.recordLen()
			continue
		}
		next, rerr := resync(ctx, w, pos+1, c)
		if rerr != nil {
			return rerr
		}
		if err := onBad(badRegion{off: pos, length: next - pos, reason: err}); err != nil {
			return err
		}
		pos = next
	}
	return nil
}

// readRecordAt decodes and checks the record at pos.
func readRecordAt(w *window, pos int64, c *codecs, verifyHash bool) (scannedRecord, error) {
	hb, err := w.bytes(pos, RecordHeaderSize)
	if err != nil {
		return scannedRecord{}, fmt.Errorf("%w: %d bytes left at %d, too few for a record header", ErrInvalidRecord, w.end-pos, pos)
	}
	h, err := parseRecordHeader(hb)
	if err != nil {
		return scannedRecord{}, err
	}
	if pos+h.recordLen() > w.end {
		return scannedRecord{}, fmt.Errorf("%w: record of %d bytes at %d runs past the end (%d)", ErrInvalidRecord, h.recordLen(), pos, w.end)
	}
	rb, err := w.bytes(pos, int(h.recordLen()))
	if err != nil {
		return scannedRecord{}, fmt.Errorf("%w: read record at %d: %w", ErrMissing, pos, err)
	}
	if !recordCRCValid(h, rb) {
		return scannedRecord{}, fmt.Errorf("%w: CRC mismatch in record at %d (chunk %s)", ErrCorrupt, pos, h.ID.Short())
	}
	payload := rb[RecordHeaderSize:]
	if verifyHash {
		if err := verifyPayload(c, h, payload); err != nil {
			return scannedRecord{}, fmt.Errorf("record at %d: %w", pos, err)
		}
	}
	return scannedRecord{off: pos, h: h, payload: payload}, nil
}

// verifyPayload decodes a payload and checks it against its header's ID.
func verifyPayload(c *codecs, h recordHeader, payload []byte) error {
	data, err := c.decode(h.Codec, payload, h.RawLen)
	if err != nil {
		return fmt.Errorf("chunk %s: %w", h.ID, err)
	}
	if Sum(data) != h.ID {
		return fmt.Errorf("%w: chunk %s: decoded bytes hash to %s", ErrCorrupt, h.ID, Sum(data))
	}
	return nil
}

// resync finds the next offset at or after from where a valid record
// starts, or w.end. A candidate must have a valid format byte, lengths
// within bounds that fit before the end, a matching CRC, and a payload that
// decodes and hashes to its ID. That last check makes a false positive
// harmless: a "record" found inside some other payload is still a genuine
// chunk under its true ID. In random bytes about one offset in 2^23 passes
// the cheap checks, so the scan costs little more than reading the bytes.
func resync(ctx context.Context, w *window, from int64, c *codecs) (int64, error) {
	q := from
	for steps := 0; q+RecordHeaderSize <= w.end; steps++ {
		if steps%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
		}
		buf, err := w.from(q)
		if err != nil {
			return w.end, nil
		}
		i := 0
		for i < len(buf) && (buf[i]>>4 != recordFormatVersion || !Codec(buf[i]&0x0f).valid()) {
			i++
		}
		q += int64(i)
		if i == len(buf) {
			continue
		}
		if q+RecordHeaderSize > w.end {
			break
		}
		if _, err := readRecordAt(w, q, c, true); err == nil {
			return q, nil
		}
		q++
	}
	return w.end, nil
}

package cas

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Codec says how a record's payload encodes the chunk. The value is part of
// the on-disk format (the low nibble of a record's first byte) and of the
// index entries; never renumber.
type Codec uint8

// Codecs.
const (
	CodecRaw  Codec = 0 // payload is the chunk itself
	CodecZstd Codec = 1 // payload is one or more zstd frames of the chunk
)

func (c Codec) String() string {
	switch c {
	case CodecRaw:
		return "raw"
	case CodecZstd:
		return "zstd"
	default:
		return fmt.Sprintf("codec(%d)", uint8(c))
	}
}

func (c Codec) valid() bool { return c == CodecRaw || c == CodecZstd }

// Format constants; doc.go describes the layouts they size.
const (
	// MaxChunkSizeLimit is the hard cap on a chunk's raw size and so on any
	// length the decoder will allocate for.
	MaxChunkSizeLimit = 16 << 20

	// PackHeaderSize is the length of the header at the start of every pack.
	PackHeaderSize = 16
	// RecordHeaderSize is the fixed length of a record header.
	RecordHeaderSize = 45

	packMagic           = "QPAK"
	packFormatVersion   = 1
	recordFormatVersion = 1

	// Offsets inside a record header.
	recOffFormat = 0
	recOffID     = 1
	recOffStored = recOffID + IDSize // 33
	recOffRaw    = recOffStored + 4  // 37
	recOffCRC    = recOffRaw + 4     // 41
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordHeader is the decoded fixed-size header of a pack record.
type recordHeader struct {
	Codec     Codec
	ID        ID
	StoredLen uint32
	RawLen    uint32
	CRC       uint32
}

// recordLen is the length of the whole record, header included.
func (h recordHeader) recordLen() int64 { return RecordHeaderSize + int64(h.StoredLen) }

// checkLengths enforces the invariants every writer keeps, so a reader can
// reject garbage before allocating: raw records store the chunk as is, zstd
// records are only written when they are strictly smaller than the chunk.
func checkLengths(codec Codec, stored, raw uint32) error {
	if raw > MaxChunkSizeLimit {
		return fmt.Errorf("%w: raw length %d exceeds %d", ErrInvalidRecord, raw, MaxChunkSizeLimit)
	}
	switch codec {
	case CodecRaw:
		if stored != raw {
			return fmt.Errorf("%w: raw record with stored length %d != raw length %d", ErrInvalidRecord, stored, raw)
		}
	case CodecZstd:
		if stored == 0 || stored >= raw {
			return fmt.Errorf("%w: zstd record with stored length %d for raw length %d", ErrInvalidRecord, stored, raw)
		}
	default:
		return fmt.Errorf("%w: unknown codec %d", ErrInvalidRecord, codec)
	}
	return nil
}

// parseRecordHeader decodes and sanity-checks a record header. It does not
// verify the CRC, which also covers the payload.
func parseRecordHeader(b []byte) (recordHeader, error) {
	var h recordHeader
	if len(b) < RecordHeaderSize {
		return h, fmt.Errorf("%w: header needs %d bytes, have %d", ErrInvalidRecord, RecordHeaderSize, len(b))
	}
	format := b[recOffFormat]
	if format>>4 != recordFormatVersion {
		return h, fmt.Errorf("%w: record format version %d, want %d", ErrInvalidRecord, format>>4, recordFormatVersion)
	}
	h.Codec = Codec(format & 0x0f)
	copy(h.ID[:], b[recOffID:recOffStored])
	h.StoredLen = binary.LittleEndian.Uint32(b[recOffStored:])
	h.RawLen = binary.LittleEndian.Uint32(b[recOffRaw:])
	h.CRC = binary.LittleEndian.Uint32(b[recOffCRC:])
	if err := checkLengths(h.Codec, h.StoredLen, h.RawLen); err != nil {
		return h, err
	}
	return h, nil
}

// putRecordHeader writes the header for payload into b[:RecordHeaderSize],
// computing the CRC over the header fields and the payload.
func putRecordHeader(b []byte, codec Codec, id ID, rawLen uint32, payload []byte) {
	b[recOffFormat] = recordFormatVersion<<4 | byte(codec)
	copy(b[recOffID:], id[:])
	binary.LittleEndian.PutUint32(b[recOffStored:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[recOffRaw:], rawLen)
	crc := crc32.Update(0, castagnoli, b[:recOffCRC])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(b[recOffCRC:], crc)
}

// appendRecord appends a complete record (header and payload) to dst.
func appendRecord(dst []byte, codec Codec, id ID, rawLen uint32, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, RecordHeaderSize)...)
	dst = append(dst, payload...)
	putRecordHeader(dst[start:], codec, id, rawLen, dst[start+RecordHeaderSize:])
	return dst
}

// recordCRCValid reports whether the CRC in rec (a whole record) matches.
func recordCRCValid(h recordHeader, rec []byte) bool {
	crc := crc32.Update(0, castagnoli, rec[:recOffCRC])
	crc = crc32.Update(crc, castagnoli, rec[RecordHeaderSize:RecordHeaderSize+int(h.StoredLen)])
	return crc == h.CRC
}

// decodeRecord parses the record at the start of b and checks its CRC. It
// returns the header and the payload (a sub-slice of b); it never decodes
// the payload, so it costs no allocation.
func decodeRecord(b []byte) (recordHeader, []byte, error) {
	h, err := parseRecordHeader(b)
	if err != nil {
		return h, nil, err
	}
	if int64(len(b)) < h.recordLen() {
		return h, nil, fmt.Errorf("%w: record of %d bytes truncated to %d", ErrInvalidRecord, h.recordLen(), len(b))
	}
	if !recordCRCValid(h, b) {
		return h, nil, fmt.Errorf("%w: CRC mismatch in record for %s", ErrCorrupt, h.ID.Short())
	}
	return h, b[RecordHeaderSize:h.recordLen()], nil
}

// putPackHeader writes the header of pack number num into b[:PackHeaderSize].
func putPackHeader(b []byte, num uint64) {
	copy(b, packMagic)
	b[4] = packFormatVersion
	b[5], b[6], b[7] = 0, 0, 0
	binary.LittleEndian.PutUint64(b[8:], num)
}

// parsePackHeader checks a pack header and returns the pack number it holds.
func parsePackHeader(b []byte) (uint64, error) {
	if len(b) < PackHeaderSize {
		return 0, fmt.Errorf("%w: pack header needs %d bytes, have %d", ErrInvalidRecord, PackHeaderSize, len(b))
	}
	if string(b[:4]) != packMagic {
		return 0, fmt.Errorf("%w: bad pack magic %q", ErrInvalidRecord, b[:4])
	}
	if b[4] != packFormatVersion {
		return 0, fmt.Errorf("%w: pack format version %d, want %d", ErrInvalidRecord, b[4], packFormatVersion)
	}
	if b[5]|b[6]|b[7] != 0 {
		return 0, fmt.Errorf("%w: reserved pack header bytes not zero", ErrInvalidRecord)
	}
	return binary.LittleEndian.Uint64(b[8:]), nil
}

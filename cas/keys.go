package cas

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Key prefixes of the store in the shared badger database. The cas package
// owns 0x01–0x0F; package manifest uses 0x10 and up. doc.go describes the
// values.
const (
	// KeyPrefixIndex: 0x01 ‖ ID(32) → index entry (where the chunk is).
	KeyPrefixIndex byte = 0x01
	// KeyPrefixPack: 0x02 ‖ pack number (8, big-endian so keys sort by
	// number) → pack metadata (committed length and counters).
	KeyPrefixPack byte = 0x02
	// KeyPrefixMeta: 0x03 ‖ name byte → the store's own settings.
	KeyPrefixMeta byte = 0x03

	// KeyPrefixLast is the highest prefix the cas package may ever use.
	KeyPrefixLast byte = 0x0F
)

// Meta keys (after KeyPrefixMeta).
const (
	metaFormat   byte = 0x01 // store format version, one byte
	metaNextPack byte = 0x02 // next pack number to allocate, uvarint
	metaRebuild  byte = 0x03 // present while the index is known to be incomplete
)

// storeFormatVersion is bumped on any incompatible change of the layout.
const storeFormatVersion = 1

// Value format versions (high nibble of the first value byte).
const (
	indexValueVersion = 1
	// packValueVersion 2 added the last-write time; version 1 values
	// (without it) still decode, as written at time zero. Version 3 added
	// a flags field (remote); version 2 values decode as local packs.
	packValueVersion = 3
)

// maxValueLen bounds what the value decoders will look at.
const maxValueLen = 64

func indexKey(id ID) []byte {
	k := make([]byte, 1+IDSize)
	k[0] = KeyPrefixIndex
	copy(k[1:], id[:])
	return k
}

func packKey(num uint64) []byte {
	k := make([]byte, 9)
	k[0] = KeyPrefixPack
	binary.BigEndian.PutUint64(k[1:], num)
	return k
}

func metaKey(name byte) []byte { return []byte{KeyPrefixMeta, name} }

func idFromIndexKey(k []byte) (ID, error) {
	if len(k) != 1+IDSize || k[0] != KeyPrefixIndex {
		return ID{}, fmt.Errorf("%w: index key %x", ErrInvalidRecord, k)
	}
	return ID(k[1:]), nil
}

func packFromKey(k []byte) (uint64, error) {
	if len(k) != 9 || k[0] != KeyPrefixPack {
		return 0, fmt.Errorf("%w: pack key %x", ErrInvalidRecord, k)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// Location says where a chunk's record is.
type Location struct {
	Pack      uint64 // pack number
	Offset    int64  // offset of the record header in the pack file
	StoredLen uint32 // payload length in the pack
	RawLen    uint32 // chunk length
	Codec     Codec
}

// recordEnd is the offset just past the record.
func (l Location) recordEnd() int64 { return l.Offset + RecordHeaderSize + int64(l.StoredLen) }

// encodeIndexValue: version<<4|codec, then uvarints pack, offset, stored,
// raw: 8–20 bytes for ordinary chunks.
func encodeIndexValue(l Location) []byte {
	b := make([]byte, 1, 1+4*binary.MaxVarintLen64)
	b[0] = indexValueVersion<<4 | byte(l.Codec)
	b = binary.AppendUvarint(b, l.Pack)
	b = binary.AppendUvarint(b, uint64(l.Offset))
	b = binary.AppendUvarint(b, uint64(l.StoredLen))
	b = binary.AppendUvarint(b, uint64(l.RawLen))
	return b
}

func decodeIndexValue(b []byte) (Location, error) {
	var l Location
	if len(b) < 5 || len(b) > maxValueLen {
		return l, fmt.Errorf("%w: index value of %d bytes", ErrInvalidRecord, len(b))
	}
	if b[0]>>4 != indexValueVersion {
		return l, fmt.Errorf("%w: index value version %d", ErrInvalidRecord, b[0]>>4)
	}
	l.Codec = Codec(b[0] & 0x0f)
	var fields [4]uint64
	if err := readUvarints(b[1:], fields[:]); err != nil {
		return l, fmt.Errorf("index value: %w", err)
	}
	if fields[1] > 1<<40 || fields[2] > MaxChunkSizeLimit || fields[3] > MaxChunkSizeLimit {
		return l, fmt.Errorf("%w: index value out of range %v", ErrInvalidRecord, fields)
	}
	l.Pack, l.Offset, l.StoredLen, l.RawLen = fields[0], int64(fields[1]), uint32(fields[2]), uint32(fields[3])
	if err := checkLengths(l.Codec, l.StoredLen, l.RawLen); err != nil {
		return l, fmt.Errorf("index value: %w", err)
	}
	return l, nil
}

// packMeta is what badger knows about one pack.
type packMeta struct {
	Committed  int64  // durable length of the pack file; bytes past it are torn tail
	Records    uint64 // records in the committed part, orphans included
	LiveChunks uint64 // index entries pointing into the pack
	LiveStored uint64 // sum of their payload lengths
	LiveRaw    uint64 // sum of their raw lengths
	// Written is when an index entry last came to point into the pack
	// (Unix nanoseconds, 0 if unknown): no entry in it is younger, so gc
	// measures its safety margin against it.
	Written int64
	// Remote is set once the pack lives in the store's Backend (uploaded
	// and confirmed); its local file is then gone or about to go.
	Remote bool
}

// packFlagRemote is bit 0 of a version 3 pack value's flags field.
const packFlagRemote = 1

// liveBytes is the pack space the live records occupy, headers included.
func (m packMeta) liveBytes() int64 {
	return int64(m.LiveStored) + int64(m.LiveChunks)*RecordHeaderSize
}

func encodePackMeta(m packMeta) []byte {
	b := make([]byte, 1, 1+7*binary.MaxVarintLen64)
	b[0] = packValueVersion << 4
	b = binary.AppendUvarint(b, uint64(m.Committed))
	b = binary.AppendUvarint(b, m.Records)
	b = binary.AppendUvarint(b, m.LiveChunks)
	b = binary.AppendUvarint(b, m.LiveStored)
	b = binary.AppendUvarint(b, m.LiveRaw)
	b = binary.AppendUvarint(b, uint64(max(m.Written, 0)))
	var flags uint64
	if m.Remote {
		flags |= packFlagRemote
	}
	b = binary.AppendUvarint(b, flags)
	return b
}

func decodePackMeta(b []byte) (packMeta, error) {
	var m packMeta
	if len(b) < 6 || len(b) > maxValueLen {
		return m, fmt.Errorf("%w: pack value of %d bytes", ErrInvalidRecord, len(b))
	}
	var f [7]uint64
	switch b[0] >> 4 {
	case 1:
		if err := readUvarints(b[1:], f[:5]); err != nil {
			return m, fmt.Errorf("pack value: %w", err)
		}
	case 2:
		if err := readUvarints(b[1:], f[:6]); err != nil {
			return m, fmt.Errorf("pack value: %w", err)
		}
	case packValueVersion:
		if err := readUvarints(b[1:], f[:]); err != nil {
			return m, fmt.Errorf("pack value: %w", err)
		}
		if f[6]&^packFlagRemote != 0 {
			return m, fmt.Errorf("%w: unknown pack flags %#x", ErrInvalidRecord, f[6])
		}
	default:
		return m, fmt.Errorf("%w: pack value version %d", ErrInvalidRecord, b[0]>>4)
	}
	if f[0] > 1<<40 {
		return m, fmt.Errorf("%w: pack committed length %d", ErrInvalidRecord, f[0])
	}
	if f[5] > math.MaxInt64 {
		return m, fmt.Errorf("%w: pack write time %d", ErrInvalidRecord, f[5])
	}
	return packMeta{Committed: int64(f[0]), Records: f[1], LiveChunks: f[2], LiveStored: f[3], LiveRaw: f[4], Written: int64(f[5]), Remote: f[6]&packFlagRemote != 0}, nil
}

// readUvarints decodes exactly len(out) uvarints that fill b.
func readUvarints(b []byte, out []uint64) error {
	for i := range out {
		v, k := binary.Uvarint(b)
		if k <= 0 {
			return fmt.Errorf("%w: bad uvarint in field %d", ErrInvalidRecord, i)
		}
		out[i], b = v, b[k:]
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrInvalidRecord, len(b))
	}
	return nil
}

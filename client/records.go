package client

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/syncproto"
)

// Root is a directory this client syncs, as the local state knows it.
type Root struct {
	// Name is the root's name on the server.
	Name string
	// Dir is the absolute local directory.
	Dir string
	// Chunking are the root's chunk parameters, fixed by the server.
	Chunking chunker.Params
	// Cursor is the root seq the client has pulled up to: the watch stream
	// and the heads request resume after it.
	Cursor uint64
	// LastSync is when a sync pass over this root last completed; zero
	// before the first.
	LastSync time.Time
}

// FileRecord is what the client knows about one file of a root: the
// version it last agreed with the server (the base), and the local file as
// last scanned or written (its content hash, chunk list and stat).
type FileRecord struct {
	// Path is the sync path (relative, '/'-separated, relpath.Check valid).
	Path string
	// BaseSeq and BaseHash are the server version the local file last
	// agreed with; 0 and zero for a file the server has never accepted.
	BaseSeq  uint64
	BaseHash cas.ID
	// Hash is the BLAKE3-256 of the local content and Chunks its chunk list
	// (empty for an empty file). Zero and nil when Deleted.
	Hash   cas.ID
	Chunks []syncproto.ChunkRef
	// Stat is the local file's stat when Hash was computed.
	Stat FileStat
	// ScannedAt (Unix ns) is the wall time just before Stat was taken. A file
	// whose mtime is not clearly older is racy: see [IsRacy].
	ScannedAt int64
	// LastUpdate is the client's logical clock for this file (QUIC-S's
	// LastUpdateTimestamp): it increases with every local change found.
	LastUpdate uint64
	// Pending is set while a local change (content, mode or deletion) has
	// not been accepted by the server.
	Pending bool
	// Deleted is set when the local file is gone; the record stays until
	// the server has accepted the deletion.
	Deleted bool
	// HasCandidate is set when the server refused this record's change as
	// a conflict and kept it as a candidate: Candidate is the content it
	// kept (zero for a deletion). A force-sync after the conflict is
	// resolved then knows that content is safe on the server and does not
	// propose it again, which would reopen the conflict just resolved.
	HasCandidate bool
	Candidate    cas.ID
}

// Format of the values, version 1. Integers are varints (encoding/binary);
// "bytes" is a uvarint length followed by that many bytes.
//
//	root record:  0x01, dir bytes, min, avg, max uvarint, cursor uvarint,
//	              last sync varint (Unix ns, 0 = never)
//	file record:  0x01, flags byte (bit 0 pending, bit 1 deleted),
//	              base seq uvarint, base hash [32], hash [32],
//	              size varint, mode uvarint, mtime varint, ctime varint,
//	              inode uvarint, dev uvarint, scanned-at varint,
//	              last update uvarint,
//	              candidate [32] (only when flag bit 2 is set)
//	chunk list:   0x01, count uvarint, count × (id [32], size uint32 BE)
const recordFormat = 1

// Bounds checked before anything is allocated.
const (
	maxRecordLen = 64 << 10
	maxDirLen    = 32 << 10
	// MaxChunks bounds a file's chunk list: 4 Mi chunks is 256 GiB at the
	// default 64 KiB average, as on the server.
	MaxChunks       = 4 << 20
	chunkRefLen     = cas.IDSize + 4
	maxChunkListLen = 1 + binary.MaxVarintLen64 + MaxChunks*chunkRefLen
)

const (
	flagPending byte = 1 << iota
	flagDeleted
	flagCandidate
	flagsKnown = flagPending | flagDeleted | flagCandidate
)

func encodeRoot(r Root) []byte {
	b := make([]byte, 0, 32+len(r.Dir))
	b = append(b, recordFormat)
	b = binary.AppendUvarint(b, uint64(len(r.Dir)))
	b = append(b, r.Dir...)
	b = binary.AppendUvarint(b, uint64(r.Chunking.Min))
	b = binary.AppendUvarint(b, uint64(r.Chunking.Avg))
	b = binary.AppendUvarint(b, uint64(r.Chunking.Max))
	b = binary.AppendUvarint(b, r.Cursor)
	b = binary.AppendVarint(b, unixNanos(r.LastSync))
	return b
}

// decodeRoot decodes a root record; name comes from the key.
func decodeRoot(name string, v []byte) (Root, error) {
	d := decoder{b: v, what: "root " + name}
	d.version(maxRecordLen)
	r := Root{Name: name}
	r.Dir = d.str(maxDirLen)
	r.Chunking.Min = d.int(chunker.LargestMax)
	r.Chunking.Avg = d.int(chunker.LargestMax)
	r.Chunking.Max = d.int(chunker.LargestMax)
	r.Cursor = d.uvarint()
	r.LastSync = fromUnixNanos(d.varint())
	if err := d.end(); err != nil {
		return Root{}, err
	}
	return r, nil
}

func encodeFile(f *FileRecord) []byte {
	b := make([]byte, 0, 128)
	b = append(b, recordFormat)
	var flags byte
	if f.Pending {
		flags |= flagPending
	}
	if f.Deleted {
		flags |= flagDeleted
	}
	if f.HasCandidate {
		flags |= flagCandidate
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, f.BaseSeq)
	b = append(b, f.BaseHash[:]...)
	b = append(b, f.Hash[:]...)
	b = binary.AppendVarint(b, f.Stat.Size)
	b = binary.AppendUvarint(b, uint64(f.Stat.Mode))
	b = binary.AppendVarint(b, f.Stat.MTime)
	b = binary.AppendVarint(b, f.Stat.CTime)
	b = binary.AppendUvarint(b, f.Stat.Inode)
	b = binary.AppendUvarint(b, f.Stat.Dev)
	b = binary.AppendVarint(b, f.ScannedAt)
	b = binary.AppendUvarint(b, f.LastUpdate)
	if f.HasCandidate {
		b = append(b, f.Candidate[:]...)
	}
	return b
}

// decodeFile decodes a file record (without its chunk list); path comes
// from the key.
func decodeFile(path string, v []byte) (FileRecord, error) {
	d := decoder{b: v, what: "file record " + path}
	d.version(maxRecordLen)
	f := FileRecord{Path: path}
	flags := d.byte()
	if flags&^flagsKnown != 0 && d.err == nil {
		d.fail(fmt.Sprintf("unknown flags %#02x", flags))
	}
	f.Pending = flags&flagPending != 0
	f.Deleted = flags&flagDeleted != 0
	f.BaseSeq = d.uvarint()
	f.BaseHash = d.id()
	f.Hash = d.id()
	f.Stat.Size = d.varint()
	if f.Stat.Size < 0 && d.err == nil {
		d.fail(fmt.Sprintf("negative size %d", f.Stat.Size))
	}
	f.Stat.Mode = uint32(d.int(0o777))
	f.Stat.MTime = d.varint()
	f.Stat.CTime = d.varint()
	f.Stat.Inode = d.uvarint()
	f.Stat.Dev = d.uvarint()
	f.ScannedAt = d.varint()
	f.LastUpdate = d.uvarint()
	if flags&flagCandidate != 0 {
		f.HasCandidate = true
		f.Candidate = d.id()
	}
	if err := d.end(); err != nil {
		return FileRecord{}, err
	}
	return f, nil
}

func encodeChunks(chunks []syncproto.ChunkRef) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(chunks)*chunkRefLen)
	b = append(b, recordFormat)
	b = binary.AppendUvarint(b, uint64(len(chunks)))
	for _, c := range chunks {
		b = append(b, c.ID[:]...)
		b = binary.BigEndian.AppendUint32(b, c.Size)
	}
	return b
}

// encodeBase encodes a base chunk list: the format byte, the base's
// content hash, then the list as in encodeChunks.
func encodeBase(hash cas.ID, chunks []syncproto.ChunkRef) []byte {
	list := encodeChunks(chunks)
	b := make([]byte, 0, 1+cas.IDSize+len(list)-1)
	b = append(b, recordFormat)
	b = append(b, hash[:]...)
	return append(b, list[1:]...)
}

func decodeBase(path string, v []byte) (cas.ID, []syncproto.ChunkRef, error) {
	if len(v) < 1+cas.IDSize {
		return cas.ID{}, nil, fmt.Errorf("%w: base chunk list %s of %d bytes", ErrCorrupt, path, len(v))
	}
	var hash cas.ID
	copy(hash[:], v[1:])
	list := append([]byte{v[0]}, v[1+cas.IDSize:]...)
	chunks, err := decodeChunks(path+" (base)", list)
	return hash, chunks, err
}

func decodeChunks(path string, v []byte) ([]syncproto.ChunkRef, error) {
	d := decoder{b: v, what: "chunk list " + path}
	d.version(maxChunkListLen)
	n := d.uvarint()
	if d.err != nil {
		return nil, d.err
	}
	if n > MaxChunks || n*chunkRefLen != uint64(len(d.b)) {
		return nil, d.errorf("%d chunks in %d bytes", n, len(d.b))
	}
	if n == 0 {
		return nil, nil
	}
	chunks := make([]syncproto.ChunkRef, n)
	for i := range chunks {
		chunks[i].ID = d.id()
		chunks[i].Size = binary.BigEndian.Uint32(d.take(4))
		if chunks[i].Size == 0 {
			return nil, d.errorf("chunk %d has size 0", i)
		}
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	return chunks, nil
}

// decoder reads a record and remembers the first problem; every read after
// it returns zero values, so decoding code can check once at the end.
type decoder struct {
	b       []byte
	what    string
	err     error
	scratch [binary.MaxVarintLen64]byte
}

func (d *decoder) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrCorrupt, d.what, fmt.Sprintf(format, args...))
}

func (d *decoder) fail(problem string) {
	if d.err == nil {
		d.err = d.errorf("%s", problem)
	}
}

// version checks the length bound and consumes the format byte.
func (d *decoder) version(maxLen int) {
	switch {
	case len(d.b) > maxLen:
		d.fail(fmt.Sprintf("%d bytes, more than %d", len(d.b), maxLen))
	case len(d.b) == 0:
		d.fail("empty")
	case d.b[0] != recordFormat:
		d.fail(fmt.Sprintf("format %d, want %d", d.b[0], recordFormat))
	default:
		d.b = d.b[1:]
	}
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return make([]byte, n)
	}
	if len(d.b) < n {
		d.fail("truncated")
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte { return d.take(1)[0] }

func (d *decoder) id() cas.ID { return cas.ID(d.take(cas.IDSize)) }

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 || n != len(binary.AppendUvarint(d.scratch[:0], v)) {
		// Overlong forms are refused too: one record, one encoding.
		d.fail("bad uvarint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 || n != len(binary.AppendVarint(d.scratch[:0], v)) {
		d.fail("bad varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

// int reads a uvarint that must be at most limit.
func (d *decoder) int(limit int) int {
	v := d.uvarint()
	if v > uint64(limit) {
		d.fail(fmt.Sprintf("value %d above %d", v, limit))
		return 0
	}
	return int(v)
}

func (d *decoder) str(limit int) string {
	n := d.int(limit)
	return string(d.take(n))
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.fail(fmt.Sprintf("%d trailing bytes", len(d.b)))
	}
	return d.err
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNanos(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

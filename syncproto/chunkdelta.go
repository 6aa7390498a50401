package syncproto

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"

	"github.com/quic-s/quics/cas"
)

// Delta-encoded chunks. A changed chunk usually differs from the chunk it
// replaced by a few bytes; the delta codec sends it as copies from source
// chunks the receiver already has, named in the data, and literals:
//
//	count    uvarint   1..MaxDeltaSources
//	sources  count × 32-byte chunk IDs
//	form     1 byte: 0 the op stream follows, 1 its zstd compression
//	ops      uvarint len<<1|kind: kind 0 is followed by len literal bytes,
//	         kind 1 by a uvarint offset, and copies len bytes from the
//	         sources concatenated in order
//
// An uploader does not have the sources' bytes (they are the server's
// copy of what the local file held before the edit), only their block
// signatures (SignaturesRequest): EncodeDelta matches whole blocks. The
// server, sending a download against chunks the client holds, has both:
// EncodeDeltaFrom matches bytes exactly.
//
// A delta decodes to exactly RawLen bytes hashing to the chunk ID, or not
// at all: DecodeDelta checks every op against the sources and the output
// before it copies, and verifies the result.

// ChunkDelta is the delta codec (see ChunkCodec). It only travels, never
// sits in a store, so it is numbered apart from the store's codecs, which
// the plain codecs equal.
const ChunkDelta ChunkCodec = 0x40

// Op stream forms of a ChunkDelta.
const (
	deltaOpsRaw  = 0
	deltaOpsZstd = 1
)

// Signature blocks: a rolling checksum to find candidates at every offset,
// then a truncated BLAKE3 to confirm them.
const (
	sigWeakLen   = 4
	sigStrongLen = 8
	sigEntryLen  = sigWeakLen + sigStrongLen

	// MinSignatureBlock and MaxSignatureBlock bound a SignaturesRequest's
	// block size.
	MinSignatureBlock = 64
	MaxSignatureBlock = 64 << 10
)

// ErrDeltaSource means a delta-encoded chunk names a source the receiver
// cannot use (it does not have it, or the sender may not read it).
var ErrDeltaSource = errors.New("syncproto: delta source unavailable")

// SignatureBlockSize is the block size a client asks for when it wants
// signatures of chunks of about size bytes: the power of two nearest above
// sqrt(6·size), within the protocol's bounds, which balances signature
// bytes (12 per block) against the literal bytes of an edit (about a
// block).
func SignatureBlockSize(size int) int {
	b := MinSignatureBlock
	for b < 8192 && b*b < 6*size {
		b *= 2
	}
	return b
}

// weakSum is the rolling checksum of a block (the two 16-bit sums of rsync).
type weakSum struct {
	a, b uint32
	n    uint32
}

func newWeak(block []byte) weakSum {
	w := weakSum{n: uint32(len(block))}
	for i, x := range block {
		w.a += uint32(x)
		w.b += uint32(len(block)-i) * uint32(x)
	}
	return w
}

// roll moves the window one byte: out leaves, in enters.
func (w *weakSum) roll(out, in byte) {
	w.a += uint32(in) - uint32(out)
	w.b += w.a - w.n*uint32(out)
}

func (w weakSum) sum() uint32 { return w.a&0xffff | w.b<<16 }

func strongSum(block []byte) (s [sigStrongLen]byte) {
	full := blake3.Sum256(block)
	copy(s[:], full[:])
	return s
}

// Sign returns the signature of data in blocks of blockSize: for each
// whole block, its rolling checksum (4 bytes, little endian) and the first
// 8 bytes of its BLAKE3-256. A shorter tail has no entry.
func Sign(data []byte, blockSize int) []byte {
	if blockSize < MinSignatureBlock {
		blockSize = MinSignatureBlock
	}
	n := len(data) / blockSize
	out := make([]byte, 0, n*sigEntryLen)
	for i := range n {
		block := data[i*blockSize : (i+1)*blockSize]
		out = binary.LittleEndian.AppendUint32(out, newWeak(block).sum())
		s := strongSum(block)
		out = append(out, s[:]...)
	}
	return out
}

// SignatureLen is the length of a valid signature of a chunk of size
// bytes in blocks of blockSize.
func SignatureLen(size, blockSize int) int {
	if blockSize < MinSignatureBlock {
		return 0
	}
	return size / blockSize * sigEntryLen
}

// DeltaSource is a chunk a delta is computed against: its ID and size, and
// the signature of its blocks (Sign) for an encoder that lacks its bytes.
type DeltaSource struct {
	ID        cas.ID
	Size      int
	BlockSize int
	Signature []byte
}

// blockRef is a source block a rolling checksum may stand for.
type blockRef struct {
	strong [sigStrongLen]byte
	off    int // in the concatenated sources
}

// EncodeDelta returns data, whose ID is id, as a ChunkDelta chunk against
// srcs, matching whole blocks of the sources by their signatures. Sources
// must share one block size. ok is false when nothing matched or the delta
// is not smaller than data; the caller then sends the chunk as it is.
func EncodeDelta(id cas.ID, data []byte, srcs []DeltaSource) (c Chunk, ok bool) {
	if len(srcs) == 0 || len(srcs) > MaxDeltaSources {
		return Chunk{}, false
	}
	bs := srcs[0].BlockSize
	blocks := map[uint32][]blockRef{}
	off := 0
	for _, s := range srcs {
		if s.BlockSize != bs || bs < MinSignatureBlock || len(s.Signature) != SignatureLen(s.Size, bs) {
			return Chunk{}, false
		}
		for i := 0; i < len(s.Signature); i += sigEntryLen {
			weak := binary.LittleEndian.Uint32(s.Signature[i:])
			var strong [sigStrongLen]byte
			copy(strong[:], s.Signature[i+sigWeakLen:])
			blocks[weak] = append(blocks[weak], blockRef{strong: strong, off: off + i/sigEntryLen*bs})
		}
		off += s.Size
	}
	if len(blocks) == 0 || len(data) < bs {
		return Chunk{}, false
	}
	var ops []byte
	matched := 0
	litStart := 0
	copyOff, copyLen := 0, 0
	flushCopy := func() {
		if copyLen > 0 {
			ops = binary.AppendUvarint(ops, uint64(copyLen)<<1|1)
			ops = binary.AppendUvarint(ops, uint64(copyOff))
			copyLen = 0
		}
	}
	literal := func(b []byte) {
		if len(b) == 0 {
			return
		}
		flushCopy()
		ops = binary.AppendUvarint(ops, uint64(len(b))<<1)
		ops = append(ops, b...)
	}
	i := 0
	w := newWeak(data[:bs])
	for i+bs <= len(data) {
		if cands := blocks[w.sum()]; cands != nil {
			s := strongSum(data[i : i+bs])
			at := -1
			for _, c := range cands {
				if c.strong == s {
					at = c.off
					// Prefer the block that extends the copy in progress.
					if copyLen > 0 && c.off == copyOff+copyLen {
						break
					}
				}
			}
			if at >= 0 {
				literal(data[litStart:i])
				if copyLen > 0 && at == copyOff+copyLen && litStart == i {
					copyLen += bs
				} else {
					flushCopy()
					copyOff, copyLen = at, bs
				}
				matched += bs
				i += bs
				litStart = i
				if i+bs <= len(data) {
					w = newWeak(data[i : i+bs])
				}
				continue
			}
		}
		if i+bs < len(data) {
			w.roll(data[i], data[i+bs])
		}
		i++
	}
	literal(data[litStart:])
	flushCopy()
	if matched == 0 {
		return Chunk{}, false
	}
	payload := binary.AppendUvarint(nil, uint64(len(srcs)))
	for _, s := range srcs {
		payload = append(payload, s.ID[:]...)
	}
	payload = appendOps(payload, ops)
	if len(payload) >= len(data) {
		return Chunk{}, false
	}
	return Chunk{Codec: ChunkDelta, ID: id, RawLen: len(data), Data: payload}, true
}

// appendOps appends an op stream in its smaller form: zstd when that
// shrinks it (literals of text do), raw otherwise.
func appendOps(dst, ops []byte) []byte {
	if zc, err := zstdCodec(); err == nil && len(ops) > 64 {
		z := zc.enc.EncodeAll(ops, make([]byte, 0, len(ops)))
		if len(z) < len(ops) {
			return append(append(dst, deltaOpsZstd), z...)
		}
	}
	return append(append(dst, deltaOpsRaw), ops...)
}

// fullBlock is the block EncodeDeltaFrom indexes its sources by; matches
// are then extended byte by byte, so it only bounds the shortest match.
const fullBlock = 32

// EncodeDeltaFrom returns data, whose ID is id, as a ChunkDelta chunk
// against sources (whose IDs are ids), for a sender that has their bytes:
// matches are found at any offset and extended byte by byte, so an edit
// costs about its own size. ok is false when that is not smaller than
// plain bytes, the size the chunk would travel in otherwise.
func EncodeDeltaFrom(id cas.ID, data []byte, ids []cas.ID, sources [][]byte, plain int) (c Chunk, ok bool) {
	if len(ids) == 0 || len(ids) > MaxDeltaSources || len(ids) != len(sources) || len(data) < fullBlock {
		return Chunk{}, false
	}
	var src []byte
	for _, s := range sources {
		src = append(src, s...)
	}
	if len(src) < fullBlock {
		return Chunk{}, false
	}
	index := make(map[uint32]int, len(src)/fullBlock)
	for off := 0; off+fullBlock <= len(src); off += fullBlock {
		index[newWeak(src[off:off+fullBlock]).sum()] = off
	}
	var ops []byte
	literal := func(b []byte) {
		if len(b) > 0 {
			ops = binary.AppendUvarint(ops, uint64(len(b))<<1)
			ops = append(ops, b...)
		}
	}
	matched := 0
	litStart, i := 0, 0
	w := newWeak(data[:fullBlock])
	for i+fullBlock <= len(data) {
		if off, hit := index[w.sum()]; hit && string(data[i:i+fullBlock]) == string(src[off:off+fullBlock]) {
			// Extend back into the pending literal, then forward.
			start, soff := i, off
			for start > litStart && soff > 0 && data[start-1] == src[soff-1] {
				start--
				soff--
			}
			end, send := i+fullBlock, off+fullBlock
			for end < len(data) && send < len(src) && data[end] == src[send] {
				end++
				send++
			}
			literal(data[litStart:start])
			ops = binary.AppendUvarint(ops, uint64(end-start)<<1|1)
			ops = binary.AppendUvarint(ops, uint64(soff))
			matched += end - start
			i, litStart = end, end
			if i+fullBlock <= len(data) {
				w = newWeak(data[i : i+fullBlock])
			}
			continue
		}
		if i+fullBlock < len(data) {
			w.roll(data[i], data[i+fullBlock])
		}
		i++
	}
	literal(data[litStart:])
	if matched == 0 {
		return Chunk{}, false
	}
	payload := binary.AppendUvarint(nil, uint64(len(ids)))
	for _, id := range ids {
		payload = append(payload, id[:]...)
	}
	payload = appendOps(payload, ops)
	if len(payload) >= min(plain, len(data)) {
		return Chunk{}, false
	}
	return Chunk{Codec: ChunkDelta, ID: id, RawLen: len(data), Data: payload}, true
}

// DeltaSources returns the source IDs a delta-encoded chunk names (nil for
// the plain codecs). It checks the header only; see DecodeDelta.
func DeltaSources(c Chunk) ([]cas.ID, error) {
	if c.Codec != ChunkDelta {
		return nil, nil
	}
	ids, _, err := parseSources(c)
	return ids, err
}

func parseSources(c Chunk) ([]cas.ID, []byte, error) {
	n, used, err := uvarint(c.Data)
	if err != nil {
		return nil, nil, fmt.Errorf("syncproto: %s chunk %s: source count: %w", c.Codec, c.ID.Short(), err)
	}
	rest := c.Data[used:]
	if n == 0 || n > MaxDeltaSources || uint64(len(rest)) < n*cas.IDSize {
		return nil, nil, fmt.Errorf("%w: %s chunk %s names %d sources in %d bytes, at most %d", ErrBadRequest, c.Codec, c.ID.Short(), n, len(rest), MaxDeltaSources)
	}
	ids := make([]cas.ID, n)
	for i := range ids {
		copy(ids[i][:], rest[i*cas.IDSize:])
	}
	return ids, rest[n*cas.IDSize:], nil
}

// DecodeDelta decodes a delta-encoded chunk with the bytes of the sources
// it names, in order, and verifies that the result hashes to its ID: a
// mismatch is ErrHashMismatch, anything malformed ErrBadRequest. It
// allocates at most RawLen bytes for the result (and, for zstd op streams,
// a bounded buffer for the ops), whatever the data claims.
func DecodeDelta(c Chunk, sources [][]byte) ([]byte, error) {
	ids, form, err := parseSources(c)
	if err != nil {
		return nil, err
	}
	if len(sources) != len(ids) {
		return nil, fmt.Errorf("%w: %s chunk %s: %d sources given for %d named", ErrDeltaSource, c.Codec, c.ID.Short(), len(sources), len(ids))
	}
	if c.Codec != ChunkDelta {
		return nil, fmt.Errorf("%w: chunk %s: %s is not a delta codec", ErrBadRequest, c.ID.Short(), c.Codec)
	}
	out, err := applyOps(form, sources, c.RawLen)
	if err != nil {
		return nil, fmt.Errorf("%s chunk %s: %w", c.Codec, c.ID.Short(), err)
	}
	if got := cas.Sum(out); got != c.ID {
		return nil, fmt.Errorf("%w: %s chunk %s decodes to bytes hashing to %s", ErrHashMismatch, c.Codec, c.ID.Short(), got.Short())
	}
	return out, nil
}

// applyOps runs a ChunkDelta form against the sources.
func applyOps(form []byte, sources [][]byte, rawLen int) ([]byte, error) {
	if len(form) < 1 {
		return nil, fmt.Errorf("%w: no op stream", ErrBadRequest)
	}
	ops := form[1:]
	switch form[0] {
	case deltaOpsRaw:
	case deltaOpsZstd:
		// A sender's ops never exceed the chunk plus a few bytes per
		// block-sized copy; twice the chunk is a generous bound.
		limit := 2*rawLen + 1024
		zc, err := zstdCodec()
		if err != nil {
			return nil, err
		}
		if ops, err = zc.dec.DecodeAll(ops, make([]byte, 0, limit)); err != nil {
			return nil, fmt.Errorf("%w: op stream: %v", ErrBadRequest, err)
		}
		if len(ops) > limit {
			return nil, fmt.Errorf("%w: op stream over %d bytes", ErrBadRequest, limit)
		}
	default:
		return nil, fmt.Errorf("%w: op stream form %d", ErrBadRequest, form[0])
	}
	var srcLen uint64
	for _, s := range sources {
		srcLen += uint64(len(s))
	}
	out := make([]byte, 0, rawLen)
	for len(ops) > 0 {
		tag, n, err := uvarint(ops)
		if err != nil {
			return nil, fmt.Errorf("op at output byte %d: %w", len(out), err)
		}
		ops = ops[n:]
		size := tag >> 1
		if size == 0 || size > uint64(rawLen-len(out)) {
			return nil, fmt.Errorf("%w: op of %d bytes at output byte %d of %d", ErrBadRequest, size, len(out), rawLen)
		}
		if tag&1 == 0 {
			if uint64(len(ops)) < size {
				return nil, fmt.Errorf("%w: literal of %d bytes, %d left", ErrTruncated, size, len(ops))
			}
			out = append(out, ops[:size]...)
			ops = ops[size:]
			continue
		}
		off, n, err := uvarint(ops)
		if err != nil {
			return nil, fmt.Errorf("copy at output byte %d: %w", len(out), err)
		}
		ops = ops[n:]
		if off > srcLen || size > srcLen-off {
			return nil, fmt.Errorf("%w: copy of %d bytes at source offset %d, sources hold %d", ErrBadRequest, size, off, srcLen)
		}
		out = appendSources(out, sources, off, size)
	}
	if len(out) != rawLen {
		return nil, fmt.Errorf("%w: ops make %d bytes, raw length %d", ErrBadRequest, len(out), rawLen)
	}
	return out, nil
}

// appendSources appends size bytes at off of the concatenated sources.
func appendSources(out []byte, sources [][]byte, off, size uint64) []byte {
	for _, s := range sources {
		if size == 0 {
			break
		}
		if off >= uint64(len(s)) {
			off -= uint64(len(s))
			continue
		}
		take := min(size, uint64(len(s))-off)
		out = append(out, s[off:off+take]...)
		size -= take
		off = 0
	}
	return out
}

// zstdCodecs hold the encoder and decoder of op streams, shared by every
// goroutine (EncodeAll and DecodeAll are safe for concurrent use).
type zstdCodecs struct {
	enc *zstd.Encoder
	dec *zstd.Decoder
}

var zstdCodec = sync.OnceValues(func() (zstdCodecs, error) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		return zstdCodecs{}, fmt.Errorf("syncproto: zstd encoder: %w", err)
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecodeAllCapLimit(true), zstd.WithDecoderMaxMemory(2*MaxFramePayloadLimit))
	if err != nil {
		return zstdCodecs{}, fmt.Errorf("syncproto: zstd decoder: %w", err)
	}
	return zstdCodecs{enc: enc, dec: dec}, nil
})

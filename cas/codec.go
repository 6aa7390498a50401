package cas

import (
	"fmt"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Stored is a chunk in its stored form: the bytes as they sit in a pack
// record. The server sends this form on the wire so a chunk is compressed
// once, by whoever wrote it first.
type Stored struct {
	Codec  Codec
	Data   []byte // the payload; for CodecRaw the chunk itself
	RawLen int    // length of the chunk once decoded
}

// Decode checks the stored form's lengths, decodes it and verifies that the
// result hashes to id. It allocates at most MaxChunkSizeLimit bytes whatever
// the input claims.
func (st Stored) Decode(id ID) ([]byte, error) {
	if st.RawLen < 0 || st.RawLen > MaxChunkSizeLimit || len(st.Data) > MaxChunkSizeLimit {
		return nil, fmt.Errorf("%w: chunk %s: raw length %d, stored length %d", ErrTooLarge, id, st.RawLen, len(st.Data))
	}
	c, err := defaultCodecs()
	if err != nil {
		return nil, err
	}
	data, err := c.decodeAny(st.Codec, st.Data, uint32(st.RawLen))
	if err != nil {
		return nil, fmt.Errorf("chunk %s: %w", id, err)
	}
	if Sum(data) != id {
		return nil, fmt.Errorf("%w: chunk %s: decoded bytes hash to %s", ErrHashMismatch, id, Sum(data))
	}
	return data, nil
}

// Compress returns data in the form the store would keep it: zstd at the
// fastest level when that is smaller, raw otherwise. Clients use it to send
// chunks compressed; the result's Data may alias data.
func Compress(data []byte) (Stored, error) {
	st, _, err := AppendCompressed(nil, data)
	return st, err
}

// AppendCompressed is Compress writing a compressed form into dst's spare
// capacity, so a sender can reuse one buffer from chunk to chunk. It
// returns dst grown by the compressed bytes (by none when the chunk stays
// raw: a raw form's Data is data itself).
func AppendCompressed(dst, data []byte) (Stored, []byte, error) {
	c, err := defaultCodecs()
	if err != nil {
		return Stored{}, dst, err
	}
	start := len(dst)
	out, ok := c.compressAppend(dst, data)
	if ok {
		return Stored{Codec: CodecZstd, Data: out[start:len(out):len(out)], RawLen: len(data)}, out, nil
	}
	return Stored{Codec: CodecRaw, Data: data, RawLen: len(data)}, out, nil
}

// codecs holds one zstd encoder and one decoder shared by every goroutine:
// EncodeAll and DecodeAll are safe for concurrent use and keep their own
// pools of internal state, so reusing them avoids per-chunk allocation.
type codecs struct {
	enc *zstd.Encoder // nil when compression is disabled
	dec *zstd.Decoder
}

var defaultCodecs = sync.OnceValues(func() (*codecs, error) {
	return newCodecs(zstd.SpeedFastest, false)
})

func newCodecs(level zstd.EncoderLevel, disable bool) (*codecs, error) {
	c := &codecs{}
	if !disable {
		enc, err := zstd.NewWriter(nil,
			zstd.WithEncoderLevel(level),
			zstd.WithEncoderCRC(false), // records carry a CRC and the ID already
		)
		if err != nil {
			return nil, fmt.Errorf("cas: zstd encoder: %w", err)
		}
		c.enc = enc
	}
	dec, err := zstd.NewReader(nil,
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(MaxChunkSizeLimit),
		zstd.WithDecoderMaxWindow(MaxChunkSizeLimit),
		zstd.WithDecoderConcurrency(0),
	)
	if err != nil {
		return nil, fmt.Errorf("cas: zstd decoder: %w", err)
	}
	c.dec = dec
	return c, nil
}

// encode appends the stored form of data to dst and returns the codec and
// the appended payload. A chunk that zstd does not shrink is stored raw.
func (c *codecs) encode(dst, data []byte) (Codec, []byte) {
	start := len(dst)
	out, ok := c.compressAppend(dst, data)
	if ok {
		return CodecZstd, out[start:]
	}
	if dst == nil {
		return CodecRaw, data
	}
	dst = append(dst, data...)
	return CodecRaw, dst[start:]
}

// compressAppend appends data's zstd form to dst if data is worth trying
// (mayCompress) and the form is smaller, and reports whether it did;
// otherwise dst comes back with its length (its capacity may have grown).
func (c *codecs) compressAppend(dst, data []byte) ([]byte, bool) {
	if c.enc == nil || len(data) == 0 || !c.mayCompress(data) {
		return dst, false
	}
	// Short of the worst case's room, the encoder would encode into a
	// buffer of its own and copy.
	dst = slices.Grow(dst, len(data)+encodeSlack(len(data)))
	start := len(dst)
	out := c.enc.EncodeAll(data, dst)
	if len(out)-start < len(data) {
		return out, true
	}
	return out[:start], false
}

// probeWindow is the size of each of the three windows mayCompress tries.
const probeWindow = 2 << 10

// mayCompress tells whether data is worth a zstd pass: a chunk of random
// or already compressed bytes (media, archives: most of a large tree's
// bytes) costs a whole pass for nothing. Chunks over four windows are
// judged by compressing a window at their start, middle and end; a chunk
// whose samples do not shrink by 1/32 is stored raw, others are
// compressed whole, smaller ones always.
func (c *codecs) mayCompress(data []byte) bool {
	n := len(data)
	if n < 4*probeWindow {
		return true
	}
	bp := probePool.Get().(*[]byte)
	defer probePool.Put(bp)
	sample := append((*bp)[:0], data[:probeWindow]...)
	sample = append(sample, data[n/2-probeWindow/2:n/2+probeWindow/2]...)
	sample = append(sample, data[n-probeWindow:]...)
	out := c.enc.EncodeAll(sample, sample[len(sample):])
	*bp = sample[:0]
	return len(out) < len(sample)-len(sample)/32
}

var probePool = sync.Pool{New: func() any {
	b := make([]byte, 0, 8*probeWindow)
	return &b
}}

// decode turns a payload back into the chunk, allocating at most rawLen+decodeSlack
// bytes (rawLen already bounded by the caller) and refusing anything that
// decodes to a different length. For CodecRaw the payload itself is
// returned. It enforces the record invariants of checkLengths.
func (c *codecs) decode(codec Codec, payload []byte, rawLen uint32) ([]byte, error) {
	if err := checkLengths(codec, uint32(len(payload)), rawLen); err != nil {
		return nil, err
	}
	return c.decodeAny(codec, payload, rawLen)
}

// decodeAppend is decode appending the chunk to dst.
func (c *codecs) decodeAppend(dst []byte, codec Codec, payload []byte, rawLen uint32) ([]byte, error) {
	if err := checkLengths(codec, uint32(len(payload)), rawLen); err != nil {
		return dst, err
	}
	switch codec {
	case CodecRaw:
		return append(dst, payload...), nil
	case CodecZstd:
		return c.unzstdAppend(dst, payload, rawLen)
	default:
		return dst, fmt.Errorf("%w: unknown codec %d", ErrInvalidRecord, codec)
	}
}

// unzstdAppend appends the zstd payload, which must decode to rawLen
// bytes, to dst. Spare capacity lets an over-long frame show itself
// instead of being cut silently at rawLen (the decoder stops at dst's
// capacity), and lets the decoder use its fast copy loops, which may write
// up to 32 bytes past a block.
func (c *codecs) unzstdAppend(dst, payload []byte, rawLen uint32) ([]byte, error) {
	start := len(dst)
	out, err := c.dec.DecodeAll(payload, slices.Grow(dst, int(rawLen)+decodeSlack))
	if err != nil {
		return dst, fmt.Errorf("%w: zstd: %w", ErrCorrupt, err)
	}
	if len(out)-start != int(rawLen) {
		return dst, fmt.Errorf("%w: zstd payload decodes to %d bytes, want %d", ErrCorrupt, len(out)-start, rawLen)
	}
	return out, nil
}

// decodeAny is decode without the record invariants, for stored forms that
// arrive from elsewhere: another zstd encoder may emit frames that are not
// smaller than the chunk.
func (c *codecs) decodeAny(codec Codec, payload []byte, rawLen uint32) ([]byte, error) {
	if rawLen > MaxChunkSizeLimit {
		return nil, fmt.Errorf("%w: raw length %d exceeds %d", ErrInvalidRecord, rawLen, MaxChunkSizeLimit)
	}
	switch codec {
	case CodecRaw:
		if len(payload) != int(rawLen) {
			return nil, fmt.Errorf("%w: raw payload of %d bytes for raw length %d", ErrInvalidRecord, len(payload), rawLen)
		}
		return payload, nil
	case CodecZstd:
		out, err := c.unzstdAppend(nil, payload, rawLen)
		if err != nil {
			return nil, err
		}
		return out[:rawLen:rawLen], nil
	default:
		return nil, fmt.Errorf("%w: unknown codec %d", ErrInvalidRecord, codec)
	}
}

// encodeSlack is spare room for the encoder's output: with less than the
// worst case (a raw block plus frame headers) zstd encodes into a fresh
// buffer and copies, several times slower for incompressible chunks.
func encodeSlack(n int) int { return 64 + n/128 }

// decodeSlack is the spare output capacity given to the zstd decoder.
const decodeSlack = 64

// bufPool recycles record buffers of ordinary chunk sizes; huge ones are
// left to the garbage collector so one 16 MiB chunk does not pin memory.
var bufPool sync.Pool

const maxPooledBuf = 4 << 20

func getBuf(n int) []byte {
	if p, ok := bufPool.Get().(*[]byte); ok && cap(*p) >= n {
		return (*p)[:0]
	}
	return make([]byte, 0, n)
}

func putBuf(b []byte) {
	if cap(b) == 0 || cap(b) > maxPooledBuf {
		return
	}
	b = b[:0]
	bufPool.Put(&b)
}

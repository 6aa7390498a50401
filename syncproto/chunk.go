package syncproto

import (
	"encoding/binary"
	"fmt"

	"github.com/quic-s/quics/cas"
)

// ChunkCodec says how a chunk frame's data encodes the chunk. The values are
// part of the wire format. The plain codecs equal the cas record codecs, so
// a stored chunk is sent as it sits in its pack; ChunkDelta only travels.
type ChunkCodec uint8

// Chunk codecs.
const (
	ChunkRaw  ChunkCodec = 0 // data is the chunk itself
	ChunkZstd ChunkCodec = 1 // data is zstd and strictly shorter than the chunk
)

func (c ChunkCodec) String() string {
	switch c {
	case ChunkRaw:
		return "raw"
	case ChunkZstd:
		return "zstd"
	case ChunkDelta:
		return "delta"
	}
	return fmt.Sprintf("codec(%d)", uint8(c))
}

// ChunkHeaderMaxLen is the longest chunk frame header: codec byte, ID and
// raw length.
const ChunkHeaderMaxLen = 1 + cas.IDSize + binary.MaxVarintLen64

// Chunk is the content of a chunk frame.
type Chunk struct {
	Codec  ChunkCodec
	ID     cas.ID // BLAKE3-256 of the decoded chunk; the receiver verifies it
	RawLen int    // length of the decoded chunk
	Data   []byte // the stored bytes; after decoding it aliases the payload
}

// checkChunk enforces the invariants every sender keeps, the same as the
// store's records: raw data is the chunk, zstd data is non-empty and shorter
// than the chunk.
func checkChunk(c Chunk, maxRawLen int) error {
	if c.RawLen < 0 || c.RawLen > maxRawLen {
		return fmt.Errorf("%w: chunk %s: raw length %d, limit %d", ErrBadRequest, c.ID.Short(), c.RawLen, maxRawLen)
	}
	switch c.Codec {
	case ChunkRaw:
		if len(c.Data) != c.RawLen {
			return fmt.Errorf("%w: raw chunk %s: %d data bytes for raw length %d", ErrBadRequest, c.ID.Short(), len(c.Data), c.RawLen)
		}
	case ChunkZstd, ChunkDelta:
		if len(c.Data) == 0 || len(c.Data) >= c.RawLen {
			return fmt.Errorf("%w: %s chunk %s: %d data bytes for raw length %d", ErrBadRequest, c.Codec, c.ID.Short(), len(c.Data), c.RawLen)
		}
	default:
		return fmt.Errorf("%w: chunk %s: unknown codec %d", ErrBadRequest, c.ID.Short(), c.Codec)
	}
	return nil
}

// EncodeChunkFrame appends the chunk frame payload for c to dst:
//
//	codec (1 byte) | chunk ID (32 bytes) | raw length (uvarint) | data
//
// It refuses a chunk that breaks the codec's length rules or would not fit
// in a frame.
func EncodeChunkFrame(dst []byte, c Chunk) ([]byte, error) {
	if err := checkChunk(c, MaxFramePayloadLimit-ChunkHeaderMaxLen); err != nil {
		return dst, err
	}
	return append(appendChunkHeader(dst, c), c.Data...), nil
}

// appendChunkHeader appends the chunk frame payload for c, already
// checked, up to its data.
func appendChunkHeader(dst []byte, c Chunk) []byte {
	dst = append(dst, byte(c.Codec))
	dst = append(dst, c.ID[:]...)
	return binary.AppendUvarint(dst, uint64(c.RawLen))
}

// DecodeChunkFrame parses a chunk frame payload. The raw length must not
// exceed maxRawLen (the root's largest chunk); the data, the rest of the
// payload, is bounded by the frame limit already and by the codec's rules
// here. Data aliases payload. Nothing is decompressed or hashed: the store
// verifies the chunk against its ID.
func DecodeChunkFrame(payload []byte, maxRawLen int) (Chunk, error) {
	var c Chunk
	if len(payload) < 1+cas.IDSize+1 {
		return c, fmt.Errorf("%w: chunk frame of %d bytes", ErrTruncated, len(payload))
	}
	c.Codec = ChunkCodec(payload[0])
	copy(c.ID[:], payload[1:1+cas.IDSize])
	raw, n, err := uvarint(payload[1+cas.IDSize:])
	if err != nil {
		return c, fmt.Errorf("syncproto: chunk %s raw length: %w", c.ID.Short(), err)
	}
	if raw > uint64(max(maxRawLen, 0)) {
		return c, fmt.Errorf("%w: chunk %s: raw length %d, limit %d", ErrBadRequest, c.ID.Short(), raw, maxRawLen)
	}
	c.RawLen = int(raw)
	c.Data = payload[1+cas.IDSize+n:]
	if err := checkChunk(c, maxRawLen); err != nil {
		return Chunk{}, err
	}
	return c, nil
}

package syncproto

import (
	"testing"

	"github.com/quic-s/quics/cas"
)

// Chunks travel in the form the store keeps them, so the wire codec byte
// and the pack record codec must name the same encodings.
func TestChunkCodecMatchesStore(t *testing.T) {
	pairs := []struct {
		wire  ChunkCodec
		store cas.Codec
	}{
		{ChunkRaw, cas.CodecRaw},
		{ChunkZstd, cas.CodecZstd},
	}
	for _, p := range pairs {
		if uint8(p.wire) != uint8(p.store) {
			t.Errorf("wire codec %v = %d, store codec = %d", p.wire, p.wire, p.store)
		}
	}
}

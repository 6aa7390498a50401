package syncproto

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/tlsutil"
)

func BenchmarkFrameWriteRead(b *testing.B) {
	for _, size := range []int{256, 64 << 10} {
		b.Run(byteSize(size), func(b *testing.B) {
			payload := bytes.Repeat([]byte{5}, size)
			var buf bytes.Buffer
			fw := NewFrameWriter(&buf)
			fr := NewFrameReader(&buf, 1<<20)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if err := fw.WriteFrame(FrameChunk, payload); err != nil {
					b.Fatal(err)
				}
				if _, _, err := fr.ReadFrame(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkChunkFrame(b *testing.B) {
	data := bytes.Repeat([]byte("chunk"), 64<<10/5)
	c := Chunk{Codec: ChunkRaw, ID: cas.Sum(data), RawLen: len(data), Data: data}
	var payload []byte
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		payload, err = EncodeChunkFrame(payload[:0], c)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := DecodeChunkFrame(payload, 256<<10); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStreamEcho measures one transaction stream over real QUIC on
// loopback: 64 KiB frames sent and echoed back.
func BenchmarkStreamEcho(b *testing.B) {
	s := startServer(b, Config{}, echo)
	ctx := context.Background()
	conn, err := Dial(ctx, s.addr, tlsutil.PinnedClientConfig(s.fingerprint, ALPN), Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	st, err := conn.OpenStream(ctx)
	if err != nil {
		b.Fatal(err)
	}
	payload := bytes.Repeat([]byte{9}, 64<<10)
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if err := st.WriteFrame(ctx, FrameChunk, payload); err != nil {
			b.Fatal(err)
		}
		if _, _, err := st.ReadFrame(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if _, _, err := st.ReadFrame(ctx); err != io.EOF {
		b.Fatal(err)
	}
}

func byteSize(n int) string {
	if n >= 1<<10 {
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

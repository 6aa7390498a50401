package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// These add to security_test.go the hostile clients it does not cover:
// oversized chunks, a stream reset mid-upload, a forged client ID, and
// symlinks or case tricks aimed at the server's views.

func TestHostileUploads(t *testing.T) {
	p := startQuicsAt(t, filepath.Join(t.TempDir(), "data"), false)
	id, token := p.register(t)
	c := p.sessionAs(t, id, token)
	ctx := opCtx(t)
	info, err := c.RegisterRoot(ctx, "h", rootPassword)
	if err != nil {
		t.Fatal(err)
	}
	rootMax := int(info.GetChunking().GetMax())

	t.Run("chunk over the root's maximum", func(t *testing.T) {
		big := newSingleChunk(randomBytes(61, rootMax+1))
		err := c.PutChunks(ctx, "h", []syncproto.Chunk{big.chunk()})
		if err == nil {
			t.Fatalf("a chunk of %d bytes, root maximum %d, was stored", len(big.data), rootMax)
		}
		var e *syncproto.Error
		if !errors.As(err, &e) || e.Code == syncproto.CodeInternal {
			t.Fatalf("a chunk over the root maximum: %v, want a refusal naming the client's mistake", err)
		}
		have, err := c.HaveChunks(ctx, "h", []cas.ID{big.id})
		if err != nil || have[0] {
			t.Fatalf("the oversized chunk is stored: %v, %v", have, err)
		}
	})

	t.Run("chunk frame over the protocol maximum", func(t *testing.T) {
		qc := p.dialQUIC(t)
		authQUIC(t, qc, id, token)
		qs := putChunksQUIC(t, qc, "h")
		// A chunk frame announcing 64 MiB: refused on its header, before
		// anything is allocated for it.
		hdr := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(syncproto.FrameChunk)), 64<<20)
		if _, err := qs.Write(append(hdr, make([]byte, 1000)...)); err != nil {
			t.Fatal(err)
		}
		if err := serverError(qs); !errors.Is(err, syncproto.ErrFrameTooLarge) {
			t.Fatalf("a 64 MiB chunk frame: %v, want ErrFrameTooLarge", err)
		}
		pingQUIC(t, qc)
	})

	t.Run("stream reset mid-upload", func(t *testing.T) {
		qc := p.dialQUIC(t)
		authQUIC(t, qc, id, token)
		whole := newSingleChunk(randomBytes(62, 100<<10))
		cut := newSingleChunk(randomBytes(63, 200<<10))
		qs := putChunksQUIC(t, qc, "h")
		var frames []byte
		for _, ch := range []singleChunk{whole, cut} {
			buf, err := syncproto.EncodeChunkFrame(nil, ch.chunk())
			if err != nil {
				t.Fatal(err)
			}
			frames = syncproto.AppendFrame(frames, syncproto.FrameChunk, buf)
		}
		// The first chunk and half of the second, then a reset.
		if _, err := qs.Write(frames[:len(frames)-100<<10]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		qs.CancelWrite(quic.StreamErrorCode(syncproto.CodeCanceled))
		qs.CancelRead(quic.StreamErrorCode(syncproto.CodeCanceled))

		// Half a chunk is never stored; an upload that did not end is
		// not acknowledged, so the client uploads again. The connection
		// and the server carry on.
		have, err := c.HaveChunks(ctx, "h", []cas.ID{cut.id})
		if err != nil || have[0] {
			t.Fatalf("half a chunk is stored: %v, %v", have, err)
		}
		pingQUIC(t, qc)
		if err := c.PutChunks(ctx, "h", []syncproto.Chunk{cut.chunk()}); err != nil {
			t.Fatalf("the same chunk uploaded whole: %v", err)
		}
		if _, err := c.Propose(ctx, cut.proposal("h", "after-reset.bin"), cut.refs()); err != nil {
			t.Fatalf("commit after the reset: %v", err)
		}
	})

	t.Run("forged client id", func(t *testing.T) {
		otherID, otherToken := p.register(t)
		// The other device's ID with this device's token, and the reverse.
		for _, pair := range [][2]string{{otherID, token}, {id, otherToken}} {
			if _, err := syncproto.DialSession(opCtx(t), p.addr, p.tls(), syncproto.Config{}, pair[0], pair[1]); !errors.Is(err, syncproto.ErrUnauthenticated) {
				t.Fatalf("ID %s with another device's token: %v, want ErrUnauthenticated", pair[0], err)
			}
		}
		// Versions carry the session's ID, whatever the request says:
		// there is no field to claim another.
		other := p.sessionAs(t, otherID, otherToken)
		if _, err := other.JoinRoot(ctx, "h", rootPassword); err != nil {
			t.Fatal(err)
		}
		f := newSingleChunk([]byte("written by the other device"))
		if err := other.PutChunks(ctx, "h", []syncproto.Chunk{f.chunk()}); err != nil {
			t.Fatal(err)
		}
		resp, err := other.Propose(ctx, f.proposal("h", "by-other.txt"), f.refs())
		if err != nil {
			t.Fatal(err)
		}
		if got := resp.GetHead().GetClientId(); got != otherID {
			t.Fatalf("version written by %s is attributed to %q", otherID, got)
		}
	})
	p.assertHealthy(t)
}

// authQUIC authenticates a bare QUIC connection.
func authQUIC(t *testing.T, qc *quic.Conn, id, token string) {
	t.Helper()
	qs, err := qc.OpenStreamSync(opCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	req, err := proto.Marshal(&syncpb.AuthRequest{ClientId: id, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qs.Write(syncproto.AppendFrame(nil, syncproto.FrameAuthRequest, req)); err != nil {
		t.Fatal(err)
	}
	_ = qs.Close()
	_ = qs.SetReadDeadline(time.Now().Add(opTimeout))
	if ft, _, err := syncproto.NewFrameReader(qs, 1<<20).ReadFrame(); err != nil || ft != syncproto.FrameAuthResponse {
		t.Fatalf("auth on a bare connection: frame %s, %v", ft, err)
	}
}

// putChunksQUIC opens a stream on a bare connection and sends a
// PutChunksRequest, leaving the chunk frames to the caller.
func putChunksQUIC(t *testing.T, qc *quic.Conn, root string) *quic.Stream {
	t.Helper()
	qs, err := qc.OpenStreamSync(opCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	req, err := proto.Marshal(&syncpb.PutChunksRequest{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qs.Write(syncproto.AppendFrame(nil, syncproto.FramePutChunksRequest, req)); err != nil {
		t.Fatal(err)
	}
	return qs
}

// waitView waits until the view of path holds want.
func waitView(t *testing.T, name string, want []byte) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := os.ReadFile(name)
		if err == nil && bytes.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("view %s: %d bytes, %v; want %d bytes", name, len(got), err, len(want))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHostileViews(t *testing.T) {
	parent := t.TempDir()
	dataDir := filepath.Join(parent, "data")
	outside := filepath.Join(parent, "outside")
	if err := os.MkdirAll(outside, 0o755); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "victim.txt")
	if err := os.WriteFile(victim, []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startQuicsAt(t, dataDir, true)
	c := p.session(t)
	ctx := opCtx(t)
	if _, err := c.RegisterRoot(ctx, "v", rootPassword); err != nil {
		t.Fatal(err)
	}
	put := func(path string, data []byte) {
		t.Helper()
		f := newSingleChunk(data)
		if err := c.PutChunks(ctx, "v", []syncproto.Chunk{f.chunk()}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Propose(ctx, f.proposal("v", path), f.refs()); err != nil {
			t.Fatalf("propose %s: %v", path, err)
		}
	}
	latest := filepath.Join(dataDir, "sync", "v", "latest")
	put("seed.txt", []byte("seed"))
	waitView(t, filepath.Join(latest, "seed.txt"), []byte("seed"))

	// Someone with access to the data dir (or an earlier bug) planted
	// symlinks in the view: a directory link and a file link, both
	// pointing outside.
	if err := os.Symlink(outside, filepath.Join(latest, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, filepath.Join(latest, "linkfile.txt")); err != nil {
		t.Fatal(err)
	}
	put("linkdir/victim.txt", []byte("through a directory link"))
	put("linkfile.txt", []byte("through a file link"))
	// Case: on a case-sensitive filesystem a and A are two files; on a
	// case-insensitive one the server must still not write one through
	// the other's name into another directory.
	put("case/a.txt", []byte("lower"))
	put("case/A.txt", []byte("upper"))
	put("sentinel.txt", []byte("done"))
	waitView(t, filepath.Join(latest, "sentinel.txt"), []byte("done"))
	waitView(t, filepath.Join(latest, "linkfile.txt"), []byte("through a file link"))

	if got, err := os.ReadFile(victim); err != nil || string(got) != "untouched" {
		t.Fatalf("a view write followed a symlink out of the data dir: %q, %v", got, err)
	}
	entries, err := os.ReadDir(outside)
	if err != nil || len(entries) != 1 {
		t.Fatalf("the directory a planted link points at holds %v, %v", entries, err)
	}
	if fi, err := os.Lstat(filepath.Join(latest, "linkfile.txt")); err != nil || fi.Mode()&os.ModeSymlink != 0 {
		t.Errorf("the planted file link is still a link: %v, %v", fi, err)
	}
	a, _ := os.ReadFile(filepath.Join(latest, "case", "a.txt"))
	A, _ := os.ReadFile(filepath.Join(latest, "case", "A.txt"))
	if string(a) != "lower" || string(A) != "upper" {
		t.Errorf("case-differing names: a.txt %q, A.txt %q", a, A)
	}
	p.assertHealthy(t)
}

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
)

// smallFilesystem mounts a tmpfs of size bytes on a fresh directory and
// unmounts it at cleanup; it skips the test unless running as root with
// the right to mount.
func smallFilesystem(t *testing.T, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("full-disk test: needs root to mount a size-limited tmpfs (run as root, e.g. in a container with CAP_SYS_ADMIN)")
	}
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("full-disk test: cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// fillUntilFull writes a ballast file until the filesystem refuses, then
// gives back keep bytes.
func fillUntilFull(t *testing.T, path string, keep int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := bytes.Repeat([]byte{0xb5}, 1<<20)
	var n int64
	for {
		w, err := f.Write(block)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(max(n-keep, 0)); err != nil {
		t.Fatal(err)
	}
}

func TestDiskFullDuringUploads(t *testing.T) {
	mnt := smallFilesystem(t, 256<<20)
	dataDir := filepath.Join(mnt, "data")
	addr, out, _ := startQuicsIn(t, dataDir, "--views=false")
	m := fingerprintLine.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no fingerprint:\n%s", out)
	}
	p := &quicsProc{addr: addr, fingerprint: m[1], dataDir: dataDir}
	c := p.session(t)
	ctx := opCtx(t)
	if _, err := c.RegisterRoot(ctx, "d", rootPassword); err != nil {
		t.Fatal(err)
	}
	kept := newSingleChunk(randomBytes(71, 200<<10))
	if err := c.PutChunks(ctx, "d", []syncproto.Chunk{kept.chunk()}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Propose(ctx, kept.proposal("d", "kept.bin"), kept.refs()); err != nil {
		t.Fatal(err)
	}

	// Leave 1 MiB free, then upload 8 MiB batches of fresh chunks until
	// one fails.
	ballast := filepath.Join(mnt, "ballast")
	fillUntilFull(t, ballast, 1<<20)
	var uploadErr error
	for i := range 20 {
		var batch []syncproto.Chunk
		for j := range 32 {
			batch = append(batch, newSingleChunk(randomBytes(uint64(1000*i+j+10000), 256<<10)).chunk())
		}
		uctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		uploadErr = c.PutChunks(uctx, "d", batch)
		cancel()
		if uploadErr != nil {
			break
		}
	}
	if uploadErr == nil {
		t.Fatal("8 MiB uploads into 1 MiB of free space all succeeded")
	}
	t.Logf("upload on a full disk: %v", uploadErr)
	var e *syncproto.Error
	if !errors.As(uploadErr, &e) {
		t.Fatalf("the client got no answer from the server, only %v", uploadErr)
	}
	if e.Code == syncproto.CodeInternal {
		t.Errorf("a full disk reaches the client as a bare internal error (%v): want a clear unavailable/no-space answer", uploadErr)
	}

	// Reads keep working.
	readBack := func(what string) {
		t.Helper()
		ctx := opCtx(t)
		_, refs, err := c.ChunkList(ctx, "d", "kept.bin", kept.id)
		if err != nil {
			t.Fatalf("%s: chunk list: %v", what, err)
		}
		var got []byte
		err = c.GetChunks(ctx, "d", []cas.ID{refs[0].ID}, func(ch syncproto.Chunk) error {
			d, err := cas.Stored{Codec: cas.Codec(ch.Codec), Data: ch.Data, RawLen: ch.RawLen}.Decode(ch.ID)
			got = d
			return err
		})
		if err != nil || !bytes.Equal(got, kept.data) {
			t.Fatalf("%s: read of a committed file: %d bytes, %v", what, len(got), err)
		}
	}
	readBack("disk full")
	if _, _, err := c.Heads(opCtx(t), "d", 0); err != nil {
		t.Fatalf("heads on a full disk: %v", err)
	}

	// Space comes back: uploads succeed again, on this session or a new
	// one (the store may need its writer reopened).
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	fresh := newSingleChunk(randomBytes(72, 200<<10))
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; {
		ctx := opCtx(t)
		if err = c.PutChunks(ctx, "d", []syncproto.Chunk{fresh.chunk()}); err == nil {
			_, err = c.Propose(ctx, fresh.proposal("d", "after.bin"), fresh.refs())
		}
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("upload once space was freed: %v", err)
	}
	readBack("space freed")

	// Nothing committed is damaged.
	mustQuics(t, "", "stop", "--data", dataDir)
	checkOffline(t, dataDir, "after the full disk")
}

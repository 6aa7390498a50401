package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/syncproto"
)

// countingRemote is a device's real session that counts how it asked for
// chunk lists.
type countingRemote struct {
	*syncproto.Client
	singles, batches, batched atomic.Int64
}

func (c *countingRemote) ChunkList(ctx context.Context, root, path string, hash cas.ID) (int64, []syncproto.ChunkRef, error) {
	c.singles.Add(1)
	return c.Client.ChunkList(ctx, root, path, hash)
}

func (c *countingRemote) ChunkListBatch(ctx context.Context, root string, items []syncproto.ChunkListItem) ([]syncproto.ChunkListResult, error) {
	c.batches.Add(1)
	c.batched.Add(int64(len(items)))
	return c.Client.ChunkListBatch(ctx, root, items)
}

// TestInProcessPullBatchesSmallFiles: a device that joins a root of many
// small files asks their chunk lists in batches, over a real session to a
// real server, and ends with the same tree (content, modes, mtimes) and
// records a second pass finds nothing to do with. Files over the batch
// size limit, and one whose local copy changed, take the single path.
func TestInProcessPullBatchesSmallFiles(t *testing.T) {
	ts := startServer(t)
	a := newDevice(t, ts, "laptop")
	b := newDevice(t, ts, "desktop")
	a.addRoot("docs")
	b.joinRoot("docs")
	counted := &countingRemote{Client: b.sess}
	b.eng = client.NewEngine(b.home.State(), counted, client.EngineOptions{})

	const small = 600 // three batches of at most 256
	mtime := time.Unix(1_700_000_000, 0)
	for i := range small {
		rel := fmt.Sprintf("d%02d/e%d/f%03d.txt", i%13, i%3, i)
		a.write(rel, randomBytes(uint64(i), 1+i*37%9000), 0o644)
		if err := os.Chtimes(filepath.Join(a.dir, rel), mtime, mtime.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	a.write("empty", nil, 0o600)
	a.write("tool.sh", []byte("#!/bin/sh\n"), 0o755)
	a.write("two-chunks.bin", randomBytes(7, 900<<10), 0o644) // small, several chunks
	a.write("big.bin", randomBytes(8, 3<<20), 0o644)          // over the batch file limit
	if res := a.sync(); res.FilesUploaded != small+4 {
		t.Fatalf("a: %+v", res.Stats)
	}

	res := b.sync()
	if res.FilesDownloaded != small+4 {
		t.Fatalf("b's first pull: %+v", res.Stats)
	}
	sameTree(t, a.dir, b.dir)
	if got := counted.batched.Load(); got != small+3 {
		t.Errorf("%d files asked in %d batches, want %d (all but big.bin)", got, counted.batches.Load(), small+3)
	}
	if got := counted.batches.Load(); got < 3 || got > 4 {
		t.Errorf("%d batches for %d small files, want 3 or 4", got, small+3)
	}
	if got := counted.singles.Load(); got != 1 {
		t.Errorf("%d chunk lists asked alone, want 1 (big.bin)", got)
	}
	for _, i := range []int{0, 299, small - 1} {
		rel := fmt.Sprintf("d%02d/e%d/f%03d.txt", i%13, i%3, i)
		fi, err := os.Stat(filepath.Join(b.dir, rel))
		if err != nil || !fi.ModTime().Equal(mtime.Add(time.Duration(i)*time.Second)) {
			t.Errorf("%s pulled with mtime %v, %v; want %v", rel, fi.ModTime(), err, mtime.Add(time.Duration(i)*time.Second))
		}
	}
	if entries, err := os.ReadDir(filepath.Join(b.dir, "d00", "e0")); err != nil || len(entries) == 0 {
		t.Fatalf("read pulled directory: %v", err)
	} else {
		for _, e := range entries {
			if client.IsTempName(e.Name()) {
				t.Errorf("temporary file %s left after the pull", e.Name())
			}
		}
	}
	if res := b.sync(); res.FilesUploaded+res.FilesDownloaded+res.ChunksSent+res.ChunksFetched != 0 {
		t.Fatalf("idle pass on b after the batched pull: %+v", res.Stats)
	}

	// An edit of a pulled small file is batched too, naming the old
	// version as its base: the changed chunk comes delta-encoded against
	// the old one, so far fewer bytes than the file arrive.
	const edited = 243 // 8,992 bytes of random data: one chunk
	rel := fmt.Sprintf("d%02d/e%d/f%03d.txt", edited%13, edited%3, edited)
	data := randomBytes(uint64(edited), 1+edited*37%9000)
	data[len(data)/2] ^= 0xff
	a.write(rel, data, 0o644)
	if res := a.sync(); res.FilesUploaded != 1 {
		t.Fatalf("a's edit: %+v", res.Stats)
	}
	before, singles := counted.batched.Load(), counted.singles.Load()
	res = b.sync()
	if res.FilesDownloaded != 1 || res.ChunksFetched != 1 {
		t.Fatalf("b's pull of the edit: %+v", res.Stats)
	}
	if counted.batched.Load() != before+1 || counted.singles.Load() != singles {
		t.Errorf("the edit was asked alone, not in a batch")
	}
	if res.BytesReceived >= int64(len(data)) {
		t.Errorf("b received %d bytes for a 1-byte edit of a %d-byte file: no delta against its old version", res.BytesReceived, len(data))
	}
	sameTree(t, a.dir, b.dir)
}

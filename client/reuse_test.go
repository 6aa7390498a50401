package client

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
)

func TestReuseIndex(t *testing.T) {
	ctx := context.Background()
	h, dir := testRoot(t, testParams)
	shared := randomBytes(6, 30_000)
	writeFile(t, dir, "a", shared)
	writeFile(t, dir, "sub/copy of a", shared)
	writeFile(t, dir, "b", randomBytes(7, 20_000))
	writeFile(t, dir, "gone", randomBytes(8, 5_000))
	res := mustScan(t, scanner(h, nil, time.Now))
	if err := os.Remove(filepath.Join(dir, "gone")); err != nil {
		t.Fatal(err)
	}
	mustScan(t, scanner(h, nil, time.Now)) // records "gone" as deleted

	chunksOf := map[string][]cas.ID{}
	for _, c := range res.Changes {
		for _, ch := range c.Chunks {
			chunksOf[c.Path] = append(chunksOf[c.Path], ch.ID)
		}
	}
	if len(chunksOf["a"]) < 3 {
		t.Fatalf("test file a has %d chunks, want several", len(chunksOf["a"]))
	}

	x, err := BuildReuseIndex(ctx, h.State(), "docs")
	if err != nil {
		t.Fatal(err)
	}
	// Every chunk of a live file is found, at the right offset.
	for _, c := range res.Changes {
		if c.Path == "gone" {
			for _, id := range chunksOf["gone"] {
				if _, _, ok := x.Locate(id); ok {
					t.Errorf("chunk %s of a deleted file is indexed", id.Short())
				}
			}
			continue
		}
		var off int64
		for _, ch := range c.Chunks {
			path, at, ok := x.Locate(ch.ID)
			if !ok {
				t.Fatalf("chunk %s of %s not indexed", ch.ID.Short(), c.Path)
			}
			data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
			if err != nil {
				t.Fatal(err)
			}
			if at != off || cas.Sum(data[at:at+int64(ch.Size)]) != ch.ID {
				t.Errorf("Locate(%s) = %s@%d, which does not hold it", ch.ID.Short(), path, at)
			}
			got, ok := x.ReadLocal(ctx, ch.ID)
			if !ok || cas.Sum(got) != ch.ID {
				t.Errorf("ReadLocal(%s of %s) = %d bytes, %v", ch.ID.Short(), c.Path, len(got), ok)
			}
			off += int64(ch.Size)
		}
	}

	// A stale location is rejected, and the other copy is used.
	first := chunksOf["a"][0]
	path, _, _ := x.Locate(first)
	other := map[string]string{"a": "sub/copy of a", "sub/copy of a": "a"}[path]
	overwrite(t, filepath.Join(dir, filepath.FromSlash(path)), len(shared))
	got, ok := x.ReadLocal(ctx, first)
	if !ok || !bytes.Equal(got, shared[:len(got)]) {
		t.Fatalf("ReadLocal after %s changed: ok=%v", path, ok)
	}
	if p, _, _ := x.Locate(first); p != other {
		t.Errorf("after the stale copy: Locate = %s, want %s", p, other)
	}
	// With both copies stale, the chunk must be fetched.
	overwrite(t, filepath.Join(dir, filepath.FromSlash(other)), len(shared))
	if _, ok := x.ReadLocal(ctx, first); ok {
		t.Error("ReadLocal returned a chunk no local file holds any more")
	}
	if _, _, ok := x.Locate(first); ok {
		t.Error("stale locations are still indexed")
	}
	// A truncated file is stale too.
	bID := chunksOf["b"][len(chunksOf["b"])-1]
	if err := os.Truncate(filepath.Join(dir, "b"), 100); err != nil {
		t.Fatal(err)
	}
	if _, ok := x.ReadLocal(ctx, bID); ok {
		t.Error("ReadLocal read past the end of a truncated file")
	}
	if _, ok := x.ReadLocal(ctx, cas.Sum([]byte("never seen"))); ok {
		t.Error("ReadLocal found an unknown chunk")
	}
}

func overwrite(t *testing.T, name string, n int) {
	t.Helper()
	if err := os.WriteFile(name, randomBytes(99, n), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReuseIndexConcurrentReads(t *testing.T) {
	ctx := context.Background()
	h, dir := testRoot(t, testParams)
	data := randomBytes(10, 40_000)
	writeFile(t, dir, "f", data)
	res := mustScan(t, scanner(h, nil, time.Now))
	x, err := BuildReuseIndex(ctx, h.State(), "docs")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for _, ch := range res.Changes[0].Chunks {
				if got, ok := x.ReadLocal(ctx, ch.ID); !ok || cas.Sum(got) != ch.ID {
					t.Errorf("ReadLocal(%s) failed", ch.ID.Short())
				}
			}
		})
	}
	wg.Wait()
	if x.Len() == 0 {
		t.Error("empty index")
	}
}

// An index over budget holds the versions of the root, and the chunks of
// the files added for the downloads in flight only.
func TestReuseIndexOverBudget(t *testing.T) {
	defer func(n int) { reuseBudget = n }(reuseBudget)
	reuseBudget = 1
	ctx := context.Background()
	h, dir := testRoot(t, testParams)
	writeFile(t, dir, "a", randomBytes(11, 30_000))
	res := mustScan(t, scanner(h, nil, time.Now))
	a := res.Changes[0]
	rec, err := h.State().File(ctx, "docs", "a")
	if err != nil {
		t.Fatal(err)
	}
	// Synced: the local content is the server version.
	rec.BaseSeq, rec.BaseHash, rec.Pending = 1, rec.Hash, false
	if err := h.State().PutFile(ctx, "docs", rec); err != nil {
		t.Fatal(err)
	}

	x, err := BuildReuseIndex(ctx, h.State(), "docs")
	if err != nil {
		t.Fatal(err)
	}
	if x.Len() != 0 {
		t.Fatalf("an index over budget holds %d chunks up front", x.Len())
	}
	if p, ok := x.versionPath(a.Hash); !ok || p != "a" {
		t.Errorf("versionPath = %q, %v; want a", p, ok)
	}
	first := a.Chunks[0].ID
	release1 := x.AddFile("a", a.Chunks)
	release2 := x.AddFile("a", a.Chunks) // a second download with the same source
	if got, ok := x.ReadLocal(ctx, first); !ok || cas.Sum(got) != first {
		t.Fatal("a chunk of an added file is not read locally")
	}
	release1()
	release1() // once only
	if _, _, ok := x.Locate(first); !ok {
		t.Fatal("released while another download still uses the file")
	}
	release2()
	if x.Len() != 0 {
		t.Errorf("%d chunks left once every download released its files", x.Len())
	}
}

package dataset

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func digest(t *testing.T, e Entry) string {
	t.Helper()
	h := sha256.New()
	n, err := io.Copy(h, Content(e))
	if err != nil {
		t.Fatal(err)
	}
	if n != e.Size {
		t.Fatalf("%s: %d bytes, want %d", e.Path, n, e.Size)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestMixedSizes(t *testing.T) {
	entries := Mixed(1)
	total := TotalSize(entries)
	if total < 500*MiB || total > 520*MiB {
		t.Errorf("mixed is %d MiB, want ≈512", total/MiB)
	}
	sizes := map[string]int64{}
	var text, random int64
	for _, e := range entries {
		if _, dup := sizes[e.Path]; dup {
			t.Fatalf("path %s listed twice", e.Path)
		}
		sizes[e.Path] = e.Size
		if e.Kind == Text {
			text += e.Size
		} else {
			random += e.Size
		}
	}
	for p, want := range map[string]int64{BigFile: 256 * MiB, CopySource: 64 * MiB, RenameSource: 10 * MiB} {
		if sizes[p] != want {
			t.Errorf("%s is %d bytes, want %d", p, sizes[p], want)
		}
	}
	if text != 128*MiB || random != 384*MiB {
		t.Errorf("text %d MiB, random %d MiB; want 128 and 384", text/MiB, random/MiB)
	}
	if len(entries) < 100 {
		t.Errorf("only %d files: sizes are not varied", len(entries))
	}
}

func TestSmallSizes(t *testing.T) {
	entries := Small(1)
	if len(entries) != SmallCount {
		t.Fatalf("%d files, want %d", len(entries), SmallCount)
	}
	dirs := map[string]bool{}
	for _, e := range entries {
		if e.Size < 1*KiB || e.Size > 8*KiB {
			t.Fatalf("%s: %d bytes, outside 1–8 KiB", e.Path, e.Size)
		}
		dirs[path.Dir(e.Path)] = true
	}
	if len(dirs) != 400 {
		t.Errorf("%d directories, want 400", len(dirs))
	}
}

func TestScaleShrinks(t *testing.T) {
	if got := TotalSize(Mixed(0.05)); got < 20*MiB || got > 32*MiB {
		t.Errorf("mixed at 0.05 is %d MiB, want ≈26", got/MiB)
	}
	if got := len(Small(0.05)); got != 1000 {
		t.Errorf("small at 0.05 has %d files, want 1000", got)
	}
	if got := len(Small(0.0001)); got != 50 {
		t.Errorf("small at a tiny scale has %d files, want the floor of 50", got)
	}
}

func TestDeterministic(t *testing.T) {
	if !slices.Equal(Mixed(0.01), Mixed(0.01)) || !slices.Equal(Small(0.01), Small(0.01)) {
		t.Fatal("listing a tree twice gave different entries")
	}
	for _, e := range []Entry{Mixed(0.01)[0], Mixed(0.01)[len(Mixed(0.01))-1], Small(0.01)[7]} {
		if a, b := digest(t, e), digest(t, e); a != b {
			t.Fatalf("%s: content differs between two reads", e.Path)
		}
	}
	a, b := Small(1)[0], Small(1)[1]
	b.Size = a.Size
	if digest(t, a) == digest(t, b) {
		t.Fatal("two files with different seeds have the same content")
	}
}

// TestGolden pins the generators' output: a change here changes every
// benchmark figure, and old results stop being comparable.
func TestGolden(t *testing.T) {
	for _, c := range []struct {
		e    Entry
		want string
	}{
		{Entry{Size: 4096, Kind: Random, Seed: 42}, "bb202a3fccdf8581c9647447e2a14261b897d13b355bcb38fb4c68eef6ed9096"},
		{Entry{Size: 4096, Kind: Text, Seed: 42}, "971eafa17adc2789328c563a7d0808af6b87eb7878ecaa7b5e89da23aaaad4cf"},
	} {
		if got := digest(t, c.e); got != c.want {
			t.Errorf("%v content changed: sha256 %s, want %s", c.e.Kind, got, c.want)
		}
	}
}

func TestTextCompresses(t *testing.T) {
	raw, err := io.ReadAll(Content(Entry{Size: 1 * MiB, Kind: Text, Seed: 3}))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	ratio := float64(len(raw)) / float64(len(enc.EncodeAll(raw, nil)))
	if ratio < 2 || ratio > 6 {
		t.Errorf("text compresses %.2f×, want text-like (2–6×)", ratio)
	}
	if bytes.Count(raw, []byte("\n")) < 1000 {
		t.Error("text has too few lines")
	}
	rnd, err := io.ReadAll(Content(Entry{Size: 1 * MiB, Kind: Random, Seed: 3}))
	if err != nil {
		t.Fatal(err)
	}
	if c := len(enc.EncodeAll(rnd, nil)); c < len(rnd) {
		t.Errorf("random bytes compressed to %d of %d", c, len(rnd))
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	entries := Small(0.0001)
	if err := Write(context.Background(), dir, entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(e.Path)))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(Content(e))
		if !bytes.Equal(got, want) {
			t.Fatalf("%s on disk differs from its content", e.Path)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Write(ctx, t.TempDir(), entries); err == nil {
		t.Fatal("a canceled write reported success")
	}
}

package dataset

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"golang.org/x/sync/errgroup"
)

// Size units.
const (
	KiB = 1 << 10
	MiB = 1 << 20
)

// Paths of the files the scenarios edit, relative to the Mixed tree.
const (
	BigFile      = "big.bin"
	CopySource   = "bin/copy-src-64m.bin"
	RenameSource = "bin/rename-10m.bin"
)

// Kind says how a file's bytes are made.
type Kind int

// The kinds of content.
const (
	Random Kind = iota // incompressible bytes
	Text               // words, compressible
)

// String names the kind: "random" or "text".
func (k Kind) String() string {
	if k == Text {
		return "text"
	}
	return "random"
}

// Entry is one file of a tree: its slash-separated path, size, kind and
// the seed of its content.
type Entry struct {
	Path string
	Size int64
	Kind Kind
	Seed uint64
}

// Seeds of the trees; changing one changes every byte of that tree.
const (
	mixedSeed = 0x6d69786564 // "mixed"
	smallSeed = 0x736d616c6c // "small"
)

// scaled returns n times scale, at least floor.
func scaled(n int64, scale float64, floor int64) int64 {
	return max(int64(math.Round(float64(n)*scale)), floor)
}

// Mixed lists the mixed tree at a scale (1 for the full ≈512 MiB).
func Mixed(scale float64) []Entry {
	rng := rand.New(rand.NewPCG(mixedSeed, 1))
	entries := []Entry{
		{Path: BigFile, Size: scaled(256*MiB, scale, 2*MiB), Kind: Random},
		{Path: CopySource, Size: scaled(64*MiB, scale, 1*MiB), Kind: Random},
		{Path: RenameSource, Size: scaled(10*MiB, scale, 256*KiB), Kind: Random},
	}
	binBudget := scaled(128*MiB, scale, 2*MiB) - entries[1].Size - entries[2].Size
	for i, size := range fill(rng, binBudget, 4*KiB, 8*MiB) {
		entries = append(entries, Entry{Path: fmt.Sprintf("bin/d%d/blob-%04d.bin", i%8, i), Size: size, Kind: Random})
	}
	for i, size := range fill(rng, scaled(128*MiB, scale, 2*MiB), 1*KiB, 4*MiB) {
		entries = append(entries, Entry{Path: fmt.Sprintf("text/d%02d/s%d/doc-%04d.txt", i%16, i%3, i), Size: size, Kind: Text})
	}
	for i := range entries {
		entries[i].Seed = mixedSeed ^ uint64(i+1)*0x9e3779b97f4a7c15
	}
	return entries
}

// SmallCount is the number of files of the small tree at scale 1.
const SmallCount = 20000

// Small lists the small-files tree at a scale.
func Small(scale float64) []Entry {
	n := int(scaled(SmallCount, scale, 50))
	rng := rand.New(rand.NewPCG(smallSeed, 1))
	entries := make([]Entry, n)
	for i := range entries {
		entries[i] = Entry{
			Path: fmt.Sprintf("d%02d/e%02d/f%05d.txt", i%20, (i/20)%20, i),
			Size: 1*KiB + rng.Int64N(7*KiB+1),
			Kind: Text,
			Seed: smallSeed ^ uint64(i+1)*0x9e3779b97f4a7c15,
		}
	}
	return entries
}

// fill draws log-uniform sizes in [lo, hi] until they add up to budget;
// the last one is cut to fit.
func fill(rng *rand.Rand, budget, lo, hi int64) []int64 {
	var sizes []int64
	for budget > 0 {
		size := int64(math.Exp(math.Log(float64(lo)) + rng.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
		size = min(size, budget)
		sizes = append(sizes, size)
		budget -= size
	}
	return sizes
}

// TotalSize adds up the entries' sizes.
func TotalSize(entries []Entry) int64 {
	var n int64
	for _, e := range entries {
		n += e.Size
	}
	return n
}

// Content is a reader of the entry's bytes.
func Content(e Entry) io.Reader {
	if e.Kind == Text {
		return io.LimitReader(newTextReader(e.Seed), e.Size)
	}
	return io.LimitReader(newRandomReader(e.Seed), e.Size)
}

// Write creates the entries under dir, four files at a time (creating
// small files waits on the file system more than on the CPU).
func Write(ctx context.Context, dir string, entries []Entry) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, e := range entries {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return WriteFile(filepath.Join(dir, filepath.FromSlash(e.Path)), e) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// WriteFile writes one entry's bytes to path, creating its directory.
func WriteFile(path string, e Entry) (err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("dataset: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("dataset: close %s: %w", path, cerr)
		}
	}()
	// A buffer no larger than the file: allocating a MiB for each of
	// 20,000 small files costs more than writing them.
	buf := make([]byte, max(min(e.Size, 1*MiB), 1))
	if _, err := io.CopyBuffer(f, Content(e), buf); err != nil {
		return fmt.Errorf("dataset: write %s: %w", path, err)
	}
	return nil
}

package e2e

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestSyncDeltaEdits runs small edits of a large file, a rename and a copy
// through the whole stack (client engine, QUIC, server, store) and checks
// that each costs a few KB each way, not the file's chunk list or chunks,
// while both trees end equal.
func TestSyncDeltaEdits(t *testing.T) {
	ts := startServer(t)
	a := newDevice(t, ts, "laptop")
	b := newDevice(t, ts, "desktop")
	a.addRoot("docs")
	b.joinRoot("docs")

	size := 16 << 20
	if testing.Short() {
		size = 4 << 20
	}
	big := randomBytes(40, size)
	a.write("big.bin", big, 0o644)
	a.write("sub/other.bin", randomBytes(41, 8<<20), 0o644)
	a.sync()
	b.sync()
	sameTree(t, a.dir, b.dir)

	edits := []struct {
		name string
		edit func()
		// Most bytes each device may move, both ways, on a connection
		// already open: a whole chunk (64 KiB on average), or a chunk
		// list and the have-query of an 8 MiB file (36 and 32 bytes per
		// chunk: 8.5 KiB) would not fit.
		maxPush, maxPull int64
	}{
		{"insert 100 B", func() {
			big = slices.Concat(big[:size/2], randomBytes(42, 100), big[size/2:])
			a.write("big.bin", big, 0o644)
		}, 10 << 10, 6 << 10},
		{"overwrite 4 KiB", func() {
			copy(big[1<<20:], randomBytes(43, 4<<10))
			a.write("big.bin", big, 0o644)
		}, 14 << 10, 10 << 10},
		{"rename", func() {
			if err := os.Rename(filepath.Join(a.dir, "sub/other.bin"), filepath.Join(a.dir, "sub/renamed.bin")); err != nil {
				t.Fatal(err)
			}
		}, 4 << 10, 4 << 10},
		{"copy", func() {
			data, err := os.ReadFile(filepath.Join(a.dir, "big.bin"))
			if err != nil {
				t.Fatal(err)
			}
			a.write("copies/big.bin", data, 0o644)
		}, 4 << 10, 4 << 10},
	}
	for _, e := range edits {
		e.edit()
		push := a.sync()
		pull := b.sync()
		sameTree(t, a.dir, b.dir)
		if n := push.BytesSent + push.BytesReceived; n > e.maxPush {
			t.Errorf("%s: the push moved %d bytes, want at most %d", e.name, n, e.maxPush)
		}
		if n := pull.BytesSent + pull.BytesReceived; n > e.maxPull {
			t.Errorf("%s: the pull moved %d bytes, want at most %d", e.name, n, e.maxPull)
		}
		t.Logf("%s: push %d+%d bytes, %d chunks sent; pull %d+%d bytes, %d fetched, %d reused", e.name,
			push.BytesSent, push.BytesReceived, push.ChunksSent, pull.BytesSent, pull.BytesReceived, pull.ChunksFetched, pull.ChunksReused)
	}
}

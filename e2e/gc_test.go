package e2e

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quic-s/quics/gc"
)

// packBytes is the size of every pack file under the data dir.
func packBytes(t *testing.T, dataDir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(filepath.Join(dataDir, "cas"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		total += fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

func TestBinariesGCFreesDroppedHistory(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	runGCFreesDroppedHistory(t, dataDir, func() int64 { return packBytes(t, dataDir) }, "--views=false")
}

// runGCFreesDroppedHistory drops history with retention and checks gc
// frees it; storeBytes measures the packs wherever they live.
func runGCFreesDroppedHistory(t *testing.T, dataDir string, storeBytes func() int64, extra ...string) {
	addr, _, _ := startQuicsIn(t, dataDir, extra...)
	a := newQicHome(t, "a")
	a.must("register", "--server", addr, "--password", serverPassword, "--name", "a")
	a.must("root", "add", a.dir, "--root-password", rootPassword, "--name", "docs")

	const files, size = 6, 1 << 20
	for i := range files {
		a.write(filepath.Join("d", string(rune('a'+i))+".bin"), randomBytes(uint64(100+i), size), 0o644)
	}
	a.sync()
	// Every file replaced: the first versions are history only.
	for i := range files {
		a.write(filepath.Join("d", string(rune('a'+i))+".bin"), randomBytes(uint64(200+i), size), 0o644)
	}
	a.sync()
	// One file deleted: its content is history only too.
	if err := os.Remove(filepath.Join(a.dir, "d", "a.bin")); err != nil {
		t.Fatal(err)
	}
	a.sync()

	before := storeBytes()
	dry := mustQuics(t, "", "gc", "--dry-run", "--margin", "0", "--json", "--data", dataDir)
	var dryRep gc.Report
	if err := json.Unmarshal([]byte(dry), &dryRep); err != nil {
		t.Fatalf("gc --dry-run --json printed %q: %v", dry, err)
	}
	if !dryRep.DryRun || dryRep.ChunksDeleted != 0 && storeBytes() != before {
		t.Fatalf("dry run changed the store: %+v", dryRep)
	}
	// Keep-all: history references everything, nothing to free.
	var rep gc.Report
	if err := json.Unmarshal([]byte(mustQuics(t, "", "gc", "--margin", "0", "--json", "--data", dataDir)), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ChunksDeleted != 0 {
		t.Fatalf("gc deleted %d chunks that history still references", rep.ChunksDeleted)
	}

	mustQuics(t, "", "root", "set-retention", "docs", "--keep-last", "1", "--data", dataDir)
	out := mustQuics(t, "", "gc", "--margin", "0", "--json", "--data", dataDir)
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("gc --json printed %q: %v", out, err)
	}
	after := storeBytes()
	// What stays referenced: the five live files (the deleted file's
	// last content went with keep-last 1, the deletion being its head).
	live := int64((files - 1) * size)
	unreferenced := before - live
	freed := before - after
	t.Logf("packs %d -> %d bytes; unreferenced %d, freed %d; report %+v", before, after, unreferenced, freed, rep)
	if float64(freed) < 0.95*float64(unreferenced) {
		t.Errorf("gc freed %d of %d unreferenced bytes (< 95 %%)", freed, unreferenced)
	}
	for _, key := range []string{"chunks_deleted", "bytes_freed", "packs_deleted", "packs_rewritten", "duration_ms"} {
		if !strings.Contains(out, `"`+key+`"`) {
			t.Errorf("gc --json lacks %q", key)
		}
	}

	// The rest still syncs to a fresh client, and check is clean.
	b := newQicHome(t, "b")
	b.must("register", "--server", addr, "--password", serverPassword, "--name", "b")
	b.must("root", "join", "docs", b.dir, "--root-password", rootPassword)
	b.sync()
	sameTree(t, a.dir, b.dir)
	check := mustQuics(t, "", "check", "--read-data", "--json", "--data", dataDir)
	var cr gc.CheckReport
	if err := json.Unmarshal([]byte(check), &cr); err != nil || !cr.OK {
		t.Fatalf("check after gc: %s %v", check, err)
	}
	if got := readFile(t, filepath.Join(b.dir, "d", "b.bin")); !bytes.Equal(got, randomBytes(201, size)) {
		t.Error("b.bin did not survive gc")
	}
}

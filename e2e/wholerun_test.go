package e2e

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// counter reads a counter the server registered with reg.
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) == 1 {
			return f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no counter %s", name)
	return 0
}

// New multi-chunk files travel as whole runs, which the server hashes as
// they arrive: their commits read nothing back. An edit of a file the
// server mostly has is checked by reading it back, as before.
func TestInProcessNewFilesProvenOnUpload(t *testing.T) {
	reg := prometheus.NewRegistry()
	ts := startServerWithMetrics(t, reg)
	a := newDevice(t, ts, "a")
	b := newDevice(t, ts, "b")
	a.addRoot("docs")
	b.joinRoot("docs")
	large := randomBytes(1, 24<<20) // several upload batches: a stream of its own
	a.write("large.bin", large, 0o644)
	const medium = 12
	for i := range medium {
		a.write(fmt.Sprintf("dir/m%02d.bin", i), randomBytes(uint64(10+i), 300<<10), 0o644)
	}
	a.write("one-chunk.txt", []byte("small"), 0o644)
	if res := a.sync(); res.FilesUploaded != medium+2 {
		t.Fatalf("first sync: %+v", res.Stats)
	}
	proven := counter(t, reg, "quics_lists_proven_on_upload_total")
	readBack := counter(t, reg, "quics_lists_read_back_total")
	if proven != medium+1 || readBack != 0 {
		t.Fatalf("%v lists proven on upload, %v read back; want %d, 0", proven, readBack, medium+1)
	}

	edited := append(append(bytes.Clone(large[:len(large)/2]), randomBytes(2, 100)...), large[len(large)/2:]...)
	a.write("large.bin", edited, 0o644)
	a.sync()
	if got := counter(t, reg, "quics_lists_read_back_total"); got != 1 {
		t.Fatalf("after an edit: %v lists read back, want 1", got)
	}
	b.sync()
	sameTree(t, a.dir, b.dir)
}

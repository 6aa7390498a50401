package server

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quic-s/quics/syncproto"
)

// metricSeries are the names the admin API documents.
var metricSeries = []string{
	"quics_connected_clients",
	"quics_uploads_total",
	"quics_downloads_total",
	"quics_chunks_in_total",
	"quics_chunk_bytes_in_total",
	"quics_chunks_out_total",
	"quics_chunk_bytes_out_total",
	"quics_committed_bytes_total",
	"quics_uploaded_bytes_total",
	"quics_dedup_ratio",
	"quics_store_bytes",
	"quics_store_chunks",
	"quics_commit_duration_seconds",
	"quics_conflicts_open",
	"quics_gc_runs_total",
	"quics_gc_freed_bytes_total",
}

// gather returns every quics series of reg: a counter's or gauge's value,
// a histogram's sample count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, mf := range families {
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s has %d series, want 1", mf.GetName(), len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			out[mf.GetName()] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			out[mf.GetName()] = m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			out[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
		default:
			t.Fatalf("%s: unexpected type %v", mf.GetName(), mf.GetType())
		}
	}
	for _, name := range metricSeries {
		if _, ok := out[name]; !ok {
			t.Errorf("series %s missing; have %v", name, out)
		}
	}
	return out
}

func checkMetrics(t *testing.T, got, want map[string]float64) {
	t.Helper()
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s = %v, want %v", name, got[name], w)
		}
	}
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := testOptions(filepath.Join(t.TempDir(), "data"))
	opts.Metrics = reg
	e := newEnvWith(t, opts)
	e.srv.metrics.statsTTL = 0 // every gather reads the store
	addr := e.serveQUIC(t)
	ctx := testCtx(t)

	checkMetrics(t, gather(t, reg), map[string]float64{
		"quics_connected_clients": 0, "quics_uploads_total": 0, "quics_dedup_ratio": 1,
		"quics_store_chunks": 0, "quics_conflicts_open": 0, "quics_commit_duration_seconds": 0,
	})

	a := e.mustDial(t, addr, e.registerDevice(t, addr, "a"))
	b := e.mustDial(t, addr, e.registerDevice(t, addr, "b"))
	if _, err := a.RegisterRoot(ctx, "docs", rootPassword("docs")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.JoinRoot(ctx, "docs", rootPassword("docs")); err != nil {
		t.Fatal(err)
	}

	// a pushes a file, the same content under a second name (nothing
	// travels), and deletes the second.
	f := newFile(t, randomData(11, 700<<10))
	resp, sent, err := quicPush(ctx, a, "docs", "a.bin", nil, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(sent) < 3 {
		t.Fatalf("%d chunks sent, want several", len(sent))
	}
	head := resp.GetHead()
	resp, again, err := quicPush(ctx, a, "docs", "b.bin", nil, f)
	if err != nil || len(again) != 0 {
		t.Fatalf("second push: %d chunks sent, %v", len(again), err)
	}
	if _, err := a.Propose(ctx, deleteRequest("docs", "b.bin", resp.GetHead()), nil); err != nil {
		t.Fatal(err)
	}
	// b proposes other content on top of nothing: a conflict, not a
	// commit, but its chunk arrives.
	other := newFile(t, randomData(12, 5000))
	_, sentOther, err := quicPush(ctx, b, "docs", "a.bin", nil, other)
	if !errors.Is(err, syncproto.ErrConflict) {
		t.Fatalf("conflicting push: %v, want ErrConflict", err)
	}
	// b downloads a's file.
	got, err := quicDownload(ctx, b, "docs", "a.bin", f.hash)
	if err != nil {
		t.Fatal(err)
	}

	var bytesIn, rawIn, bytesOut float64
	for _, c := range append(sent, sentOther...) {
		bytesIn += float64(len(c.Data))
		rawIn += float64(c.RawLen)
	}
	for _, c := range got {
		bytesOut += float64(len(c.Data))
	}
	chunksIn := float64(len(sent) + len(sentOther))
	committed := float64(2 * len(f.data))
	e.srv.RecordGC(1234)
	e.srv.RecordGC(-1) // nonsense from a caller counts the run, frees nothing

	m := gather(t, reg)
	checkMetrics(t, m, map[string]float64{
		"quics_connected_clients":       2,
		"quics_uploads_total":           3, // a.bin, b.bin, the deletion
		"quics_commit_duration_seconds": 3,
		"quics_downloads_total":         1,
		"quics_chunks_in_total":         chunksIn,
		"quics_chunk_bytes_in_total":    bytesIn,
		"quics_uploaded_bytes_total":    rawIn,
		"quics_committed_bytes_total":   committed,
		"quics_dedup_ratio":             committed / rawIn,
		"quics_chunks_out_total":        float64(len(sent)),
		"quics_chunk_bytes_out_total":   bytesOut,
		"quics_store_chunks":            chunksIn,
		"quics_conflicts_open":          1,
		"quics_gc_runs_total":           2,
		"quics_gc_freed_bytes_total":    1234,
	})
	var bytesSent float64
	for _, c := range sent {
		bytesSent += float64(len(c.Data))
	}
	if len(got) != len(sent) || bytesOut != bytesSent {
		t.Errorf("downloaded %d chunks of %v bytes, a uploaded %d of %v", len(got), bytesOut, len(sent), bytesSent)
	}
	if m["quics_store_bytes"] < bytesIn {
		t.Errorf("quics_store_bytes = %v, less than the %v bytes stored", m["quics_store_bytes"], bytesIn)
	}
	if head.GetSeq() == 0 {
		t.Error("first push has no head")
	}

	// Close unregisters: a server opened again registers into the same
	// registry.
	e.reopen(t, opts)
	if m := gather(t, reg); m["quics_uploads_total"] != 0 || m["quics_store_chunks"] != chunksIn {
		t.Errorf("after reopening: uploads %v (counts start again), store chunks %v, want %v",
			m["quics_uploads_total"], m["quics_store_chunks"], chunksIn)
	}
}

func TestMetricsUnregisteredStillCount(t *testing.T) {
	e := newEnv(t)
	a := e.client(t, "a")
	e.root(t, a, "docs")
	e.mustPush(t, a, "docs", "x", nil, newFile(t, randomData(1, 1000)))
	if n := e.srv.metrics.uploads.Load(); n != 1 {
		t.Errorf("uploads = %d without a registry, want 1", n)
	}
}

package server

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
)

// storeStatsTTL is how long a scrape reuses the chunk store's summary:
// it reads every pack's counters, which a busy scraper should not repeat.
const storeStatsTTL = 5 * time.Second

// scrapeTimeout bounds the database reads of one scrape.
const scrapeTimeout = 10 * time.Second

// metrics is the server's Prometheus collector. The hot paths only add to
// atomics (and observe one histogram); everything else is read when
// scraped.
type metrics struct {
	s *Server

	uploads, downloads                               atomic.Uint64
	chunksIn, chunkBytesIn, chunksOut, chunkBytesOut atomic.Uint64
	committedBytes, uploadedBytes                    atomic.Uint64
	gcRuns, gcFreedBytes                             atomic.Uint64
	listsProvenOnUpload, listsReadBack               atomic.Uint64

	commitDuration prometheus.Histogram

	connected, dedup, storeBytes, storeChunks, storeRemote, conflicts *prometheus.Desc
	counters                                                          []counterSeries

	statsMu  sync.Mutex
	statsTTL time.Duration // storeStatsTTL; tests shrink it
	stats    cas.Stats
	statsAt  time.Time // zero: never read
}

// counterSeries is a counter kept in an atomic.
type counterSeries struct {
	desc  *prometheus.Desc
	value *atomic.Uint64
}

func newMetrics(s *Server) *metrics {
	m := &metrics{s: s, statsTTL: storeStatsTTL}
	desc := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	counter := func(v *atomic.Uint64, name, help string) {
		m.counters = append(m.counters, counterSeries{desc: desc(name, help), value: v})
	}
	counter(&m.uploads, "quics_uploads_total", "Versions committed from clients' proposals (files pushed, deletions included).")
	counter(&m.downloads, "quics_downloads_total", "Chunk lists served (files fetched).")
	counter(&m.chunksIn, "quics_chunks_in_total", "Chunks received by PutChunks.")
	counter(&m.chunkBytesIn, "quics_chunk_bytes_in_total", "Bytes of chunks received by PutChunks, in the stored (compressed) form.")
	counter(&m.chunksOut, "quics_chunks_out_total", "Chunks sent by GetChunks.")
	counter(&m.chunkBytesOut, "quics_chunk_bytes_out_total", "Bytes of chunks sent by GetChunks, in the stored (compressed) form.")
	counter(&m.committedBytes, "quics_committed_bytes_total", "Logical size of the content of committed versions.")
	counter(&m.uploadedBytes, "quics_uploaded_bytes_total", "Uncompressed size of the new chunks received.")
	counter(&m.listsProvenOnUpload, "quics_lists_proven_on_upload_total", "New contents whose chunk list was proven by hashing the upload as it arrived.")
	counter(&m.listsReadBack, "quics_lists_read_back_total", "New contents whose chunk list was proven by reading the chunks back from the store.")
	counter(&m.gcRuns, "quics_gc_runs_total", "Garbage collections run.")
	counter(&m.gcFreedBytes, "quics_gc_freed_bytes_total", "Bytes freed by garbage collection.")
	m.connected = desc("quics_connected_clients", "Authenticated sessions now.")
	m.dedup = desc("quics_dedup_ratio", "Committed bytes per uploaded byte since the server started (1 before any upload).")
	m.storeBytes = desc("quics_store_bytes", "Bytes of the chunk store's pack files.")
	m.storeChunks = desc("quics_store_chunks", "Chunks in the chunk store.")
	m.storeRemote = desc("quics_store_remote_bytes", "Bytes of pack files that live in the store's backend (S3); the rest of quics_store_bytes is local.")
	m.conflicts = desc("quics_conflicts_open", "Unresolved conflicts over all roots.")
	m.commitDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "quics_commit_duration_seconds",
		Help: "Time of the manifest commits made for proposals.",
		// A commit is one badger transaction: half a millisecond to
		// seconds when the disk is slow.
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.counters {
		ch <- c.desc
	}
	for _, d := range []*prometheus.Desc{m.connected, m.dedup, m.storeBytes, m.storeChunks, m.storeRemote, m.conflicts} {
		ch <- d
	}
	m.commitDuration.Describe(ch)
}

// Collect implements prometheus.Collector. A series that cannot be read
// (the database failed) is left out and logged, so that one failure does
// not fail the whole scrape.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.counters {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(c.value.Load()))
	}
	ch <- prometheus.MustNewConstMetric(m.connected, prometheus.GaugeValue, float64(m.s.liveSessions()))
	ch <- prometheus.MustNewConstMetric(m.dedup, prometheus.GaugeValue, m.dedupRatio())
	m.commitDuration.Collect(ch)

	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	if st, err := m.storeStats(ctx); err != nil {
		m.s.log.Warn("server: metrics: chunk store summary", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(m.storeBytes, prometheus.GaugeValue, float64(st.PackBytes))
		ch <- prometheus.MustNewConstMetric(m.storeChunks, prometheus.GaugeValue, float64(st.Chunks))
		ch <- prometheus.MustNewConstMetric(m.storeRemote, prometheus.GaugeValue, float64(st.RemoteBytes))
	}
	if n, err := m.openConflicts(ctx); err != nil {
		m.s.log.Warn("server: metrics: count conflicts", "err", err)
	} else {
		ch <- prometheus.MustNewConstMetric(m.conflicts, prometheus.GaugeValue, float64(n))
	}
}

func (m *metrics) dedupRatio() float64 {
	uploaded := m.uploadedBytes.Load()
	if uploaded == 0 {
		return 1
	}
	return float64(m.committedBytes.Load()) / float64(uploaded)
}

// storeStats returns the chunk store's summary, at most storeStatsTTL old.
func (m *metrics) storeStats(ctx context.Context) (cas.Stats, error) {
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	if !m.statsAt.IsZero() && time.Since(m.statsAt) < m.statsTTL {
		return m.stats, nil
	}
	st, err := m.s.store.Stats(ctx)
	if err != nil {
		return cas.Stats{}, err
	}
	m.stats, m.statsAt = st, time.Now()
	return st, nil
}

// openConflicts counts the unresolved conflicts of every root.
func (m *metrics) openConflicts(ctx context.Context) (int, error) {
	roots, err := m.s.db.ListRoots(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range roots {
		cs, err := m.s.db.ListConflicts(ctx, r.ID)
		switch {
		case errors.Is(err, manifest.ErrNotFound):
			continue // removed since the listing
		case err != nil:
			return 0, err
		}
		n += len(cs)
	}
	return n, nil
}

// RecordGC counts a garbage collection that freed freedBytes, for the
// quics_gc_* series.
func (s *Server) RecordGC(freedBytes int64) {
	s.metrics.gcRuns.Add(1)
	s.metrics.gcFreedBytes.Add(uint64(max(freedBytes, 0)))
}

package report

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Metric names one figure of a sample. Values are in base units.
type Metric string

// The metrics.
const (
	Wall          Metric = "wall_s"
	WireUp        Metric = "wire_up_bytes"   // client to server
	WireDown      Metric = "wire_down_bytes" // server to client
	Wire          Metric = "wire_bytes"      // both directions
	PacketsUp     Metric = "packets_up"
	PacketsDown   Metric = "packets_down"
	ChunksSent    Metric = "chunks_sent"
	ChunksSkipped Metric = "chunks_skipped"
	StoreBytes    Metric = "store_bytes" // DATA/cas, apparent size
	DBBytes       Metric = "db_bytes"    // DATA/db, allocated
	ServerRSS     Metric = "server_peak_rss_bytes"
	ClientRSS     Metric = "client_peak_rss_bytes"
	EngineWall    Metric = "engine_s" // the sync pass as qic timed it, without process start
	P50           Metric = "p50_s"
	P99           Metric = "p99_s"
	Payload       Metric = "payload_bytes" // payload of a raw transfer
	// Processor time, user and system. CPU is the step's whole; when
	// client and server are separate processes ClientCPU and ServerCPU
	// are its parts.
	CPU       Metric = "cpu_s"
	ClientCPU Metric = "client_cpu_s"
	ServerCPU Metric = "server_cpu_s"
	// WirePayload is the UDP payload of both directions: on the WAN
	// link, Wire less each packet's Ethernet, IPv4 and UDP headers, which
	// is what the relay counts on loopback.
	WirePayload Metric = "wire_payload_bytes"
)

// Sample is one run's figures for a row.
type Sample map[Metric]float64

// SetWire records both directions and their sum.
func (s Sample) SetWire(up, down int64) {
	s[WireUp], s[WireDown], s[Wire] = float64(up), float64(down), float64(up+down)
}

// SetCPU records a step's processor time: the client's, the server's
// when it could be read, and their sum.
func (s Sample) SetCPU(client, server time.Duration, serverKnown bool) {
	s[ClientCPU], s[CPU] = client.Seconds(), client.Seconds()
	if serverKnown {
		s[ServerCPU] = server.Seconds()
		s[CPU] += server.Seconds()
	}
}

// Tools, as rows name them.
const (
	Quics       = "quics"
	RsyncPlain  = "rsync"
	RsyncFuzzy  = "rsync -z --fuzzy"
	QuicGo      = "quic-go"
	QuicGoRelay = "quic-go via relay"
)

// RatioCeiling is the key of a row's ratio to its ceiling.
const RatioCeiling = "ceiling"

// Row is one tool in one scenario.
type Row struct {
	Scenario string `json:"scenario"`
	Tool     string `json:"tool"`
	// Key is the metric ratios and targets look at.
	Key Metric `json:"key,omitempty"`
	// Ceiling and CeilingTool name the raw quic-go row this row's wall
	// time is compared with.
	Ceiling     string   `json:"ceiling,omitempty"`
	CeilingTool string   `json:"ceiling_tool,omitempty"`
	Runs        []Sample `json:"runs"`
	Median      Sample   `json:"median,omitempty"`
	// Ratios of this row's Key to the rsync rows of its scenario (by
	// their tool) and to its ceiling (RatioCeiling, on wall time).
	Ratios map[string]float64 `json:"ratios,omitempty"`
	Notes  []string           `json:"notes,omitempty"`
	// Skipped says why the row has no figures.
	Skipped string `json:"skipped,omitempty"`
}

// Target is one of the goals: a row's metric at most Limit, or at
// most Factor times another row's median of the same metric.
type Target struct {
	Name     string  `json:"name"`
	Scenario string  `json:"scenario"`
	Tool     string  `json:"tool"`
	Metric   Metric  `json:"metric"`
	Limit    float64 `json:"limit,omitempty"`
	// RelTool and RelScenario name the row a relative target refers to
	// (RelScenario defaults to Scenario).
	RelTool     string  `json:"rel_tool,omitempty"`
	RelScenario string  `json:"rel_scenario,omitempty"`
	Factor      float64 `json:"factor,omitempty"`
	// Source is what the limit comes from, for people.
	Source string `json:"source"`
}

// Verdict is a target checked against the medians.
type Verdict struct {
	Target
	Value float64 `json:"value"`
	// Bound is the limit in the metric's units (for a relative target,
	// Factor times the other row's median).
	Bound float64 `json:"bound"`
	Met   bool    `json:"met"`
	// Missing says why the target could not be checked.
	Missing string `json:"missing,omitempty"`
	// CPUFloor, for a wall-time target, is the row's processor time
	// divided by the machine's CPUs: the least wall time that work can
	// take here, however well it is spread.
	CPUFloor float64 `json:"cpu_floor_s,omitempty"`
	cpus     int
}

// Machine describes where the benchmark ran.
type Machine struct {
	CPUs      int     `json:"cpus"`
	CPUModel  string  `json:"cpu_model,omitempty"`
	Kernel    string  `json:"kernel,omitempty"`
	GoVersion string  `json:"go_version"`
	Rsync     string  `json:"rsync,omitempty"`
	LoadAvg   string  `json:"load_avg_at_start,omitempty"`
	MemTotal  float64 `json:"mem_total_bytes,omitempty"`
}

// Report is a whole benchmark run.
type Report struct {
	Command  string    `json:"command"`
	Machine  Machine   `json:"machine"`
	Scale    float64   `json:"scale"`
	Runs     int       `json:"runs"`
	Started  time.Time `json:"started"`
	Elapsed  float64   `json:"elapsed_s"`
	Rows     []*Row    `json:"rows"`
	Targets  []Target  `json:"-"`
	Verdicts []Verdict `json:"targets"`
	Notes    []string  `json:"notes,omitempty"`
}

// Row returns the row of a scenario and tool, adding it (in order of
// first use) when new.
func (r *Report) Row(scenario, tool string) *Row {
	if row := r.Find(scenario, tool); row != nil {
		return row
	}
	row := &Row{Scenario: scenario, Tool: tool}
	r.Rows = append(r.Rows, row)
	return row
}

// Find returns a row, or nil.
func (r *Report) Find(scenario, tool string) *Row {
	for _, row := range r.Rows {
		if row.Scenario == scenario && row.Tool == tool {
			return row
		}
	}
	return nil
}

// Add appends one run's sample to a row.
func (r *Report) Add(scenario, tool string, s Sample) *Row {
	row := r.Row(scenario, tool)
	row.Runs = append(row.Runs, s)
	return row
}

// Skip marks a row as not measured, with the reason.
func (r *Report) Skip(scenario, tool, why string) {
	r.Row(scenario, tool).Skipped = why
}

// Finish computes medians, ratios and verdicts.
func (r *Report) Finish() {
	for _, row := range r.Rows {
		row.Median = median(row.Runs)
	}
	for _, row := range r.Rows {
		if row.Key == "" {
			continue
		}
		row.Ratios = map[string]float64{}
		for _, tool := range []string{RsyncPlain, RsyncFuzzy} {
			if other := r.Find(row.Scenario, tool); other != nil {
				if q, ok := ratio(row.Median, other.Median, row.Key); ok {
					row.Ratios[tool] = q
				}
			}
		}
		if c := r.Find(row.Ceiling, row.CeilingTool); c != nil {
			if q, ok := ratio(row.Median, c.Median, Wall); ok {
				row.Ratios[RatioCeiling] = q
			}
		}
		if len(row.Ratios) == 0 {
			row.Ratios = nil
		}
	}
	r.Verdicts = r.Verdicts[:0]
	for _, t := range r.Targets {
		r.Verdicts = append(r.Verdicts, r.check(t))
	}
}

func (r *Report) check(t Target) Verdict {
	v := Verdict{Target: t, Bound: t.Limit}
	row := r.Find(t.Scenario, t.Tool)
	value, ok := 0.0, false
	if row != nil {
		value, ok = row.Median[t.Metric]
	}
	if !ok {
		v.Missing = fmt.Sprintf("no %s figure for %s in %q", t.Metric, t.Tool, t.Scenario)
		if row != nil && row.Skipped != "" {
			v.Missing = row.Skipped
		}
		return v
	}
	v.Value = value
	if cpu, ok := row.Median[CPU]; ok && t.Metric == Wall && r.Machine.CPUs > 0 {
		v.cpus = r.Machine.CPUs
		v.CPUFloor = cpu / float64(r.Machine.CPUs)
	}
	if t.RelTool != "" {
		scenario := t.RelScenario
		if scenario == "" {
			scenario = t.Scenario
		}
		ref := r.Find(scenario, t.RelTool)
		base, ok := 0.0, false
		if ref != nil {
			base, ok = ref.Median[t.Metric]
		}
		if !ok {
			v.Missing = fmt.Sprintf("no %s figure for %s in %q to compare with", t.Metric, t.RelTool, scenario)
			return v
		}
		v.Bound = t.Factor * base
	}
	v.Met = value <= v.Bound
	return v
}

// ratio is a[key]/b[key] when both exist and b's is not zero.
func ratio(a, b Sample, key Metric) (float64, bool) {
	x, ok1 := a[key]
	y, ok2 := b[key]
	if !ok1 || !ok2 || y == 0 {
		return 0, false
	}
	return x / y, true
}

// median takes each metric's median over the samples that have it; an
// even count averages the middle two.
func median(runs []Sample) Sample {
	if len(runs) == 0 {
		return nil
	}
	values := map[Metric][]float64{}
	for _, s := range runs {
		for m, v := range s {
			values[m] = append(values[m], v)
		}
	}
	out := Sample{}
	for m, vs := range values {
		slices.Sort(vs)
		n := len(vs)
		if n%2 == 1 {
			out[m] = vs[n/2]
		} else {
			out[m] = (vs[n/2-1] + vs[n/2]) / 2
		}
	}
	return out
}

// Percentile is the nearest-rank p-th percentile (0 < p ≤ 100) of
// durations, or 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

package report

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// sampleReport has an edit scenario with rsync peers, an initial sync
// with a ceiling, a skipped row and targets of every kind.
func sampleReport() *Report {
	r := &Report{Scale: 1, Runs: 3, Machine: Machine{CPUs: 2, GoVersion: "go1.26"}}
	for i, wire := range []int64{30 << 10, 10 << 10, 20 << 10} {
		s := Sample{Wall: float64(i + 1), ChunksSent: 2, ChunksSkipped: 4000, ServerRSS: 100 << 20}
		s.SetWire(wire, 1<<10)
		r.Add("insert 100 B", Quics, s).Key = Wire
	}
	for range 3 {
		s := Sample{Wall: 1}
		s.SetWire(180<<10, 4<<10)
		r.Add("insert 100 B", RsyncPlain, s)
		z := Sample{Wall: 2}
		z.SetWire(117<<10, 2<<10)
		r.Add("insert 100 B", RsyncFuzzy, z)
	}
	init := r.Add("initial", Quics, Sample{Wall: 4, CPU: 5.5, ClientCPU: 3, ServerCPU: 2.5})
	init.Key, init.Ceiling, init.CeilingTool = Wall, "ceiling", QuicGo
	r.Add("ceiling", QuicGo, Sample{Wall: 2, Payload: 512 << 20, CPU: 1.73})
	r.Add("propagation", Quics, Sample{P50: 0.12, P99: 0.9})
	r.Skip("gc", Quics, "quics gc is not available")
	r.Targets = []Target{
		{Name: "insert wire", Scenario: "insert 100 B", Tool: Quics, Metric: Wire, Limit: 27.5 * 1024, Source: "0.25× casync"},
		{Name: "initial vs ceiling", Scenario: "initial", Tool: Quics, Metric: Wall, RelTool: QuicGo, RelScenario: "ceiling", Factor: 1.25, Source: "1.25× raw quic-go"},
		{Name: "p99", Scenario: "propagation", Tool: Quics, Metric: P99, Limit: 1, Source: "1 s"},
		{Name: "gc time", Scenario: "gc", Tool: Quics, Metric: Wall, Limit: 0.8, Source: "0.5× restic"},
		{Name: "vs rsync", Scenario: "insert 100 B", Tool: Quics, Metric: Wire, RelTool: RsyncPlain, Factor: 1, Source: "rsync"},
		{Name: "initial within 3 s", Scenario: "initial", Tool: Quics, Metric: Wall, Limit: 3, Source: "3 s"},
	}
	r.Finish()
	return r
}

func TestFinishMediansAndRatios(t *testing.T) {
	r := sampleReport()
	q := r.Find("insert 100 B", Quics)
	if got := q.Median[WireUp]; got != 20<<10 {
		t.Errorf("median wire up %v, want the middle of three (20 KiB)", got)
	}
	if got := q.Median[Wire]; got != 21<<10 {
		t.Errorf("median wire %v, want 21 KiB", got)
	}
	if got, want := q.Ratios[RsyncPlain], float64(21)/184; got != want {
		t.Errorf("×rsync %v, want %v", got, want)
	}
	if got, want := q.Ratios[RsyncFuzzy], float64(21)/119; got != want {
		t.Errorf("×rsync -z %v, want %v", got, want)
	}
	if got := r.Find("initial", Quics).Ratios[RatioCeiling]; got != 2 {
		t.Errorf("×ceiling %v, want 2", got)
	}
	if r.Find("insert 100 B", RsyncPlain).Ratios != nil {
		t.Error("an rsync row got ratios")
	}
	if got := median([]Sample{{Wall: 1}, {Wall: 4}}); got[Wall] != 2.5 {
		t.Errorf("median of two %v, want their mean", got[Wall])
	}
	if median(nil) != nil {
		t.Error("median of no runs is not nil")
	}
}

func TestVerdicts(t *testing.T) {
	r := sampleReport()
	want := map[string]struct {
		met     bool
		missing bool
		bound   float64
	}{
		"insert wire":        {met: true, bound: 27.5 * 1024},
		"initial vs ceiling": {met: false, bound: 2.5},
		"p99":                {met: true, bound: 1},
		"gc time":            {missing: true, bound: 0.8},
		"vs rsync":           {met: true, bound: 184 << 10},
		"initial within 3 s": {met: false, bound: 3},
	}
	if len(r.Verdicts) != len(want) {
		t.Fatalf("%d verdicts, want %d", len(r.Verdicts), len(want))
	}
	for _, v := range r.Verdicts {
		w := want[v.Name]
		if v.Met != w.met || (v.Missing != "") != w.missing || v.Bound != w.bound {
			t.Errorf("%s: %+v, want %+v", v.Name, v, w)
		}
	}
	lines := map[string]string{}
	for _, v := range r.Verdicts {
		lines[v.Name] = v.String()
	}
	if l := lines["initial vs ceiling"]; !strings.HasPrefix(l, "[MISS]") || !strings.Contains(l, "1.60× the target") {
		t.Errorf("missed target printed as %q", l)
	}
	if l := lines["initial vs ceiling"]; !strings.Contains(l, "out of reach here: its 5.50 s of processor time on 2 CPUs needs at least 2.75 s") {
		t.Errorf("a target below the processor-time floor printed as %q", l)
	}
	if l := lines["initial within 3 s"]; strings.Contains(l, "out of reach") {
		t.Errorf("a target above the processor-time floor printed as %q", l)
	}
	if l := lines["gc time"]; !strings.HasPrefix(l, "[n/a ]") || !strings.Contains(l, "not available") {
		t.Errorf("unchecked target printed as %q", l)
	}
	if l := lines["insert wire"]; !strings.HasPrefix(l, "[met ]") || !strings.Contains(l, "21.0 KiB ≤ 27.5 KiB") {
		t.Errorf("met target printed as %q", l)
	}
}

func TestWriteTableAligned(t *testing.T) {
	var b bytes.Buffer
	if err := sampleReport().WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	var header int
	for i, l := range lines {
		if strings.HasPrefix(l, "scenario") {
			header = i
		}
	}
	if header == 0 {
		t.Fatalf("no table header in:\n%s", out)
	}
	// Every column starts at the same position on each line: find "wire up"
	// in the header and check the numbers end where it ends.
	end := strings.Index(lines[header], "wire up") + len("wire up")
	endRunes := utf8.RuneCountInString(lines[header][:end])
	for _, l := range lines[header+2 : header+8] {
		r := []rune(l)
		if len(r) < endRunes || r[endRunes-1] == ' ' {
			t.Errorf("wire-up column not right-aligned at %d in %q", endRunes, l)
		}
	}
	for _, want := range []string{
		"20.0 KiB", // insert's median wire up
		"0.11×",    // 21/184 against rsync
		"2.00×",    // initial against its ceiling
		"p50 120 ms; p99 900 ms",
		"skipped: quics gc is not available",
		"[MISS] initial vs ceiling",
		"2/4000",
		"3.00+2.50 s", // the initial sync's client and server CPU
		"1.73 s",      // the ceiling's, one process
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	r := sampleReport()
	r.Started = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var b bytes.Buffer
	if err := r.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var back struct {
		Rows []struct {
			Scenario string             `json:"scenario"`
			Tool     string             `json:"tool"`
			Median   map[string]float64 `json:"median"`
			Runs     []map[string]float64
		} `json:"rows"`
		Targets []struct {
			Name string `json:"name"`
			Met  bool   `json:"met"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(b.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Rows) != len(r.Rows) || len(back.Targets) != len(r.Targets) {
		t.Fatalf("JSON has %d rows and %d targets", len(back.Rows), len(back.Targets))
	}
	if back.Rows[0].Median["wire_bytes"] != 21<<10 || len(back.Rows[0].Runs) != 3 {
		t.Fatalf("first row: %+v", back.Rows[0])
	}
}

func TestFormat(t *testing.T) {
	for _, c := range []struct {
		m    Metric
		v    float64
		want string
	}{
		{Wire, 512, "512 B"},
		{Wire, 4.3 * 1024, "4.3 KiB"},
		{StoreBytes, 435 << 20, "435.00 MiB"},
		{StoreBytes, 3 << 30, "3.00 GiB"},
		{Wall, 0.0042, "4.2 ms"},
		{Wall, 0.25, "250 ms"},
		{Wall, 3.14159, "3.14 s"},
		{ChunksSent, 12, "12"},
		{ServerCPU, 2.456, "2.46 s"},
	} {
		if got := Format(c.m, c.v); got != c.want {
			t.Errorf("Format(%s, %v) = %q, want %q", c.m, c.v, got, c.want)
		}
	}
	for q, want := range map[float64]string{0.5: "0.50×", 6272: "6272×", 0.0043: "0.0043×", 0.02: "0.02×", 1.254: "1.25×"} {
		if got := Ratio(q); got != want {
			t.Errorf("Ratio(%v) = %q, want %q", q, got, want)
		}
	}
}

func TestPercentile(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if got := Percentile(ds, 50); got != 50*time.Millisecond {
		t.Errorf("p50 %v", got)
	}
	if got := Percentile(ds, 99); got != 99*time.Millisecond {
		t.Errorf("p99 %v", got)
	}
	if got := Percentile(ds[:50], 99); got != 100*time.Millisecond {
		t.Errorf("p99 of 50 %v, want the largest", got)
	}
	if Percentile(nil, 50) != 0 {
		t.Error("percentile of nothing")
	}
	if ds[0] != 100*time.Millisecond {
		t.Error("Percentile sorted its argument")
	}
}

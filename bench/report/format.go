package report

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf8"
)

// column is one column of the table: its title, whether it is numeric
// (right-aligned) and how a row fills it.
type column struct {
	title   string
	numeric bool
	cell    func(*Row) string
}

var columns = []column{
	{"scenario", false, func(r *Row) string { return r.Scenario }},
	{"tool", false, func(r *Row) string { return r.Tool }},
	{"wall", true, func(r *Row) string { return metric(r, Wall) }},
	{"cpu cli+srv", true, cpuCell},
	{"wire up", true, func(r *Row) string { return metric(r, WireUp) }},
	{"wire down", true, func(r *Row) string { return metric(r, WireDown) }},
	{"chunks sent/skip", true, func(r *Row) string {
		sent, ok1 := r.Median[ChunksSent]
		skipped, ok2 := r.Median[ChunksSkipped]
		if !ok1 || !ok2 {
			return "-"
		}
		return fmt.Sprintf("%s/%s", Count(sent), Count(skipped))
	}},
	{"store", true, func(r *Row) string { return metric(r, StoreBytes) }},
	{"srv RSS", true, func(r *Row) string { return metric(r, ServerRSS) }},
	{"cli RSS", true, func(r *Row) string { return metric(r, ClientRSS) }},
	{"×rsync", true, func(r *Row) string { return ratioCell(r, RsyncPlain) }},
	{"×rsync -z", true, func(r *Row) string { return ratioCell(r, RsyncFuzzy) }},
	{"×ceiling", true, func(r *Row) string { return ratioCell(r, RatioCeiling) }},
	{"notes", false, notes},
}

func metric(r *Row, m Metric) string {
	v, ok := r.Median[m]
	if !ok {
		return "-"
	}
	return Format(m, v)
}

// cpuCell shows a step's processor time as its client's and server's
// parts when they were measured apart, else as the whole.
func cpuCell(r *Row) string {
	cli, okCli := r.Median[ClientCPU]
	srv, okSrv := r.Median[ServerCPU]
	switch {
	case okCli && okSrv:
		return fmt.Sprintf("%.2f+%.2f s", cli, srv)
	case okCli:
		return fmt.Sprintf("%.2f+? s", cli)
	}
	return metric(r, CPU)
}

func ratioCell(r *Row, key string) string {
	q, ok := r.Ratios[key]
	if !ok {
		return "-"
	}
	return Ratio(q)
}

func notes(r *Row) string {
	if r.Skipped != "" {
		return "skipped: " + r.Skipped
	}
	var parts []string
	if p50, ok := r.Median[P50]; ok {
		parts = append(parts, "p50 "+Seconds(p50))
	}
	if p99, ok := r.Median[P99]; ok {
		parts = append(parts, "p99 "+Seconds(p99))
	}
	if r.Key != "" {
		parts = append(parts, "ratios on "+keyName(r.Key))
	}
	return strings.Join(append(parts, r.Notes...), "; ")
}

func keyName(m Metric) string {
	switch m {
	case Wire:
		return "wire bytes"
	case Wall:
		return "wall time"
	}
	return string(m)
}

// Format prints a metric's value in its unit.
func Format(m Metric, v float64) string {
	switch m {
	case Wall, EngineWall, P50, P99, CPU, ClientCPU, ServerCPU:
		return Seconds(v)
	case ChunksSent, ChunksSkipped, PacketsUp, PacketsDown:
		return Count(v)
	}
	return Bytes(v)
}

// Bytes prints a byte count in binary units.
func Bytes(v float64) string {
	switch a := math.Abs(v); {
	case a < 1<<10:
		return fmt.Sprintf("%.0f B", v)
	case a < 1<<20:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	case a < 1<<30:
		return fmt.Sprintf("%.2f MiB", v/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", v/(1<<30))
}

// Seconds prints a duration given in seconds.
func Seconds(v float64) string {
	switch {
	case v < 0.01:
		return fmt.Sprintf("%.1f ms", v*1000)
	case v < 1:
		return fmt.Sprintf("%.0f ms", v*1000)
	}
	return fmt.Sprintf("%.2f s", v)
}

// Count prints a count.
func Count(v float64) string { return fmt.Sprintf("%.0f", v) }

// Ratio prints a ratio with two decimals, or two significant digits
// below 0.1 so that a tiny ratio does not print as zero.
func Ratio(q float64) string {
	switch {
	case q >= 100:
		return fmt.Sprintf("%.0f×", q)
	case q >= 0.1:
		return fmt.Sprintf("%.2f×", q)
	}
	return fmt.Sprintf("%.2g×", q)
}

// WriteTable prints the header, the table of medians and the targets.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "quics end-to-end benchmark: scale %g, %d run(s), medians shown; %.0f s in all\n", r.Scale, r.Runs, r.Elapsed)
	fmt.Fprintf(&b, "machine: %d CPUs (%s), kernel %s, %s, %s; load average at start %s\n",
		m.CPUs, orDash(m.CPUModel), orDash(m.Kernel), m.GoVersion, orDash(m.Rsync), orDash(m.LoadAvg))
	if r.Command != "" {
		fmt.Fprintf(&b, "command: %s\n", r.Command)
	}
	b.WriteString("\n")
	writeAligned(&b, r.Rows)
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if len(r.Verdicts) > 0 {
		b.WriteString("\ntargets (issue #7):\n")
		for _, v := range r.Verdicts {
			b.WriteString("  " + v.String() + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeAligned writes the rows under a header, each column as wide as its
// widest cell.
func writeAligned(b *strings.Builder, rows []*Row) {
	cells := [][]string{make([]string, len(columns))}
	for i, c := range columns {
		cells[0][i] = c.title
	}
	for _, row := range rows {
		line := make([]string, len(columns))
		for i, c := range columns {
			line[i] = c.cell(row)
		}
		cells = append(cells, line)
	}
	widths := make([]int, len(columns))
	for _, line := range cells {
		for i, cell := range line {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell))
		}
	}
	for n, line := range cells {
		var l strings.Builder
		for i, cell := range line {
			if i > 0 {
				l.WriteString("  ")
			}
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(cell))
			if columns[i].numeric {
				l.WriteString(pad + cell)
			} else if i < len(line)-1 {
				l.WriteString(cell + pad)
			} else {
				l.WriteString(cell)
			}
		}
		b.WriteString(strings.TrimRight(l.String(), " ") + "\n")
		if n == 0 {
			total := (len(widths) - 1) * 2
			for _, w := range widths {
				total += w
			}
			b.WriteString(strings.Repeat("-", total) + "\n")
		}
	}
}

// String is one line: met or missed, the value, the bound and by how much.
func (v Verdict) String() string {
	if v.Missing != "" {
		return fmt.Sprintf("[n/a ] %s: %s", v.Name, v.Missing)
	}
	value, bound := Format(v.Metric, v.Value), Format(v.Metric, v.Bound)
	if v.Met {
		return fmt.Sprintf("[met ] %s: %s ≤ %s (%s)", v.Name, value, bound, v.Source)
	}
	over := "∞"
	if v.Bound > 0 {
		over = Ratio(v.Value / v.Bound)
	}
	line := fmt.Sprintf("[MISS] %s: %s > %s, %s the target (%s)", v.Name, value, bound, over, v.Source)
	if v.CPUFloor > v.Bound {
		line += fmt.Sprintf("; out of reach here: its %s of processor time on %d CPUs needs at least %s",
			Seconds(v.CPUFloor*float64(v.cpus)), v.cpus, Seconds(v.CPUFloor))
	}
	return line
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quic-s/quics/client"
)

func TestBarGate(t *testing.T) {
	tests := []struct {
		name    string
		gate    barGate
		planned int64
		want    bool
	}{
		{"terminal, large", barGate{stdoutTerminal: true, stderrTerminal: true}, 64 << 20, true},
		{"terminal, just over", barGate{stdoutTerminal: true, stderrTerminal: true}, barThreshold + 1, true},
		{"terminal, at threshold", barGate{stdoutTerminal: true, stderrTerminal: true}, barThreshold, false},
		{"terminal, small", barGate{stdoutTerminal: true, stderrTerminal: true}, 1 << 20, false},
		{"terminal, nothing", barGate{stdoutTerminal: true, stderrTerminal: true}, 0, false},
		{"json", barGate{stdoutTerminal: true, stderrTerminal: true, json: true}, 64 << 20, false},
		{"stdout piped", barGate{stderrTerminal: true}, 64 << 20, false},
		{"stderr redirected", barGate{stdoutTerminal: true}, 64 << 20, false},
		{"no terminal at all", barGate{}, 64 << 20, false},
		{"piped json", barGate{json: true}, 64 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.gate.show(tt.planned); got != tt.want {
				t.Errorf("show(%d) = %v, want %v", tt.planned, got, tt.want)
			}
			if tt.want && !tt.gate.allowed() {
				t.Error("shows a bar but does not allow one")
			}
		})
	}
}

func TestIsTerminalNotForFilesPipesBuffers(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"file": f, "pipe": w, "buffer": &bytes.Buffer{}} {
		if isTerminal(out) {
			t.Errorf("%s taken for a terminal", name)
		}
	}
}

// open is a gate that lets every bar through, as on a terminal.
var open = barGate{stdoutTerminal: true, stderrTerminal: true}

func TestSyncBarsSmallTransferDrawsNothing(t *testing.T) {
	var buf bytes.Buffer
	b := newSyncBars(open, &buf)
	b.Plan(client.Download, 1<<20)
	b.Moved(client.Download, 1<<20)
	b.Plan(client.Upload, barThreshold)
	b.Moved(client.Upload, barThreshold)
	b.Close()
	if buf.Len() != 0 {
		t.Errorf("bars drawn for small transfers: %q", buf.String())
	}
}

func TestSyncBarsClosedGateDrawsNothing(t *testing.T) {
	var buf bytes.Buffer
	b := newSyncBars(barGate{stdoutTerminal: true, stderrTerminal: true, json: true}, &buf)
	b.Plan(client.Upload, 64<<20)
	b.Moved(client.Upload, 64<<20)
	b.Close()
	if buf.Len() != 0 {
		t.Errorf("bar drawn with --json: %q", buf.String())
	}
}

func TestSyncBarsLargeTransfer(t *testing.T) {
	var buf bytes.Buffer
	b := newSyncBars(open, &buf)
	const size = 6 << 20
	// Planned in two steps, the second crossing the threshold.
	b.Plan(client.Download, 3<<20)
	if buf.Len() != 0 {
		t.Fatalf("bar drawn below the threshold: %q", buf.String())
	}
	b.Plan(client.Download, size-3<<20)
	if !strings.Contains(buf.String(), "download") {
		t.Fatalf("no download bar once over the threshold: %q", buf.String())
	}
	for range 6 {
		b.Moved(client.Download, 1<<20)
	}
	out := buf.String()
	if !strings.Contains(out, "100%") || !strings.Contains(out, "6.0 MiB") || !strings.HasSuffix(out, "\n") {
		t.Errorf("finished bar should show 100%% of 6.0 MiB and end its line: %q", out)
	}
	// The next transfer (this root's uploads) gets its own bar.
	buf.Reset()
	b.Plan(client.Upload, 5<<20)
	b.Moved(client.Upload, 5<<20)
	if out := buf.String(); !strings.Contains(out, "upload") || !strings.Contains(out, "100%") {
		t.Errorf("upload bar: %q", out)
	}
}

func TestSyncBarsTakenBackPlan(t *testing.T) {
	var buf bytes.Buffer
	b := newSyncBars(open, &buf)
	// A file changed while uploading: part of the plan is taken back,
	// and the bar ends full at what did move.
	b.Plan(client.Upload, 8<<20)
	b.Moved(client.Upload, 5<<20)
	b.Plan(client.Upload, -3<<20)
	out := buf.String()
	if !strings.Contains(out, "100%") || !strings.HasSuffix(out, "\n") {
		t.Errorf("bar should end at 100%% of what moved: %q", out)
	}
	// Nothing moved at all: the bar is wiped, no line left.
	buf.Reset()
	b.Plan(client.Download, 8<<20)
	b.Plan(client.Download, -8<<20)
	if out := buf.String(); strings.Contains(out, "\n") || !strings.HasSuffix(out, "\r") {
		t.Errorf("an empty transfer should leave no line: %q", out)
	}
}

func TestSyncBarsOneLinePerTransfer(t *testing.T) {
	var buf bytes.Buffer
	b := newSyncBars(open, &buf)
	// More bytes move than the head sizes said; the engine plans the
	// difference when the pull ends. The finished bar is not drawn again.
	b.Plan(client.Download, 5<<20)
	b.Moved(client.Download, 5<<20)
	b.Moved(client.Download, 1<<20)
	b.Plan(client.Download, 1<<20)
	if n := strings.Count(buf.String(), "\n"); n != 1 {
		t.Errorf("%d lines for one transfer: %q", n, buf.String())
	}
	// The next transfer in the same direction gets its own bar.
	b.Plan(client.Download, 5<<20)
	b.Moved(client.Download, 5<<20)
	if n := strings.Count(buf.String(), "\n"); n != 2 {
		t.Errorf("%d lines for two transfers: %q", n, buf.String())
	}
}

func TestSyncBarsCloseEndsUnfinishedBar(t *testing.T) {
	var buf bytes.Buffer
	b := newSyncBars(open, &buf)
	b.Plan(client.Download, 10<<20)
	b.Moved(client.Download, 2<<20)
	if strings.HasSuffix(buf.String(), "\n") {
		t.Fatalf("unfinished bar ended its line: %q", buf.String())
	}
	b.Close()
	if !strings.HasSuffix(buf.String(), "\n") {
		t.Errorf("Close left the cursor on the bar's line: %q", buf.String())
	}
}

func TestSyncBarsWarningOnItsOwnLine(t *testing.T) {
	var buf bytes.Buffer
	b := newSyncBars(open, &buf)
	b.Plan(client.Upload, 10<<20)
	b.Moved(client.Upload, 1<<20)
	b.warn(client.Warning{Root: "docs", Path: "a\\b", Err: errors.New("bad name")})
	out := buf.String()
	i := strings.Index(out, "qic: warning:")
	if i < 0 {
		t.Fatalf("warning not printed: %q", out)
	}
	// Only blanks between the start of the line (after the bar's last
	// carriage return) and the warning, and the warning ends its line.
	before := out[:i]
	if rest := before[strings.LastIndexAny(before, "\r\n")+1:]; strings.TrimSpace(rest) != "" {
		t.Errorf("warning shares its line with the bar: %q", out)
	}
	if !strings.HasSuffix(out, "bad name\n") {
		t.Errorf("warning does not end its line: %q", out)
	}
}

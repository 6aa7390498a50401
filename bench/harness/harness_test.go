package harness

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-s/quics/bench/dataset"
	"github.com/quic-s/quics/bench/procstat"
	"github.com/quic-s/quics/bench/report"
)

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.bin")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func read(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEditorEdits(t *testing.T) {
	orig := bytes.Repeat([]byte("0123456789"), 1000)
	e := newEditor()

	p := writeTemp(t, orig)
	if err := e.insert(p, 5000, 100); err != nil {
		t.Fatal(err)
	}
	got := read(t, p)
	if len(got) != len(orig)+100 || !bytes.Equal(got[:5000], orig[:5000]) || !bytes.Equal(got[5100:], orig[5000:]) {
		t.Fatalf("insert: %d bytes, head or tail changed", len(got))
	}
	if entries, _ := os.ReadDir(filepath.Dir(p)); len(entries) != 1 {
		t.Fatalf("insert left %d files behind", len(entries))
	}
	first := got[5000:5100]

	p = writeTemp(t, orig)
	if err := e.overwrite(p, 4096, 64); err != nil {
		t.Fatal(err)
	}
	got = read(t, p)
	if len(got) != len(orig) || !bytes.Equal(got[:4096], orig[:4096]) || !bytes.Equal(got[4160:], orig[4160:]) || bytes.Equal(got[4096:4160], orig[4096:4160]) {
		t.Fatal("overwrite changed the wrong bytes")
	}
	if bytes.Equal(got[4096:4160], first[:64]) {
		t.Fatal("two edits wrote the same bytes")
	}

	p = writeTemp(t, orig)
	if err := e.appendBytes(p, 1000); err != nil {
		t.Fatal(err)
	}
	if got = read(t, p); len(got) != len(orig)+1000 || !bytes.Equal(got[:len(orig)], orig) {
		t.Fatal("append changed the file's head")
	}
	dst := filepath.Join(filepath.Dir(p), "copy.bin")
	if err := e.copyFile(p, dst); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(read(t, dst), got) {
		t.Fatal("copy differs")
	}
	if err := e.copyFile(p, dst); err == nil {
		t.Fatal("copy over an existing file succeeded")
	}

	// Every edit moved the clock forward, one second at a time.
	a, _ := os.Stat(p)
	b, _ := os.Stat(dst)
	if d := b.ModTime().Sub(a.ModTime()); d != time.Second {
		t.Fatalf("mtimes of two successive edits differ by %v", d)
	}
}

func TestDirSize(t *testing.T) {
	dir := t.TempDir()
	for i, n := range []int{10, 5000, 70000} {
		sub := filepath.Join(dir, strings.Repeat("d/", i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, "f"), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	apparent, allocated, err := dirSize(dir)
	if err != nil {
		t.Fatal(err)
	}
	if apparent != 75010 || allocated <= 0 {
		t.Fatalf("apparent %d, allocated %d", apparent, allocated)
	}
	if a, _, err := dirSize(filepath.Join(dir, "missing")); err != nil || a != 0 {
		t.Fatalf("missing dir: %d, %v", a, err)
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{100: "100 B", 4096: "4 KiB", 256 << 20: "256 MiB", 13421773: "12.8 MiB", 1 << 30: "1 GiB"} {
		if got := size(n); got != want {
			t.Errorf("size(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestNamesFollowScale(t *testing.T) {
	o := Options{Edits: 50, Idle: 5 * time.Second}
	n := newNames(dataset.Mixed(1), dataset.Small(1), o)
	for got, want := range map[string]string{
		n.insert:       "insert 100 B mid 256 MiB file",
		n.overwrite:    "overwrite 4 KiB at 10 MiB",
		n.initialSmall: "initial sync, 20000 small files",
		n.pullSmall:    "first pull, 20000 small files, new device",
		n.smallEdit:    "64 B in 1 % of small files (200)",
		n.copy:         "copy 64 MiB file",
	} {
		if got != want {
			t.Errorf("scenario %q, want %q", got, want)
		}
	}
	small := newNames(dataset.Mixed(0.05), dataset.Small(0.05), o)
	if small.insert != "insert 100 B mid 12.8 MiB file" || small.overwrite != "overwrite 4 KiB at 6.4 MiB" {
		t.Errorf("at scale 0.05: %q, %q", small.insert, small.overwrite)
	}
	// Every target names a row the layout creates, on loopback and on
	// the WAN link.
	for _, wan := range []bool{false, true} {
		rep := &report.Report{}
		layoutRows(rep, n, wan, false)
		for _, tg := range targets(n, wan) {
			if rep.Find(tg.Scenario, tg.Tool) == nil {
				t.Errorf("wan %v: target %q refers to a row that does not exist: %q/%q", wan, tg.Name, tg.Scenario, tg.Tool)
			}
			// Absolute wire limits come from loopback payload figures.
			if tg.Limit > 0 && (tg.Metric == report.Wire || tg.Metric == report.WirePayload) {
				if want := map[bool]report.Metric{false: report.Wire, true: report.WirePayload}[wan]; tg.Metric != want {
					t.Errorf("wan %v: target %q measures %s, want %s", wan, tg.Name, tg.Metric, want)
				}
			}
		}
		// The WAN link has no relay: no row may wait for one.
		relayed := rep.Find(n.ceilingMixed, report.QuicGoRelay) != nil || rep.Find(n.initialMixed, toolDirect) != nil
		if relayed == wan {
			t.Errorf("wan %v: relay rows present: %v", wan, relayed)
		}
		q := rep.Find(n.initialMixed, report.Quics)
		if c := rep.Find(q.Ceiling, q.CeilingTool); c == nil {
			t.Errorf("wan %v: the quics row's ceiling %q/%q is not a row", wan, q.Ceiling, q.CeilingTool)
		}
	}
}

// A baseline build gets rows of its own beside "quics, no relay" for
// both initial syncs, and only where that row exists (not on the WAN
// link); without one there are none.
func TestBaselineRows(t *testing.T) {
	n := newNames(dataset.Mixed(0.05), dataset.Small(0.05), Options{Edits: 50, Idle: 5 * time.Second})
	for _, tc := range []struct{ wan, baseline, want bool }{
		{false, true, true}, {false, false, false}, {true, true, false},
	} {
		rep := &report.Report{}
		layoutRows(rep, n, tc.wan, tc.baseline)
		for _, scenario := range []string{n.initialMixed, n.initialSmall} {
			b := rep.Find(scenario, toolBaseline)
			if (b != nil) != tc.want {
				t.Errorf("wan %v, baseline %v: %s has a baseline row: %v", tc.wan, tc.baseline, scenario, b != nil)
				continue
			}
			if b != nil && (b.Key != report.Wall || rep.Find(b.Ceiling, b.CeilingTool) == nil) {
				t.Errorf("baseline row of %s: key %q, ceiling %q/%q", scenario, b.Key, b.Ceiling, b.CeilingTool)
			}
		}
	}
}

func TestRunChild(t *testing.T) {
	ctx := context.Background()
	res, err := run(ctx, "sh", "-c", "echo out; echo err >&2; sleep 0.1")
	if err != nil {
		t.Skip("no sh:", err)
	}
	if res.stdout != "out\n" || res.stderr != "err\n" || res.wall < 100*time.Millisecond {
		t.Fatalf("%+v", res)
	}
	// The child's own peak, not this process's (see package procstat).
	self, _ := procstat.HWM(os.Getpid())
	if res.maxRSS <= 0 || res.maxRSS >= self {
		t.Fatalf("sh's peak RSS %d, this process's %d", res.maxRSS, self)
	}
	_, err = run(ctx, "sh", "-c", "echo broken >&2; exit 3")
	if err == nil || !strings.Contains(err.Error(), "broken") {
		t.Fatalf("a failing child: %v", err)
	}
	if _, err := run(ctx, filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("a missing binary ran")
	}
}

func TestServerPeak(t *testing.T) {
	p, err := startBackgroundAt(context.Background(), place{}, "sleep", "30")
	if err != nil {
		t.Skip("no sleep:", err)
	}
	s := &server{proc: p}
	s.resetPeak()
	if rss := s.peakRSS(); rss <= 0 {
		t.Skip("no /proc VmHWM here")
	}
	if rss := p.interrupt(time.Second); rss <= 0 {
		t.Fatalf("interrupt reported peak %d", rss)
	}
	select {
	case <-p.exited:
	default:
		t.Fatal("interrupt returned before the process ended")
	}
}

func TestRecordCPU(t *testing.T) {
	ctx := context.Background()
	// A "server" that spins until interrupted.
	p, err := startBackgroundAt(ctx, place{}, "sh", "-c", "while :; do :; done")
	if err != nil {
		t.Skip("no sh:", err)
	}
	defer p.interrupt(time.Second)
	srv := &server{proc: p}
	mark := srv.cpuMark()
	if !mark.ok {
		t.Skip("no /proc/PID/stat here")
	}
	client, err := run(ctx, "sh", "-c", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done")
	if err != nil {
		t.Fatal(err)
	}
	// The spinning server's share of the CPUs depends on the machine's
	// load: wait until it has used 100 ms since the mark.
	for deadline := time.Now().Add(20 * time.Second); ; {
		now, err := procstat.CPU(p.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		if now-mark.t >= 100*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the spinning server used %v in 20 s", now-mark.t)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s := report.Sample{}
	srv.recordCPU(s, client, mark)
	if s[report.ClientCPU] <= 0 || s[report.ServerCPU] < 0.1 {
		t.Fatalf("client %v s, spinning server %v s", s[report.ClientCPU], s[report.ServerCPU])
	}
	if got, want := s[report.CPU], s[report.ClientCPU]+s[report.ServerCPU]; got != want {
		t.Fatalf("cpu %v, want the sum %v", got, want)
	}
}

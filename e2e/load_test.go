package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loadClients is QUICS_LOAD_CLIENTS, default 4 (make load: 50).
func loadClients(t *testing.T) int { return envCount(t, "QUICS_LOAD_CLIENTS", 4) }

// procStats reads a process's peak RSS (bytes) and CPU time from /proc.
func procStats(t *testing.T, pid int) (peakRSS int64, cpu time.Duration) {
	t.Helper()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for line := range strings.Lines(string(status)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			peakRSS = kb << 10
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which may hold spaces): utime and
	// stime are the 12th and 13th, in clock ticks (100 per second on Linux).
	rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	utime, _ := strconv.ParseInt(rest[11], 10, 64)
	stime, _ := strconv.ParseInt(rest[12], 10, 64)
	return peakRSS, time.Duration(utime+stime) * 10 * time.Millisecond
}

// histogramQuantile returns the upper bound of the bucket holding quantile
// q of a Prometheus histogram in text exposition.
func histogramQuantile(t *testing.T, metrics, name string, q float64) (bound float64, count float64) {
	t.Helper()
	type bucket struct{ le, n float64 }
	var buckets []bucket
	sc := bufio.NewScanner(strings.NewReader(metrics))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"_bucket{") {
			continue
		}
		i := strings.Index(line, `le="`)
		j := strings.Index(line[i+4:], `"`)
		leText := line[i+4 : i+4+j]
		le := math.Inf(1)
		if leText != "+Inf" {
			le, _ = strconv.ParseFloat(leText, 64)
		}
		n, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
		buckets = append(buckets, bucket{le, n})
	}
	if len(buckets) == 0 {
		t.Fatalf("no %s histogram in /metrics", name)
	}
	slices.SortFunc(buckets, func(a, b bucket) int { return int(math.Copysign(1, a.le-b.le)) })
	total := buckets[len(buckets)-1].n
	for _, b := range buckets {
		if b.n >= q*total {
			return b.le, total
		}
	}
	return math.Inf(1), total
}

func TestLoadManyClients(t *testing.T) {
	n := loadClients(t)
	const files, group, sharedFiles = 200, 5, 5
	dataDir := filepath.Join(t.TempDir(), "data")
	addr, out, proc := startQuicsIn(t, dataDir, "--views=true", "--log-level", "warn")
	m := fingerprintLine.FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no fingerprint:\n%s", out)
	}
	ts := &testServer{addr: addr, fingerprint: m[1]}

	devices := make([]*device, n)
	for i := range n {
		devices[i] = newDevice(t, ts, fmt.Sprintf("load%d", i))
		root := fmt.Sprintf("team%d", i/group)
		if i%group == 0 {
			devices[i].addRoot(root)
		} else {
			devices[i].joinRoot(root)
		}
	}
	// Overlapping content: even files are the same on every client of a
	// team (deduplicated across clients), odd ones are the client's own.
	for i, d := range devices {
		for j := range files {
			name := fmt.Sprintf("c%d/f%03d.txt", i, j)
			if j%2 == 0 {
				d.write(name, randomBytes(uint64(7000+j), 2<<10+j*20), 0o644)
			} else {
				d.write(name, randomBytes(uint64(100000*i+j), 1<<10+j*10), 0o644)
			}
		}
	}
	var (
		errs   atomic.Int64
		passes sync.Mutex
		times  []time.Duration
	)
	syncAll := func(edit func(i int, d *device)) {
		var wg sync.WaitGroup
		for i, d := range devices {
			wg.Go(func() {
				if edit != nil {
					edit(i, d)
				}
				start := time.Now()
				res, err := d.eng.SyncRoot(context.Background(), d.root)
				took := time.Since(start)
				if err != nil || res.Conflicts != 0 {
					errs.Add(1)
					t.Errorf("%d: sync: %v, %d conflicts", i, err, res.Conflicts)
				}
				passes.Lock()
				times = append(times, took)
				passes.Unlock()
			})
		}
		wg.Wait()
	}
	start := time.Now()
	syncAll(nil)
	// Concurrent edits: every client of a team writes the same new
	// content to the team's shared files at once, and edits its own.
	for round := range 2 {
		syncAll(func(i int, d *device) {
			for k := range sharedFiles {
				d.write(fmt.Sprintf("shared/s%d.txt", k), randomBytes(uint64(500+10*round+k), 6<<10), 0o644)
			}
			for j := 1; j < files; j += 10 {
				d.write(fmt.Sprintf("c%d/f%03d.txt", i, j), randomBytes(uint64(900000+100000*i+10*j+round), 3<<10), 0o644)
			}
		})
	}
	// Catch up: two quiet rounds so everyone has everyone's last edits.
	syncAll(nil)
	syncAll(nil)
	elapsed := time.Since(start)

	for i := group; i <= n; i += group {
		for _, d := range devices[i-group+1 : min(i, n)] {
			sameTree(t, devices[i-group].dir, d.dir)
		}
	}
	if r := n % group; r > 1 {
		for _, d := range devices[n-r+1:] {
			sameTree(t, devices[n-r].dir, d.dir)
		}
	}
	want := min(n, group)*files + sharedFiles
	if got := len(treeOf(t, devices[0].dir)); got != want {
		t.Errorf("client 0 has %d files, want %d", got, want)
	}

	a := newAdminHTTP(t, dataDir, out.String())
	code, metrics := a.get(t, false, true, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	p50, commits := histogramQuantile(t, metrics, "quics_commit_duration_seconds", 0.5)
	p99, _ := histogramQuantile(t, metrics, "quics_commit_duration_seconds", 0.99)
	rss, cpu := procStats(t, proc.cmd.Process.Pid)
	slices.Sort(times)
	t.Logf("load: %d clients × %d files (teams of %d, %d shared files edited concurrently), %.0f commits in %v; "+
		"server peak RSS %d MiB, CPU %v; commit latency p50 ≤ %gs, p99 ≤ %gs (histogram bucket bounds); "+
		"sync pass p50 %v, max %v; %d errors",
		n, files, group, sharedFiles, commits, elapsed.Round(time.Millisecond), rss>>20, cpu, p50, p99,
		times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), errs.Load())
}

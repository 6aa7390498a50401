package harness

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/zeebo/blake3"

	"github.com/quic-s/quics/bench/dataset"
	"github.com/quic-s/quics/bench/report"
)

// version is one line of quics show history --json.
type version struct {
	Hash    string `json:"hash"`
	Size    int64  `json:"size"`
	Deleted bool   `json:"deleted"`
}

// restore writes the big file's first version out with quics restore
// --output and checks the bytes.
func (r *runner) restore(ctx context.Context) error {
	res, err := r.srvMixed.admin(ctx, "show", "history", "mixed", dataset.BigFile, "--json")
	if err != nil {
		return err
	}
	var versions []version
	if err := json.Unmarshal([]byte(res.stdout), &versions); err != nil {
		return fmt.Errorf("quics show history --json: %w", err)
	}
	if len(versions) == 0 || versions[0].Deleted {
		return fmt.Errorf("quics show history lists no first version of %s", dataset.BigFile)
	}
	first := versions[0]
	out := filepath.Join(r.dir, "restored.bin")
	r.srvMixed.resetPeak()
	mark := r.srvMixed.cpuMark()
	res, err = r.srvMixed.admin(ctx, "restore", "mixed", dataset.BigFile, first.Hash, "--output", out)
	if err != nil {
		return err
	}
	s := report.Sample{
		report.Wall:      res.wall.Seconds(),
		report.ServerRSS: float64(r.srvMixed.peakRSS()),
		report.ClientRSS: float64(res.maxRSS),
	}
	r.srvMixed.recordCPU(s, res, mark)
	if err := sameContent(out, first.Hash, r.entry(dataset.BigFile).Size); err != nil {
		return err
	}
	_ = os.Remove(out)
	r.rep.Add(r.n.restore, report.Quics, s)
	r.logf("%s: %s", r.n.restore, report.Seconds(s[report.Wall]))
	return nil
}

// sameContent checks that path holds size bytes whose BLAKE3-256 is the
// hex hash (the file hash quics shows).
func sameContent(path, hash string, size int64) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("restored file: %w", err)
	}
	defer f.Close()
	h := blake3.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("restored file: %w", err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != hash {
		return fmt.Errorf("restored file has %d bytes hashing to %s, want %d bytes hashing to %s", n, got, size, hash)
	}
	return nil
}

// collect drops every old version of mixed and times quics gc.
func (r *runner) collect(ctx context.Context) error {
	if _, err := r.srvMixed.admin(ctx, "root", "set-retention", "mixed", "--keep-last", "1"); err != nil {
		return err
	}
	before, _, err := dirSize(filepath.Join(r.srvMixed.data, "cas"))
	if err != nil {
		return err
	}
	r.srvMixed.resetPeak()
	mark := r.srvMixed.cpuMark()
	res, err := r.srvMixed.admin(ctx, "gc", "--json", "--margin", "0")
	if err != nil {
		return err
	}
	s := report.Sample{
		report.Wall:      res.wall.Seconds(),
		report.ServerRSS: float64(r.srvMixed.peakRSS()),
		report.ClientRSS: float64(res.maxRSS),
		storeBefore:      float64(before),
	}
	r.srvMixed.recordCPU(s, res, mark)
	if err := storeSizes(s, r.srvMixed); err != nil {
		return err
	}
	// Whatever numbers quics gc --json reports go into the JSON report.
	var out map[string]any
	if json.Unmarshal([]byte(res.stdout), &out) == nil {
		for k, v := range out {
			if f, ok := v.(float64); ok {
				s[report.Metric("gc_"+k)] = f
			}
		}
	}
	row := r.rep.Add(r.n.gc, report.Quics, s)
	if r.run == 1 {
		row.Notes = append(row.Notes, "store before gc "+report.Bytes(float64(before)))
	}
	r.logf("%s: %s, store %s → %s", r.n.gc, report.Seconds(s[report.Wall]), report.Bytes(float64(before)), report.Bytes(s[report.StoreBytes]))
	return nil
}

// propagation runs two clients in qic run on a new root of the mixed
// server, charges qic run the wire bytes of an idle period, then times
// edits from A until B's copy has them.
func (r *runner) propagation(ctx context.Context) error {
	dirA, dirB := filepath.Join(r.dir, "live-a"), filepath.Join(r.dir, "live-b")
	if err := os.MkdirAll(dirA, 0o755); err != nil {
		return fmt.Errorf("propagation: %w", err)
	}
	live := "live.txt"
	if err := os.WriteFile(filepath.Join(dirA, live), []byte("seed\n"), 0o644); err != nil {
		return fmt.Errorf("propagation: %w", err)
	}
	a, err := r.newDevice(ctx, r.srvMixed, "live-a", dirA, true, r.o.Qic)
	if err != nil {
		return err
	}
	if _, err := a.qic(ctx, "root", "add", dirA, "--root-password", rootPassword, "--name", "live"); err != nil {
		return err
	}
	if _, _, err := a.sync(ctx); err != nil {
		return err
	}
	b, err := r.newDevice(ctx, r.srvMixed, "live-b", dirB, true, r.o.Qic)
	if err != nil {
		return err
	}
	if _, err := b.qic(ctx, "root", "join", "live", dirB, "--root-password", rootPassword); err != nil {
		return err
	}
	if _, _, err := b.sync(ctx); err != nil {
		return err
	}

	runA, err := a.start(ctx, "run")
	if err != nil {
		return err
	}
	runB, err := b.start(ctx, "run")
	if err != nil {
		runA.interrupt(10 * time.Second)
		return err
	}
	stopped := false
	var clientRSS int64
	stop := func() {
		if !stopped {
			stopped = true
			clientRSS = max(runA.interrupt(10*time.Second), runB.interrupt(10*time.Second))
		}
	}
	defer stop()
	// Both first passes and watch streams are up once nothing moves.
	both := r.meter(a, b)
	settle(ctx, time.Second, 30*time.Second, both)

	before, err := both(ctx)
	if err != nil {
		return err
	}
	select {
	case <-time.After(r.o.Idle):
	case <-ctx.Done():
		return ctx.Err()
	}
	after, err := both(ctx)
	if err != nil {
		return err
	}
	idle := after.Sub(before)
	s := report.Sample{}
	r.setWire(s, idle)
	r.rep.Add(r.n.idle, report.Quics, s)
	r.logf("%s: wire %s up %s down", r.n.idle, report.Bytes(float64(idle.UpBytes)), report.Bytes(float64(idle.DownBytes)))

	r.srvMixed.resetPeak()
	if before, err = both(ctx); err != nil {
		return err
	}
	lat, missed, err := r.edits(ctx, filepath.Join(dirA, live), filepath.Join(dirB, live), runA, runB)
	if err != nil {
		return err
	}
	settle(ctx, 200*time.Millisecond, 5*time.Second, both)
	if after, err = both(ctx); err != nil {
		return err
	}
	moved := after.Sub(before)
	serverRSS := r.srvMixed.peakRSS()
	stop()
	edits := int64(r.o.Edits)
	s = report.Sample{
		report.P50:       report.Percentile(lat, 50).Seconds(),
		report.P99:       report.Percentile(lat, 99).Seconds(),
		report.ServerRSS: float64(serverRSS),
		report.ClientRSS: float64(clientRSS),
		timedOut:         float64(missed),
	}
	s.SetWire(moved.UpBytes/edits, moved.DownBytes/edits)
	row := r.rep.Add(r.n.propagation, report.Quics, s)
	if missed > 0 {
		row.Notes = append(row.Notes, fmt.Sprintf("run %d: %d edits not seen on B within 10 s (counted as 10 s)", r.run, missed))
	}
	r.logf("%s: p50 %s, p99 %s, %d timed out", r.n.propagation, report.Seconds(s[report.P50]), report.Seconds(s[report.P99]), missed)
	return nil
}

// propagationTimeout is how long one edit may take to reach B.
const propagationTimeout = 10 * time.Second

// edits writes Edits versions of fileA and measures how long each takes
// to appear at fileB.
func (r *runner) edits(ctx context.Context, fileA, fileB string, runs ...*background) ([]time.Duration, int, error) {
	var lat []time.Duration
	missed := 0
	for range r.o.Edits {
		content, _ := io.ReadAll(r.ed.random(propagateBytes))
		start := time.Now()
		if err := os.WriteFile(fileA, content, 0o644); err != nil {
			return nil, 0, fmt.Errorf("propagation: %w", err)
		}
		for {
			got, err := os.ReadFile(fileB)
			if err == nil && string(got) == string(content) {
				lat = append(lat, time.Since(start))
				break
			}
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, 0, fmt.Errorf("propagation: %w", err)
			}
			for _, p := range runs {
				select {
				case <-p.exited:
					return nil, 0, fmt.Errorf("propagation: qic run exited: %s", tail(p.out.String(), 800))
				default:
				}
			}
			if time.Since(start) > propagationTimeout {
				lat = append(lat, propagationTimeout)
				missed++
				break
			}
			select {
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	return lat, missed, nil
}

// pullSmall joins a new device to the small tree's root, after its
// initial sync, and times its first pull of every file; rsync's figures
// are a copy of the same tree from the daemon into an empty directory.
func (r *runner) pullSmall(ctx context.Context) error {
	dir := filepath.Join(r.dir, "small-pulled")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	dev, err := r.newDevice(ctx, r.srvSmall, "small-pull", dir, true, r.o.Qic)
	if err != nil {
		return err
	}
	if _, err := dev.qic(ctx, "root", "join", "small", dir, "--root-password", rootPassword); err != nil {
		return err
	}
	st, err := r.quicsSyncStats(ctx, r.n.pullSmall, report.Quics, r.srvSmall, dev)
	if err != nil {
		return err
	}
	if st.FilesDownloaded != len(r.small) {
		return fmt.Errorf("pull: %d of %d files downloaded", st.FilesDownloaded, len(r.small))
	}
	return r.rsyncPull(ctx, r.n.pullSmall, "small", filepath.Join(r.dir, "small-pulled-rsync"))
}

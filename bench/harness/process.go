package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/quic-s/quics/bench/procstat"
	"github.com/quic-s/quics/bench/relay"
	"github.com/quic-s/quics/bench/report"
	"github.com/quic-s/quics/internal/syncbuf"
)

const (
	serverPassword = "bench-server-password"
	rootPassword   = "bench-root-password"
)

// procResult is a finished child process.
type procResult struct {
	stdout, stderr string
	wall           time.Duration
	maxRSS         int64         // bytes
	cpu            time.Duration // user and system
}

// run runs a binary on this host to completion; a non-zero exit is an
// error carrying its stderr.
func run(ctx context.Context, bin string, args ...string) (procResult, error) {
	return runAt(ctx, place{}, bin, args...)
}

// runAt is run in a place.
func runAt(ctx context.Context, at place, bin string, args ...string) (procResult, error) {
	var out, errOut bytes.Buffer
	cmd := at.command(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	// A step must not pay for the writeback of the one before it (an
	// fsync waits for the journal, which waits for others' dirty data):
	// every timed process starts with nothing dirty.
	syscall.Sync()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return procResult{}, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	peak := procstat.Watch(cmd.Process.Pid, peakPoll)
	err := cmd.Wait()
	res := procResult{stdout: out.String(), stderr: errOut.String(), wall: time.Since(start), maxRSS: peak()}
	if st := cmd.ProcessState; st != nil {
		res.cpu = st.UserTime() + st.SystemTime()
	}
	if err != nil {
		return res, fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, tail(errOut.String(), 800))
	}
	return res, nil
}

// peakPoll is how often a child's peak RSS is read.
const peakPoll = 10 * time.Millisecond

func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// background is a long-running child: a server or a qic run.
type background struct {
	cmd    *exec.Cmd
	out    *syncbuf.Buffer
	exited chan struct{}
}

// startBackgroundAt starts a long-running child in a place.
func startBackgroundAt(ctx context.Context, at place, bin string, args ...string) (*background, error) {
	out := &syncbuf.Buffer{}
	cmd := at.command(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", filepath.Base(bin), err)
	}
	b := &background{cmd: cmd, out: out, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(b.exited) }()
	return b, nil
}

// interrupt asks the process to stop and waits, killing it after grace.
// It returns the process's peak RSS until then.
func (b *background) interrupt(grace time.Duration) int64 {
	peak, _ := procstat.HWM(b.cmd.Process.Pid)
	_ = b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.exited:
	case <-time.After(grace):
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
	return peak
}

// server is a running quics server.
type server struct {
	bin  string
	data string
	addr string
	at   place
	proc *background
}

// startServer runs quics on a free port of its place's address (its
// admin API on that place's loopback) with data in dir, and waits until
// both its sync listener and admin API are up.
func startServer(ctx context.Context, at place, bin, data string) (*server, error) {
	addr, err := at.freeUDPAddr()
	if err != nil {
		return nil, err
	}
	proc, err := startBackgroundAt(ctx, at, bin, "run", "--data", data, "--listen", addr, "--password", serverPassword,
		"--admin", "127.0.0.1:0", "--admin-h3", "", "--views=false", "--log-level", "warn")
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin, data: data, addr: addr, at: at, proc: proc}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := proc.out.String()
		if strings.Contains(out, "listening on") && strings.Contains(out, "admin API on") {
			return s, nil
		}
		select {
		case <-proc.exited:
			return nil, fmt.Errorf("quics run exited at start: %s", tail(out, 800))
		case <-ctx.Done():
			proc.interrupt(5 * time.Second)
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			proc.interrupt(5 * time.Second)
			return nil, fmt.Errorf("quics run not up after 30 s: %s", tail(out, 800))
		}
	}
}

// admin runs a quics admin command against this server's data directory,
// where the server runs (its admin API is on that place's loopback).
func (s *server) admin(ctx context.Context, args ...string) (procResult, error) {
	return runAt(ctx, s.at, s.bin, append(args, "--data", s.data)...)
}

// resetPeak starts a new peak-RSS measurement of the server.
func (s *server) resetPeak() {
	_ = procstat.ResetHWM(s.proc.cmd.Process.Pid)
}

// peakRSS is the server's peak RSS since resetPeak, 0 when unreadable.
func (s *server) peakRSS() int64 {
	v, _ := procstat.HWM(s.proc.cmd.Process.Pid)
	return v
}

// selfCPU is this process's processor time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMark is the server's processor time at some instant, to subtract
// from a later one.
type cpuMark struct {
	t  time.Duration
	ok bool
}

func (s *server) cpuMark() cpuMark {
	t, err := procstat.CPU(s.proc.cmd.Process.Pid)
	return cpuMark{t: t, ok: err == nil}
}

// recordCPU records a step's processor time in smp: the client process's
// and the server's since mark (the sum alone when the server's cannot be
// read).
func (s *server) recordCPU(smp report.Sample, client procResult, mark cpuMark) {
	now := s.cpuMark()
	smp.SetCPU(client.cpu, now.t-mark.t, mark.ok && now.ok)
}

// stop stops the server with quics stop, killing it if that fails.
func (s *server) stop(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, err := s.admin(ctx, "stop")
	select {
	case <-s.proc.exited:
	case <-time.After(10 * time.Second):
		s.proc.interrupt(5 * time.Second)
	}
	return err
}

// device is one qic home with its synced directory, talking to the
// server through a relay (or directly when relay is nil), from its place.
type device struct {
	bin   string
	home  string
	dir   string
	at    place
	relay *relay.Relay
}

func (d *device) qic(ctx context.Context, args ...string) (procResult, error) {
	return runAt(ctx, d.at, d.bin, append([]string{"--home", d.home}, args...)...)
}

// start runs a long-lived qic command (qic run).
func (d *device) start(ctx context.Context, args ...string) (*background, error) {
	return startBackgroundAt(ctx, d.at, d.bin, append([]string{"--home", d.home}, args...)...)
}

// register registers the device with srv under name, through its relay.
func (d *device) register(ctx context.Context, srv *server, name string) error {
	addr := srv.addr
	if d.relay != nil {
		addr = d.relay.Addr()
	}
	_, err := d.qic(ctx, "register", "--server", addr, "--password", serverPassword, "--name", name)
	return err
}

// syncStats is what qic sync --json prints that the benchmark uses.
type syncStats struct {
	FilesUploaded   int   `json:"files_uploaded"`
	FilesDownloaded int   `json:"files_downloaded"`
	ChunksSent      int   `json:"chunks_sent"`
	ChunksSkipped   int   `json:"chunks_skipped"`
	BytesSent       int64 `json:"bytes_sent"`
	BytesReceived   int64 `json:"bytes_received"`
	Conflicts       int   `json:"conflicts"`
	DurationMS      int64 `json:"duration_ms"`
}

func (d *device) sync(ctx context.Context) (syncStats, procResult, error) {
	res, err := d.qic(ctx, "sync", "--json")
	if err != nil {
		return syncStats{}, res, err
	}
	var st syncStats
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		return syncStats{}, res, fmt.Errorf("qic sync --json printed %q: %w", tail(res.stdout, 200), err)
	}
	if st.Conflicts > 0 {
		return st, res, errors.New("qic sync reported conflicts; the benchmark's edits never conflict")
	}
	return st, res, nil
}

// settle waits until the meter has seen nothing for quiet (at most max),
// so the last packets of a finished exchange (a close, its
// acknowledgement) are counted. A meter that cannot be read ends the
// wait: the reading after it will say why.
func settle(ctx context.Context, quiet, maxWait time.Duration, m meter) {
	total := func() (int64, bool) {
		c, err := m(ctx)
		return c.Total(), err == nil
	}
	deadline := time.Now().Add(maxWait)
	last, ok := total()
	since := time.Now()
	for ok && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(quiet / 5)
		n, read := total()
		if !read {
			return
		}
		if n != last {
			last, since = n, time.Now()
		} else if time.Since(since) >= quiet {
			return
		}
	}
}

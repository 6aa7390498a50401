package rsyncd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quic-s/quics/bench/procstat"
)

// Variant is a set of rsync client flags.
type Variant struct {
	Name  string
	Flags []string
}

// The variants the benchmark runs.
var (
	Plain = Variant{Name: "rsync", Flags: nil}
	Fuzzy = Variant{Name: "rsync -z --fuzzy", Flags: []string{"-z", "--fuzzy"}}
)

// ErrMissing means rsync is not installed.
var ErrMissing = errors.New("rsync is not installed (Debian: apt-get install rsync)")

// Find returns the rsync binary's path and its version line.
func Find(ctx context.Context) (path, version string, err error) {
	path, err = exec.LookPath("rsync")
	if err != nil {
		return "", "", ErrMissing
	}
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", "", fmt.Errorf("rsync --version: %w", err)
	}
	version, _, _ = strings.Cut(string(out), "\n")
	return path, strings.TrimSpace(version), nil
}

// Daemon is a running rsync daemon.
type Daemon struct {
	bin    string
	addr   string
	port   int
	dir    string
	client func(ctx context.Context, name string, args ...string) *exec.Cmd
	cmd    *exec.Cmd
	exited chan struct{}
}

// Net places the daemon and its clients elsewhere than on this host's
// loopback: in two network namespaces, say. Zero fields take the
// loopback defaults.
type Net struct {
	// Addr is the address the daemon listens on and clients dial
	// (default 127.0.0.1).
	Addr string
	// Port is the daemon's TCP port; 0 picks a free one of 127.0.0.1,
	// which is only right for the default Addr.
	Port int
	// Daemon and Client make the daemon's and the clients' commands
	// (default exec.CommandContext).
	Daemon, Client func(ctx context.Context, name string, args ...string) *exec.Cmd
	// Dial connects the way clients will, to see that the daemon is up
	// (default a net.Dialer).
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
}

// Start runs an rsync daemon on a free port of 127.0.0.1 serving each
// module (name → directory, created if missing) writable, with its
// configuration, pid and log files in workDir. Close stops it.
func Start(ctx context.Context, bin, workDir string, modules map[string]string) (*Daemon, error) {
	return StartNet(ctx, bin, workDir, modules, Net{})
}

// StartNet is Start with the daemon and its clients placed by nw.
func StartNet(ctx context.Context, bin, workDir string, modules map[string]string, nw Net) (*Daemon, error) {
	if nw.Addr == "" {
		nw.Addr = "127.0.0.1"
	}
	if nw.Daemon == nil {
		nw.Daemon = exec.CommandContext
	}
	if nw.Client == nil {
		nw.Client = exec.CommandContext
	}
	if nw.Dial == nil {
		nw.Dial = (&net.Dialer{Timeout: time.Second}).DialContext
	}
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, fmt.Errorf("rsyncd: %w", err)
	}
	var conf strings.Builder
	// The daemon runs as the benchmark's user: as root it would switch
	// to nobody and fail to write the modules.
	fmt.Fprintf(&conf, "use chroot = no\nnumeric ids = yes\npid file = %s\nlog file = %s\nuid = %d\ngid = %d\n",
		filepath.Join(workDir, "rsyncd.pid"), filepath.Join(workDir, "rsyncd.log"), os.Getuid(), os.Getgid())
	for name, dir := range modules {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("rsyncd: module %s: %w", name, err)
		}
		fmt.Fprintf(&conf, "[%s]\npath = %s\nread only = no\n", name, dir)
	}
	confPath := filepath.Join(workDir, "rsyncd.conf")
	if err := os.WriteFile(confPath, []byte(conf.String()), 0o600); err != nil {
		return nil, fmt.Errorf("rsyncd: %w", err)
	}
	port := nw.Port
	if port == 0 {
		var err error
		if port, err = freeTCPPort(); err != nil {
			return nil, err
		}
	}
	var out bytes.Buffer
	// Not bound to ctx: the daemon outlives the call, until Close.
	cmd := nw.Daemon(context.WithoutCancel(ctx), bin, "--daemon", "--no-detach", "--config="+confPath, "--address="+nw.Addr, "--port="+strconv.Itoa(port))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("rsyncd: start: %w", err)
	}
	d := &Daemon{bin: bin, addr: nw.Addr, port: port, dir: workDir, client: nw.Client, cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(d.exited) }()
	addr := net.JoinHostPort(nw.Addr, strconv.Itoa(port))
	for deadline := time.Now().Add(10 * time.Second); ; {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		c, err := nw.Dial(dctx, "tcp", addr)
		cancel()
		if err == nil {
			_ = c.Close()
			return d, nil
		}
		select {
		case <-d.exited:
			log, _ := os.ReadFile(filepath.Join(workDir, "rsyncd.log"))
			return nil, fmt.Errorf("rsyncd: exited at start: %s%s", out.String(), log)
		case <-ctx.Done():
			_ = d.Close()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = d.Close()
			return nil, fmt.Errorf("rsyncd: not listening on %s after 10 s", addr)
		}
	}
}

func freeTCPPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("rsyncd: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Close stops the daemon.
func (d *Daemon) Close() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
	return nil
}

// Result is one push: what --stats said, the wall time of the client
// process and its peak resident set (VmHWM, polled: see package
// procstat).
type Result struct {
	Stats
	Wall   time.Duration
	MaxRSS int64 // bytes
	// ClientCPU is the client's processor time; DaemonCPU the daemon's
	// during the transfer (its forked workers', once it reaped them),
	// when DaemonCPUKnown.
	ClientCPU, DaemonCPU time.Duration
	DaemonCPUKnown       bool
}

// Push mirrors the directory src into module with the variant's flags.
func (d *Daemon) Push(ctx context.Context, src, module string, v Variant) (Result, error) {
	return d.transfer(ctx, v, strings.TrimSuffix(src, "/")+"/", d.moduleURL(module))
}

// Pull copies module from the daemon into dst (created if missing) with
// variant v's flags, in the direction a new device's first sync goes.
func (d *Daemon) Pull(ctx context.Context, module, dst string, v Variant) (Result, error) {
	return d.transfer(ctx, v, d.moduleURL(module), strings.TrimSuffix(dst, "/")+"/")
}

func (d *Daemon) moduleURL(module string) string {
	return fmt.Sprintf("rsync://%s/%s/", net.JoinHostPort(d.addr, strconv.Itoa(d.port)), module)
}

// transfer runs one rsync client from src to dst and reads its figures.
func (d *Daemon) transfer(ctx context.Context, v Variant, src, dst string) (Result, error) {
	args := append([]string{"-a", "--delete-delay", "--stats"}, v.Flags...)
	args = append(args, src, dst)
	var out, errOut bytes.Buffer
	cmd := d.client(ctx, d.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	daemonBefore, daemonErr := procstat.CPU(d.cmd.Process.Pid)
	start := time.Now()
	err := cmd.Start()
	var maxRSS int64
	if err == nil {
		peak := procstat.Watch(cmd.Process.Pid, 10*time.Millisecond)
		err = cmd.Wait()
		maxRSS = peak()
	}
	wall := time.Since(start)
	if err != nil {
		return Result{}, fmt.Errorf("rsync %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	st, err := ParseStats(out.String())
	if err != nil {
		return Result{}, err
	}
	res := Result{Stats: st, Wall: wall, MaxRSS: maxRSS,
		ClientCPU: cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
	if daemonErr == nil {
		if after, ok := d.settledCPU(ctx); ok {
			res.DaemonCPU, res.DaemonCPUKnown = after-daemonBefore, true
		}
	}
	return res, nil
}

// settledCPU is the daemon's processor time once it has reaped the
// worker of the transfer that just ended (its time counts only then),
// waiting at most a few seconds for that.
func (d *Daemon) settledCPU(ctx context.Context) (time.Duration, bool) {
	pid := d.cmd.Process.Pid
	deadline := time.Now().Add(3 * time.Second)
	for {
		kids, err := procstat.Children(pid)
		if err != nil {
			return 0, false
		}
		if len(kids) == 0 {
			cpu, err := procstat.CPU(pid)
			return cpu, err == nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Stats are the figures of rsync --stats the benchmark uses.
type Stats struct {
	BytesSent        int64 // client to daemon
	BytesReceived    int64 // daemon to client
	LiteralData      int64 // file bytes sent as such
	MatchedData      int64 // file bytes the receiver had
	FilesTransferred int64
}

var statLine = regexp.MustCompile(`(?m)^(Total bytes sent|Total bytes received|Literal data|Matched data|Number of regular files transferred|Number of files transferred): ([0-9][0-9,.]*)(?: bytes)?[ \t\r]*$`)

// ParseStats reads rsync --stats output (without --human-readable
// suffixes); both byte totals must be there.
func ParseStats(out string) (Stats, error) {
	var st Stats
	seen := map[string]bool{}
	for _, m := range statLine.FindAllStringSubmatch(out, -1) {
		// Thousands separators are "," or, in some locales, ".".
		n, err := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(m[2]), 10, 64)
		if err != nil {
			return Stats{}, fmt.Errorf("rsync --stats: %s: %w", m[0], err)
		}
		seen[m[1]] = true
		switch m[1] {
		case "Total bytes sent":
			st.BytesSent = n
		case "Total bytes received":
			st.BytesReceived = n
		case "Literal data":
			st.LiteralData = n
		case "Matched data":
			st.MatchedData = n
		default:
			st.FilesTransferred = n
		}
	}
	if !seen["Total bytes sent"] || !seen["Total bytes received"] {
		return Stats{}, fmt.Errorf("rsync --stats: no byte totals in %q", truncate(out, 200))
	}
	return st, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

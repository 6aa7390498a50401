package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runDir is where ip netns keeps its named namespaces.
const runDir = "/var/run/netns"

// Options describe the link.
type Options struct {
	// Prefix starts every namespace name (default "quics-bench"); New
	// removes namespaces with this prefix whose process is gone.
	Prefix string
	// Rate is tbf's rate in tc's syntax ("100mbit"), applied in both
	// directions; empty leaves the link unlimited.
	Rate string
	// Delay is netem's delay in tc's syntax ("10ms"), added in each
	// direction (the round trip gets twice it); empty adds none.
	Delay string
}

// End is one side of the link.
type End struct {
	// NS is the namespace's name, Dev the veth end in it and Addr its
	// IPv4 address.
	NS, Dev, Addr string
	ip            string
}

// Pair is a link between a server and a client namespace.
type Pair struct {
	Server, Client End
	// Rate is the tbf rate in force, "" when unlimited.
	Rate string
	// Delay is the netem delay in force each way, "" when none.
	Delay string
	// DelayErr says why the Delay asked for is not in force (netem
	// missing from the kernel, typically); nil when it is or none was
	// asked.
	DelayErr error

	closeOnce sync.Once
	closeErr  error
}

// The link's fixed layout: namespaces have their own addresses, routes
// and neighbor tables, so every pair can use the same ones.
const (
	serverAddr = "10.77.0.1"
	clientAddr = "10.77.0.2"
	prefixLen  = "/24"
	serverMAC  = "02:71:62:00:00:01"
	clientMAC  = "02:71:62:00:00:02"
	serverDev  = "veth-server"
	clientDev  = "veth-client"
)

// tbf's bucket: 64 KiB lets a burst of a few dozen full-size packets
// through at once, 50 ms is the longest a packet may queue before tbf
// drops it (a buffer of 625 KB at 100 Mbit/s).
const (
	tbfBurst   = "64kb"
	tbfLatency = "50ms"
)

var seq atomic.Int64

// Check says why a link cannot be built here: not root, or ip or tc
// missing. nil means New can be tried.
func Check() error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("needs root to create network namespaces (running as uid %d)", uid)
	}
	for _, name := range []string{"ip", "tc"} {
		if _, err := tool(name); err != nil {
			return err
		}
	}
	return nil
}

// tool finds ip or tc, also in the sbin directories a non-login PATH may
// lack.
func tool(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (Debian: apt-get install iproute2)", name)
}

// New builds the link. On error nothing of it is left behind.
func New(ctx context.Context, o Options) (p *Pair, err error) {
	if err := Check(); err != nil {
		return nil, err
	}
	ip, _ := tool("ip")
	tc, _ := tool("tc")
	if o.Prefix == "" {
		o.Prefix = "quics-bench"
	}
	if err := cleanStale(ctx, ip, o.Prefix); err != nil {
		return nil, err
	}
	base := fmt.Sprintf("%s-%d-%d", o.Prefix, os.Getpid(), seq.Add(1))
	p = &Pair{
		Server: End{NS: base + "-server", Dev: serverDev, Addr: serverAddr, ip: ip},
		Client: End{NS: base + "-client", Dev: clientDev, Addr: clientAddr, ip: ip},
	}
	defer func() {
		if err != nil {
			_ = p.Close()
			p = nil
		}
	}()
	sh := func(bin string, args ...string) error { return command(ctx, bin, args...) }
	for _, e := range []End{p.Server, p.Client} {
		if err := sh(ip, "netns", "add", e.NS); err != nil {
			return nil, err
		}
		// Before the veth moves in, so its end never gets an IPv6
		// address and never solicits anything.
		if err := e.Do(disableIPv6); err != nil {
			return nil, err
		}
	}
	if err := sh(ip, "link", "add", serverDev, "netns", p.Server.NS, "address", serverMAC, "type", "veth",
		"peer", "name", clientDev, "netns", p.Client.NS, "address", clientMAC); err != nil {
		return nil, err
	}
	for _, e := range []struct {
		End
		peer, peerMAC string
	}{{p.Server, clientAddr, clientMAC}, {p.Client, serverAddr, serverMAC}} {
		steps := [][]string{
			{"-n", e.NS, "addr", "add", e.Addr + prefixLen, "dev", e.Dev},
			{"-n", e.NS, "link", "set", e.Dev, "gso_max_segs", "1"},
			{"-n", e.NS, "link", "set", e.Dev, "up"},
			{"-n", e.NS, "link", "set", "lo", "up"},
			{"-n", e.NS, "neigh", "replace", e.peer, "lladdr", e.peerMAC, "dev", e.Dev, "nud", "permanent"},
		}
		for _, s := range steps {
			if err := sh(ip, s...); err != nil {
				return nil, err
			}
		}
	}
	// Until the kernel has marked a veth end up, its queue drops every
	// packet: the link is not ready before both are.
	for _, e := range []End{p.Server, p.Client} {
		if err := waitUp(ctx, e); err != nil {
			return nil, err
		}
	}
	if o.Rate != "" {
		for _, e := range []End{p.Server, p.Client} {
			if err := sh(tc, "-n", e.NS, "qdisc", "add", "dev", e.Dev, "root", "handle", "1:",
				"tbf", "rate", o.Rate, "burst", tbfBurst, "latency", tbfLatency); err != nil {
				return nil, err
			}
		}
		p.Rate = o.Rate
	}
	if o.Delay != "" {
		p.DelayErr = p.addDelay(ctx, tc, o.Delay)
		if p.DelayErr == nil {
			p.Delay = o.Delay
		}
	}
	return p, nil
}

// addDelay puts netem under tbf (or at the root) on both ends. A kernel
// without netem refuses the first end; that is reported, not fatal.
func (p *Pair) addDelay(ctx context.Context, tc, delay string) error {
	where := []string{"root"}
	if p.Rate != "" {
		where = []string{"parent", "1:1"}
	}
	for i, e := range []End{p.Client, p.Server} {
		args := append(append([]string{"-n", e.NS, "qdisc", "add", "dev", e.Dev}, where...), "handle", "10:", "netem", "delay", delay)
		if err := command(ctx, tc, args...); err != nil {
			if i > 0 {
				// One direction delayed and not the other would be a
				// link nobody asked for: undo the first.
				undo := append(append([]string{"-n", p.Client.NS, "qdisc", "del", "dev", p.Client.Dev}, where...), "handle", "10:")
				if uerr := command(ctx, tc, undo...); uerr != nil {
					return errors.Join(err, uerr)
				}
			}
			return err
		}
	}
	return nil
}

// waitUp waits until ip reports the end's operational state UP.
func waitUp(ctx context.Context, e End) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		out, err := exec.CommandContext(ctx, e.ip, "-n", e.NS, "-o", "link", "show", "dev", e.Dev).CombinedOutput()
		if err == nil && strings.Contains(string(out), " state UP ") {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("netns: %s in %s not up: %s", e.Dev, e.NS, strings.TrimSpace(string(out)))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func disableIPv6() error {
	for _, conf := range []string{"all", "default"} {
		err := os.WriteFile("/proc/sys/net/ipv6/conf/"+conf+"/disable_ipv6", []byte("1"), 0o644)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("netns: disable IPv6: %w", err)
		}
	}
	return nil
}

// Close deletes both namespaces (and so the veth pair). It does not need
// a context: it must run after the benchmark's was canceled.
func (p *Pair) Close() error {
	p.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var errs []error
		for _, e := range []End{p.Client, p.Server} {
			if _, err := os.Stat(filepath.Join(runDir, e.NS)); errors.Is(err, os.ErrNotExist) {
				continue
			}
			errs = append(errs, command(ctx, e.ip, "netns", "delete", e.NS))
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// Command runs a program in the namespace; its process is the program
// itself (ip netns exec execs it in place).
func (e End) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, e.ip, append([]string{"netns", "exec", e.NS, name}, args...)...)
}

// Counters are an interface's totals since it was created.
type Counters struct {
	TxBytes, RxBytes, TxPackets, RxPackets int64
}

// Sub is c minus an earlier reading.
func (c Counters) Sub(earlier Counters) Counters {
	return Counters{c.TxBytes - earlier.TxBytes, c.RxBytes - earlier.RxBytes, c.TxPackets - earlier.TxPackets, c.RxPackets - earlier.RxPackets}
}

// Counters reads the end's veth counters.
func (e End) Counters(ctx context.Context) (Counters, error) {
	names := []string{"tx_bytes", "rx_bytes", "tx_packets", "rx_packets"}
	args := []string{"netns", "exec", e.NS, "cat"}
	for _, n := range names {
		args = append(args, "/sys/class/net/"+e.Dev+"/statistics/"+n)
	}
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, e.ip, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return Counters{}, fmt.Errorf("netns: counters of %s in %s: %w: %s", e.Dev, e.NS, err, strings.TrimSpace(errOut.String()))
	}
	fields := strings.Fields(out.String())
	if len(fields) != len(names) {
		return Counters{}, fmt.Errorf("netns: counters of %s in %s: got %q", e.Dev, e.NS, out.String())
	}
	var v [4]int64
	for i, f := range fields {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return Counters{}, fmt.Errorf("netns: counters of %s in %s: %s: %w", e.Dev, e.NS, names[i], err)
		}
		v[i] = n
	}
	return Counters{TxBytes: v[0], RxBytes: v[1], TxPackets: v[2], RxPackets: v[3]}, nil
}

// Do runs f on an OS thread inside the namespace. Sockets f opens stay
// there; goroutines f starts do not run there.
func (e End) Do(f func() error) error {
	return inNamespace(filepath.Join(runDir, e.NS), f)
}

// command runs a setup command; a failure carries its output.
func command(ctx context.Context, bin string, args ...string) error {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("netns: %s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// cleanStale deletes namespaces named PREFIX-PID-… whose process is gone:
// what a run killed before its Close left.
func cleanStale(ctx context.Context, ip, prefix string) error {
	entries, err := os.ReadDir(runDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("netns: %w", err)
	}
	var errs []error
	for _, ent := range entries {
		rest, ok := strings.CutPrefix(ent.Name(), prefix+"-")
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || alive(pid) {
			continue
		}
		errs = append(errs, command(ctx, ip, "netns", "delete", ent.Name()))
	}
	return errors.Join(errs...)
}

package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/quic-s/quics/bench/ceiling"
	"github.com/quic-s/quics/bench/dataset"
	"github.com/quic-s/quics/bench/netns"
	"github.com/quic-s/quics/bench/relay"
	"github.com/quic-s/quics/bench/report"
	"github.com/quic-s/quics/bench/rsyncd"
)

// Options configure a benchmark.
type Options struct {
	// Quics and Qic are the binaries under test.
	Quics, Qic string
	// BaselineQuics and BaselineQic, when set, are other builds whose
	// initial syncs run beside the ones under test, without the relay,
	// alternating which goes first from run to run: on a machine whose
	// speed drifts, only runs interleaved like this compare two builds.
	BaselineQuics, BaselineQic string
	// Scale shrinks the datasets (1 is the full size).
	Scale float64
	// Runs is how many times everything runs; the table shows medians.
	Runs int
	// WorkDir holds one directory per run, removed after it unless Keep.
	WorkDir string
	Keep    bool
	// Edits is the number of propagation edits, Idle the quiet period
	// whose wire bytes qic run is charged.
	Edits int
	Idle  time.Duration
	// Scenarios limits the run to these scenario keys (see ScenarioKeys
	// and ParseScenarios); empty runs everything. The initial sync of a
	// tree runs whenever a selected scenario starts from its state.
	Scenarios []string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// WAN, when set, is the link servers and clients run on: servers,
	// the rsync daemon and quic-go's server in its server end, every
	// client in its client end, wire bytes from its client-side
	// counters, no relays. The caller builds and closes it.
	WAN *netns.Pair
}

// Metrics the harness records beyond the table's (they are in the JSON).
const (
	qicBytesSent     report.Metric = "qic_bytes_sent"
	qicBytesReceived report.Metric = "qic_bytes_received"
	rsyncLiteral     report.Metric = "rsync_literal_bytes"
	rsyncMatched     report.Metric = "rsync_matched_bytes"
	// rsync's own --stats totals, when the wire columns come from the
	// WAN link's counters instead.
	rsyncStatsSent     report.Metric = "rsync_stats_sent_bytes"
	rsyncStatsReceived report.Metric = "rsync_stats_received_bytes"
	storeBefore        report.Metric = "store_before_bytes"
	timedOut           report.Metric = "edits_timed_out"
)

// toolDirect is quics measured without the relay; toolBaseline the
// baseline build (Options.BaselineQuics), measured the same way.
const (
	toolDirect   = "quics, no relay"
	toolBaseline = "baseline, no relay"
)

// ErrScenarios means some scenarios failed; the report says which.
var ErrScenarios = errors.New("some scenarios failed")

// Run runs the benchmark and returns its report, finished. When some
// scenarios failed the report is still returned, with ErrScenarios.
func Run(ctx context.Context, o Options) (*report.Report, error) {
	if o.Runs < 1 {
		o.Runs = 1
	}
	if o.Edits < 1 {
		o.Edits = 50
	}
	if o.Idle <= 0 {
		o.Idle = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	mixed, small := dataset.Mixed(o.Scale), dataset.Small(o.Scale)
	n := newNames(mixed, small, o)
	rep := &report.Report{Scale: o.Scale, Runs: o.Runs, Started: time.Now().UTC()}

	rsyncBin, rsyncVersion, rsyncErr := rsyncd.Find(ctx)
	rep.Machine = machine(rsyncVersion)
	_, gcErr := run(ctx, o.Quics, "gc", "--help")
	wan := o.WAN != nil
	layoutRows(rep, n, wan, o.BaselineQuics != "")
	rep.Targets = targets(n, wan)
	if rsyncErr != nil {
		for _, row := range rep.Rows {
			if row.Tool == report.RsyncPlain || row.Tool == report.RsyncFuzzy {
				row.Skipped = rsyncErr.Error()
			}
		}
		rep.Notes = append(rep.Notes, "rsync skipped: "+rsyncErr.Error())
		rsyncBin = ""
	}
	if gcErr != nil {
		rep.Skip(n.gc, report.Quics, "this quics has no gc command (`quics gc --help` failed)")
	}
	if wan {
		rep.Notes = append(rep.Notes, wanNotes(o.WAN)...)
	} else {
		rep.Notes = append(rep.Notes,
			"wire = UDP payload bytes at a relay between each qic and the server (QUIC headers, AEAD tags and handshake included, IP/UDP headers not); rsync: --stats total bytes on its TCP connection",
			"quics, no relay: each initial sync again, against a fresh server without the relay (whose cost shows in the two ceiling rows: the relay's copies take CPU from the same two cores); the initial-sync time targets use it")
		if o.BaselineQuics != "" {
			rep.Notes = append(rep.Notes, fmt.Sprintf("baseline, no relay: the same, with %s and %s, run next to \"quics, no relay\" (odd runs after it, even runs before)", o.BaselineQuics, o.BaselineQic))
		}
	}
	rep.Notes = append(rep.Notes,
		"cpu cli+srv = user+system processor time of the client process (wait4) and of the server during the step (/proc/PID/stat; for rsync, the daemon's forked workers once reaped); quic-go rows: the benchmark process's own, client and server in one process; on loopback both sides share this machine's CPUs, so a wall time cannot fall below cpu ÷ CPUs",
		fmt.Sprintf("mixed = %s in %d files (half of it one random file, the rest half random binary, half text); small = %d files of 1–8 KiB in 400 directories",
			size(dataset.TotalSize(mixed)), len(mixed), len(small)))

	sel := selection{keys: o.Scenarios}
	if len(o.Scenarios) > 0 {
		rep.Notes = append(rep.Notes, "scenarios selected: "+strings.Join(o.Scenarios, ", ")+" (with the initial sync they start from)")
	}
	finish := func() {
		markUnselected(rep, n, sel)
		rep.Elapsed = time.Since(rep.Started).Seconds()
		rep.Finish()
	}
	var failed []string
	for i := range o.Runs {
		r := &runner{o: o, rep: rep, n: n, sel: sel, run: i + 1, mixed: mixed, small: small, rsyncBin: rsyncBin, gc: gcErr == nil}
		if wan {
			r.server, r.client = place{&o.WAN.Server}, place{&o.WAN.Client}
		}
		err := r.do(ctx)
		failed = append(failed, r.failed...)
		if err != nil {
			finish()
			return rep, fmt.Errorf("run %d: %w", i+1, err)
		}
	}
	finish()
	if len(failed) > 0 {
		return rep, fmt.Errorf("%w: %s", ErrScenarios, strings.Join(failed, "; "))
	}
	return rep, nil
}

// markUnselected notes on the rows a selection left empty why they are.
func markUnselected(rep *report.Report, n names, sel selection) {
	keys := n.keyOf()
	for _, row := range rep.Rows {
		if len(row.Runs) == 0 && row.Skipped == "" && !sel.has(keys[row.Scenario]) {
			row.Skipped = "not selected (--scenarios)"
		}
	}
}

// layoutRows creates the rows in the order the table shows them. On the
// WAN link there is no relay, so neither its ceiling row nor the rerun
// without it.
func layoutRows(rep *report.Report, n names, wan, baseline bool) {
	peers := func(scenario string) {
		rep.Row(scenario, report.RsyncPlain)
		rep.Row(scenario, report.RsyncFuzzy)
	}
	initial := func(ceilingScenario, scenario string, direct bool) {
		rep.Row(ceilingScenario, report.QuicGo)
		ceilingTool := report.QuicGo
		if !wan {
			rep.Row(ceilingScenario, report.QuicGoRelay)
			ceilingTool = report.QuicGoRelay
		}
		q := rep.Row(scenario, report.Quics)
		q.Key, q.Ceiling, q.CeilingTool = report.Wall, ceilingScenario, ceilingTool
		if direct && !wan {
			d := rep.Row(scenario, toolDirect)
			d.Key, d.Ceiling, d.CeilingTool = report.Wall, ceilingScenario, report.QuicGo
			if baseline {
				b := rep.Row(scenario, toolBaseline)
				b.Key, b.Ceiling, b.CeilingTool = report.Wall, ceilingScenario, report.QuicGo
			}
		}
		peers(scenario)
	}
	initial(n.ceilingMixed, n.initialMixed, true)
	initial(n.ceilingSmall, n.initialSmall, true)
	rep.Row(n.pullSmall, report.Quics).Key = report.Wall
	peers(n.pullSmall)
	for _, s := range []string{n.unchanged, n.insert, n.appendMiB, n.overwrite, n.rename, n.copy, n.smallEdit} {
		rep.Row(s, report.Quics).Key = report.Wire
		peers(s)
		if s == n.unchanged {
			rep.Row(n.idle, report.Quics).Notes = []string{"wire of both clients while idle"}
		}
	}
	for _, s := range []string{n.store, n.restore, n.gc, n.propagation} {
		rep.Row(s, report.Quics)
	}
	rep.Row(n.propagation, report.Quics).Notes = []string{"wire per edit, both clients"}
}

// runner is one run: its directory, servers, clients and rsync daemon.
type runner struct {
	o        Options
	rep      *report.Report
	n        names
	sel      selection
	run      int
	mixed    []dataset.Entry
	small    []dataset.Entry
	rsyncBin string
	gc       bool

	dir                string
	mixedDir, smallDir string
	ed                 *editor
	rsync              *rsyncd.Daemon
	srvMixed, srvSmall *server
	devMixed, devSmall *device
	// server and client are where servers and clients run.
	server, client place
	closers        []func()
	failed         []string
}

func (r *runner) logf(format string, args ...any) {
	fmt.Fprintf(r.o.Log, "[run %d/%d %s] %s\n", r.run, r.o.Runs, time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// try runs a scenario; a failure is noted on its row and the run goes on.
func (r *runner) try(scenario string, f func() error) {
	if err := f(); err != nil {
		r.logf("%s: FAILED: %v", scenario, err)
		row := r.rep.Row(scenario, report.Quics)
		row.Notes = append(row.Notes, fmt.Sprintf("run %d failed: %v", r.run, err))
		r.failed = append(r.failed, fmt.Sprintf("run %d: %s: %v", r.run, scenario, err))
	}
}

func (r *runner) do(ctx context.Context) (err error) {
	r.dir, err = os.MkdirTemp(r.o.WorkDir, fmt.Sprintf("run%d-", r.run))
	if err != nil {
		return fmt.Errorf("work dir: %w", err)
	}
	defer func() {
		for i := len(r.closers) - 1; i >= 0; i-- {
			r.closers[i]()
		}
		if !r.o.Keep {
			_ = os.RemoveAll(r.dir)
		} else {
			r.logf("kept %s", r.dir)
		}
	}()
	if err := r.setup(ctx); err != nil {
		return err
	}
	n, sel := r.n, r.sel
	if sel.has(KeyCeiling) {
		if sel.mixed() {
			r.try(n.ceilingMixed, func() error { return r.ceiling(ctx, n.ceilingMixed, dataset.TotalSize(r.mixed)) })
		}
		if sel.small() {
			r.try(n.ceilingSmall, func() error { return r.ceiling(ctx, n.ceilingSmall, dataset.TotalSize(r.small)) })
		}
	}
	if sel.mixed() {
		if err := r.initial(ctx, n.initialMixed, r.srvMixed, r.devMixed, "mixed", sel.has(KeyInitialMixed) && r.o.WAN == nil); err != nil {
			return err
		}
	}
	if sel.small() {
		if err := r.initial(ctx, n.initialSmall, r.srvSmall, r.devSmall, "small", sel.has(KeyInitialSmall) && r.o.WAN == nil); err != nil {
			return err
		}
		if sel.has(KeyPullSmall) {
			r.try(n.pullSmall, func() error { return r.pullSmall(ctx) })
		}
	}
	big := filepath.Join(r.mixedDir, filepath.FromSlash(dataset.BigFile))
	edit := func(key, scenario, tree string, change func() error) {
		if sel.has(key) {
			r.edit(ctx, scenario, tree, change)
		}
	}
	edit(KeyUnchanged, n.unchanged, "mixed", func() error { return nil })
	edit(KeyInsert, n.insert, "mixed", func() error { return r.ed.insert(big, r.entry(dataset.BigFile).Size/2, insertBytes) })
	edit(KeyAppend, n.appendMiB, "mixed", func() error { return r.ed.appendBytes(big, appendBytes) })
	edit(KeyOverwrite, n.overwrite, "mixed", func() error {
		return r.ed.overwrite(big, min(overwriteAt, r.entry(dataset.BigFile).Size/2), overwriteBytes)
	})
	edit(KeyRename, n.rename, "mixed", func() error {
		from := filepath.Join(r.mixedDir, filepath.FromSlash(dataset.RenameSource))
		// A similar name in the same directory, which rsync --fuzzy finds.
		if err := os.Rename(from, strings.TrimSuffix(from, ".bin")+"-renamed.bin"); err != nil {
			return fmt.Errorf("rename: %w", err)
		}
		return nil
	})
	edit(KeyCopy, n.copy, "mixed", func() error {
		// Into a new directory: rsync --fuzzy looks for a basis only in
		// the destination's directory, so this is a copy it cannot guess,
		// as in the measurements.
		to := filepath.Join(r.mixedDir, "copies", "copy-of-"+filepath.Base(dataset.CopySource))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		return r.ed.copyFile(filepath.Join(r.mixedDir, filepath.FromSlash(dataset.CopySource)), to)
	})
	edit(KeySmallEdit, n.smallEdit, "small", func() error {
		for i := 0; i < len(r.small); i += smallEditEvery {
			e := r.small[i]
			if err := r.ed.overwrite(filepath.Join(r.smallDir, filepath.FromSlash(e.Path)), e.Size/2, smallEditBytes); err != nil {
				return err
			}
		}
		return nil
	})
	if sel.has(KeyStore) {
		r.try(n.store, func() error { return r.store(n.store) })
	}
	if sel.has(KeyRestore) {
		r.try(n.restore, func() error { return r.restore(ctx) })
	}
	if r.gc && sel.has(KeyGC) {
		r.try(n.gc, func() error { return r.collect(ctx) })
	}
	if sel.has(KeyPropagation) {
		r.try(n.propagation, func() error { return r.propagation(ctx) })
	}
	return ctx.Err()
}

func (r *runner) entry(path string) dataset.Entry {
	for _, e := range r.mixed {
		if e.Path == path {
			return e
		}
	}
	return dataset.Entry{}
}

// setup writes the trees, starts the two servers, their clients and the
// rsync daemon.
func (r *runner) setup(ctx context.Context) error {
	r.ed = newEditor()
	r.mixedDir, r.smallDir = filepath.Join(r.dir, "mixed"), filepath.Join(r.dir, "small")
	start := time.Now()
	if r.sel.mixed() {
		if err := dataset.Write(ctx, r.mixedDir, r.mixed); err != nil {
			return err
		}
	}
	if r.sel.small() {
		if err := dataset.Write(ctx, r.smallDir, r.small); err != nil {
			return err
		}
	}
	r.logf("datasets written in %.1f s", time.Since(start).Seconds())
	var err error
	if r.sel.mixed() {
		if r.srvMixed, r.devMixed, err = r.serverAndDevice(ctx, "mixed", r.mixedDir, true, r.underTest()); err != nil {
			return err
		}
		r.closers = append(r.closers, func() { _ = r.srvMixed.stop(context.Background()) })
	}
	if r.sel.small() {
		if r.srvSmall, r.devSmall, err = r.serverAndDevice(ctx, "small", r.smallDir, true, r.underTest()); err != nil {
			return err
		}
		r.closers = append(r.closers, func() { _ = r.srvSmall.stop(context.Background()) })
	}
	if r.rsyncBin != "" {
		modules := map[string]string{}
		for _, m := range []string{"mixed", "small"} {
			for _, v := range []rsyncd.Variant{rsyncd.Plain, rsyncd.Fuzzy} {
				modules[module(m, v)] = filepath.Join(r.dir, "rsync", module(m, v))
			}
		}
		nw, err := r.rsyncNet()
		if err != nil {
			return err
		}
		r.rsync, err = rsyncd.StartNet(ctx, r.rsyncBin, filepath.Join(r.dir, "rsync", "daemon"), modules, nw)
		if err != nil {
			return err
		}
		r.closers = append(r.closers, func() { _ = r.rsync.Close() })
	}
	return nil
}

// rsyncNet places the rsync daemon on the WAN link's server end and its
// clients on the client end; on loopback it is the zero Net.
func (r *runner) rsyncNet() (rsyncd.Net, error) {
	if r.o.WAN == nil {
		return rsyncd.Net{}, nil
	}
	port, err := r.server.freePort("tcp4")
	if err != nil {
		return rsyncd.Net{}, err
	}
	return rsyncd.Net{Addr: r.server.addr(), Port: port, Daemon: r.server.command, Client: r.client.command, Dial: r.client.dial}, nil
}

func module(tree string, v rsyncd.Variant) string {
	if v.Name == rsyncd.Plain.Name {
		return tree + "-plain"
	}
	return tree + "-fuzzy"
}

// serverAndDevice starts a server for one tree and a client that adds the
// tree as root name, through a relay when relayed. The caller stops the
// server.
func (r *runner) serverAndDevice(ctx context.Context, name, dir string, relayed bool, b build) (*server, *device, error) {
	suffix := ""
	if !relayed {
		suffix = "-direct"
	}
	if b.tool == toolBaseline {
		suffix = "-baseline"
	}
	srv, err := startServer(ctx, r.server, b.quics, filepath.Join(r.dir, "server-"+name+suffix))
	if err != nil {
		return nil, nil, err
	}
	dev, err := r.newDevice(ctx, srv, name+suffix, dir, relayed, b.qic)
	if err == nil {
		_, err = dev.qic(ctx, "root", "add", dir, "--root-password", rootPassword, "--name", name)
	}
	if err != nil {
		_ = srv.stop(ctx)
		return nil, nil, err
	}
	return srv, dev, nil
}

// newDevice registers a new client home with srv. On the WAN link there
// is no relay: the link's counters replace it.
func (r *runner) newDevice(ctx context.Context, srv *server, name, dir string, relayed bool, qic string) (*device, error) {
	dev := &device{bin: qic, home: filepath.Join(r.dir, "home-"+name), dir: dir, at: r.client}
	if relayed && r.o.WAN == nil {
		rl, err := relay.New(srv.addr)
		if err != nil {
			return nil, err
		}
		r.closers = append(r.closers, func() { _ = rl.Close() })
		dev.relay = rl
	}
	if err := dev.register(ctx, srv, name); err != nil {
		return nil, err
	}
	return dev, nil
}

// ceiling times raw quic-go transfers of n bytes, direct and relayed (on
// the WAN link, across it).
func (r *runner) ceiling(ctx context.Context, scenario string, n int64) error {
	if r.o.WAN != nil {
		return r.ceilingWAN(ctx, scenario, n)
	}
	for _, viaRelay := range []bool{false, true} {
		cpu := selfCPU()
		res, err := ceiling.Transfer(ctx, n, viaRelay)
		if err != nil {
			return err
		}
		s := report.Sample{report.Wall: res.Wall.Seconds(), report.Payload: float64(res.Bytes)}
		tool := report.QuicGo
		if viaRelay {
			tool = report.QuicGoRelay
			s.SetWire(res.Wire.UpBytes, res.Wire.DownBytes)
		} else {
			// Client and server in this process, which does nothing
			// else meanwhile (the relayed transfer's figure would
			// include the relay's copies).
			s[report.CPU] = (selfCPU() - cpu).Seconds()
		}
		r.rep.Add(scenario, tool, s)
		r.logf("%s: %s %s", scenario, tool, report.Seconds(res.Wall.Seconds()))
	}
	return nil
}

// ceilingWAN times a raw quic-go transfer of n bytes from a socket in the
// client namespace to one in the server namespace.
func (r *runner) ceilingWAN(ctx context.Context, scenario string, n int64) error {
	var srv, cli net.PacketConn
	listen := func(at place, pc *net.PacketConn) error {
		return at.do(func() (err error) {
			*pc, err = net.ListenPacket("udp4", net.JoinHostPort(at.addr(), "0"))
			return err
		})
	}
	if err := listen(r.server, &srv); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	defer srv.Close()
	if err := listen(r.client, &cli); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	defer cli.Close()
	m := r.link()
	before, err := m(ctx)
	if err != nil {
		return err
	}
	cpu := selfCPU()
	res, err := ceiling.TransferOver(ctx, n, srv, cli)
	if err != nil {
		return err
	}
	cpu = selfCPU() - cpu
	settle(ctx, 100*time.Millisecond, 2*time.Second, m)
	after, err := m(ctx)
	if err != nil {
		return err
	}
	w := after.Sub(before)
	s := report.Sample{report.Wall: res.Wall.Seconds(), report.Payload: float64(res.Bytes), report.CPU: cpu.Seconds()}
	s.SetWire(w.UpBytes, w.DownBytes)
	s[report.PacketsUp], s[report.PacketsDown] = float64(w.UpPackets), float64(w.DownPackets)
	r.rep.Add(scenario, report.QuicGo, s)
	r.logf("%s: %s %s, wire %s up %s down", scenario, report.QuicGo, report.Seconds(res.Wall.Seconds()),
		report.Bytes(float64(w.UpBytes)), report.Bytes(float64(w.DownBytes)))
	return nil
}

// initial is a first sync of a tree: through the relay on the run's
// server, with direct also without it on a fresh server, then rsync.
// (On the WAN link nothing is relayed and direct is false.)
func (r *runner) initial(ctx context.Context, scenario string, srv *server, dev *device, tree string, direct bool) error {
	if err := r.quicsSync(ctx, scenario, report.Quics, srv, dev); err != nil {
		return err
	}
	if !direct {
		return r.rsyncPush(ctx, scenario, dev.dir, tree)
	}
	builds := []build{r.underTest()}
	builds[0].tool = toolDirect
	if r.o.BaselineQuics != "" {
		base := build{toolBaseline, r.o.BaselineQuics, r.o.BaselineQic}
		if r.run%2 == 0 {
			builds = []build{base, builds[0]}
		} else {
			builds = append(builds, base)
		}
	}
	for _, b := range builds {
		r.try(scenario, func() error {
			direct, ddev, err := r.serverAndDevice(ctx, tree, dev.dir, false, b)
			if err != nil {
				return err
			}
			defer func() {
				_ = direct.stop(ctx)
				_ = os.RemoveAll(direct.data)
				_ = os.RemoveAll(ddev.home)
			}()
			return r.quicsSync(ctx, scenario, b.tool, direct, ddev)
		})
	}
	return r.rsyncPush(ctx, scenario, dev.dir, tree)
}

// build is a pair of binaries and the row their figures go to.
type build struct {
	tool, quics, qic string
}

// underTest is the build the benchmark is about.
func (r *runner) underTest() build {
	return build{tool: report.Quics, quics: r.o.Quics, qic: r.o.Qic}
}

// edit applies a change to a tree, then syncs it with quics and rsync.
func (r *runner) edit(ctx context.Context, scenario, tree string, change func() error) {
	srv, dev := r.srvMixed, r.devMixed
	if tree == "small" {
		srv, dev = r.srvSmall, r.devSmall
	}
	r.try(scenario, func() error {
		if err := change(); err != nil {
			return err
		}
		if err := r.quicsSync(ctx, scenario, report.Quics, srv, dev); err != nil {
			return err
		}
		return r.rsyncPush(ctx, scenario, dev.dir, tree)
	})
}

// quicsSync runs qic sync on dev and records the figures under tool.
func (r *runner) quicsSync(ctx context.Context, scenario, tool string, srv *server, dev *device) error {
	_, err := r.quicsSyncStats(ctx, scenario, tool, srv, dev)
	return err
}

// quicsSyncStats is quicsSync returning what qic reported.
func (r *runner) quicsSyncStats(ctx context.Context, scenario, tool string, srv *server, dev *device) (syncStats, error) {
	flushDirty()
	m := r.meter(dev)
	var before relay.Counts
	if m != nil {
		var err error
		if before, err = m(ctx); err != nil {
			return syncStats{}, fmt.Errorf("%s: %w", scenario, err)
		}
	}
	srv.resetPeak()
	mark := srv.cpuMark()
	st, res, err := dev.sync(ctx)
	if err != nil {
		return syncStats{}, fmt.Errorf("%s: %w", scenario, err)
	}
	s := report.Sample{
		report.Wall:          res.wall.Seconds(),
		report.EngineWall:    float64(st.DurationMS) / 1000,
		report.ChunksSent:    float64(st.ChunksSent),
		report.ChunksSkipped: float64(st.ChunksSkipped),
		report.ClientRSS:     float64(res.maxRSS),
		report.ServerRSS:     float64(srv.peakRSS()),
		qicBytesSent:         float64(st.BytesSent),
		qicBytesReceived:     float64(st.BytesReceived),
	}
	srv.recordCPU(s, res, mark)
	if m != nil {
		settle(ctx, 100*time.Millisecond, 2*time.Second, m)
		after, err := m(ctx)
		if err != nil {
			return syncStats{}, fmt.Errorf("%s: %w", scenario, err)
		}
		r.setWire(s, after.Sub(before))
	}
	if err := storeSizes(s, srv); err != nil {
		return syncStats{}, err
	}
	r.rep.Add(scenario, tool, s)
	r.logf("%s: %s %s, wire %s up %s down, %d chunks sent, %d skipped", scenario, tool, report.Seconds(s[report.Wall]),
		wireText(s, report.WireUp), wireText(s, report.WireDown), st.ChunksSent, st.ChunksSkipped)
	return st, nil
}

// setWire records what quics moved across the meter: bytes and packets
// each way, and the UDP payload (what the relay counts on loopback; on
// the WAN link, the link's bytes less the frame headers).
func (r *runner) setWire(s report.Sample, w relay.Counts) {
	s.SetWire(w.UpBytes, w.DownBytes)
	s[report.PacketsUp], s[report.PacketsDown] = float64(w.UpPackets), float64(w.DownPackets)
	s[report.WirePayload] = s[report.Wire]
	if r.o.WAN != nil {
		s[report.WirePayload] = float64(udpPayload(w))
	}
}

func wireText(s report.Sample, m report.Metric) string {
	if v, ok := s[m]; ok {
		return report.Bytes(v)
	}
	return "-"
}

func storeSizes(s report.Sample, srv *server) error {
	cas, _, err := dirSize(filepath.Join(srv.data, "cas"))
	if err != nil {
		return err
	}
	_, db, err := dirSize(filepath.Join(srv.data, "db"))
	if err != nil {
		return err
	}
	s[report.StoreBytes], s[report.DBBytes] = float64(cas), float64(db)
	return nil
}

// rsyncPush mirrors the tree with both rsync variants. On the WAN link
// its wire bytes are the link's counters, like quics'; its --stats
// totals are kept beside them.
func (r *runner) rsyncPush(ctx context.Context, scenario, src, tree string) error {
	return r.rsyncBoth(ctx, scenario, func(v rsyncd.Variant) (rsyncd.Result, error) {
		return r.rsync.Push(ctx, src, module(tree, v), v)
	})
}

// rsyncPull copies the tree's modules from the daemon into empty
// directories named after dst, with both variants.
func (r *runner) rsyncPull(ctx context.Context, scenario, tree, dst string) error {
	return r.rsyncBoth(ctx, scenario, func(v rsyncd.Variant) (rsyncd.Result, error) {
		return r.rsync.Pull(ctx, module(tree, v), dst+"-"+module(tree, v), v)
	})
}

// rsyncBoth runs one rsync transfer per variant and records its figures.
func (r *runner) rsyncBoth(ctx context.Context, scenario string, transfer func(rsyncd.Variant) (rsyncd.Result, error)) error {
	if r.rsync == nil {
		return nil
	}
	m := r.link()
	for _, v := range []rsyncd.Variant{rsyncd.Plain, rsyncd.Fuzzy} {
		flushDirty()
		var before relay.Counts
		if m != nil {
			var err error
			if before, err = m(ctx); err != nil {
				return err
			}
		}
		res, err := transfer(v)
		if err != nil {
			return err
		}
		s := report.Sample{
			report.Wall:      res.Wall.Seconds(),
			report.ClientRSS: float64(res.MaxRSS),
			rsyncLiteral:     float64(res.LiteralData),
			rsyncMatched:     float64(res.MatchedData),
		}
		s.SetCPU(res.ClientCPU, res.DaemonCPU, res.DaemonCPUKnown)
		s.SetWire(res.BytesSent, res.BytesReceived)
		if m != nil {
			settle(ctx, 100*time.Millisecond, 2*time.Second, m)
			after, err := m(ctx)
			if err != nil {
				return err
			}
			w := after.Sub(before)
			s.SetWire(w.UpBytes, w.DownBytes)
			s[report.PacketsUp], s[report.PacketsDown] = float64(w.UpPackets), float64(w.DownPackets)
			s[rsyncStatsSent], s[rsyncStatsReceived] = float64(res.BytesSent), float64(res.BytesReceived)
		}
		r.rep.Add(scenario, v.Name, s)
		r.logf("%s: %s %s, wire %s up %s down", scenario, v.Name, report.Seconds(s[report.Wall]),
			report.Bytes(s[report.WireUp]), report.Bytes(s[report.WireDown]))
	}
	return nil
}

// store records the mixed server's store after all edits.
func (r *runner) store(scenario string) error {
	s := report.Sample{}
	if err := storeSizes(s, r.srvMixed); err != nil {
		return err
	}
	r.rep.Add(scenario, report.Quics, s)
	r.logf("%s: cas %s, db %s", scenario, report.Bytes(s[report.StoreBytes]), report.Bytes(s[report.DBBytes]))
	return nil
}

// Command quics-bench is the end-to-end benchmark of issue #7: quics
// against rsync and a raw quic-go transfer, on 127.0.0.1 or, with --wan,
// across a rate-limited link between two network namespaces. See
// package harness for what it measures and how; `make bench-e2e` runs it.
//
// Usage:
//
//	quics-bench [--scale F] [--runs N] [--json] [--bin DIR] [--work DIR] [--keep] [--scenarios LIST]
//	            [--wan [--wan-rate RATE] [--wan-delay DELAY]]
//
// --wan (root only, needs ip and tc) runs servers and clients in two
// network namespaces joined by a veth pair limited to --wan-rate (tc tbf
// syntax, default 100mbit) each way, with --wan-delay (default 10ms) each
// way added by netem where the kernel has it; the report says when it
// does not. The namespaces are removed at the end, also on an error or
// Ctrl-C; a run killed outright leaves them for the next --wan run to
// remove.
//
// --scenarios runs only the named scenarios (a comma list of keys:
// ceiling, initial-mixed, initial-small, pull-small, unchanged, insert, append,
// overwrite, rename, copy, small-edit, store, restore, gc, propagation;
// "edits" is insert,append,overwrite,rename,copy), plus the initial sync
// of the tree they start from.
//
// --scale and --runs default to the SCALE and RUNS environment variables
// (else 1 and 3). Without --bin, quics and qic are built from the module
// in the current directory into a temporary directory.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/quic-s/quics/bench/harness"
	"github.com/quic-s/quics/bench/netns"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quics-bench:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("quics-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scale := fs.Float64("scale", envFloat("SCALE", 1), "dataset scale, 1 = 512 MiB mixed and 20,000 small files (env SCALE)")
	runs := fs.Int("runs", int(envFloat("RUNS", 3)), "runs; the table shows medians (env RUNS)")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	bin := fs.String("bin", "", "directory holding built quics and qic binaries (default: build them from ./cmd)")
	baseline := fs.String("baseline", "", "directory holding another build's quics and qic: its initial syncs run interleaved with those under test, in rows of their own (not with --wan)")
	work := fs.String("work", os.TempDir(), "directory for the runs' data")
	keep := fs.Bool("keep", false, "keep each run's directory")
	edits := fs.Int("edits", 50, "edits timed in the propagation scenario")
	idle := fs.Duration("idle", 5*time.Second, "idle period whose wire bytes qic run is charged")
	only := fs.String("scenarios", "", "comma list of scenario keys to run ("+strings.Join(harness.ScenarioKeys, ", ")+", or edits); default all")
	wan := fs.Bool("wan", false, "run servers and clients in two network namespaces joined by a rate-limited veth pair (root only)")
	wanRate := fs.String("wan-rate", "100mbit", "with --wan: the link's rate each way (tc tbf syntax)")
	wanDelay := fs.String("wan-delay", "10ms", "with --wan: delay added each way with netem, where the kernel has it (tc syntax; empty for none)")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if !*wan {
		var stray []string
		fs.Visit(func(f *flag.Flag) {
			if strings.HasPrefix(f.Name, "wan-") {
				stray = append(stray, "--"+f.Name)
			}
		})
		if len(stray) > 0 {
			return fmt.Errorf("%w: %s without --wan", errUsage, strings.Join(stray, ", "))
		}
	}
	if *wan {
		// Before building anything: the one line says why not.
		if err := netns.Check(); err != nil {
			return fmt.Errorf("--wan: %w", err)
		}
	}
	if *scale <= 0 || *runs < 1 || *edits < 1 || fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: want --scale > 0, --runs ≥ 1, --edits ≥ 1 and no arguments", errUsage)
	}
	scenarios, err := harness.ParseScenarios(*only)
	if err != nil {
		return fmt.Errorf("%w: --scenarios: %w", errUsage, err)
	}
	dir := *bin
	if dir == "" {
		tmp, err := os.MkdirTemp("", "quics-bench-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintln(stderr, "building quics and qic…")
		build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", tmp+string(filepath.Separator), "./cmd/quics", "./cmd/qic")
		build.Stdout, build.Stderr = stderr, stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build quics and qic (or pass --bin): %w", err)
		}
		dir = tmp
	}
	opts := harness.Options{
		Quics: filepath.Join(dir, "quics"), Qic: filepath.Join(dir, "qic"),
		Scale: *scale, Runs: *runs, WorkDir: *work, Keep: *keep, Edits: *edits, Idle: *idle, Log: stderr,
		Scenarios: scenarios,
	}
	if *baseline != "" {
		if *wan {
			return fmt.Errorf("%w: --baseline compares runs without the relay, which --wan has no use for", errUsage)
		}
		opts.BaselineQuics, opts.BaselineQic = filepath.Join(*baseline, "quics"), filepath.Join(*baseline, "qic")
	}
	for _, b := range []string{opts.Quics, opts.Qic, opts.BaselineQuics, opts.BaselineQic} {
		if b == "" {
			continue
		}
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("binary: %w", err)
		}
	}
	if *wan {
		link, err := netns.New(ctx, netns.Options{Rate: *wanRate, Delay: *wanDelay})
		if err != nil {
			return fmt.Errorf("--wan: %w", err)
		}
		// Deferred, so it runs on every way out of run, Ctrl-C included
		// (ctx is canceled, the children die, the harness returns).
		defer func() {
			if err := link.Close(); err != nil {
				fmt.Fprintln(stderr, "quics-bench: removing the WAN namespaces:", err)
			}
		}()
		fmt.Fprintf(stderr, "WAN link: %s (%s) ↔ %s (%s)\n", link.Client.NS, link.Client.Addr, link.Server.NS, link.Server.Addr)
		opts.WAN = link
	}
	rep, err := harness.Run(ctx, opts)
	if rep != nil {
		rep.Command = command(args)
		var werr error
		if *asJSON {
			werr = rep.WriteJSON(stdout)
		} else {
			werr = rep.WriteTable(stdout)
		}
		if err == nil {
			err = werr
		}
	}
	return err
}

// envFloat reads a number from the environment, def when unset or bad.
func envFloat(name string, def float64) float64 {
	v, err := strconv.ParseFloat(os.Getenv(name), 64)
	if err != nil {
		return def
	}
	return v
}

// command is how the benchmark was invoked, environment knobs first.
func command(args []string) string {
	var parts []string
	for _, name := range []string{"SCALE", "RUNS"} {
		if v, ok := os.LookupEnv(name); ok {
			parts = append(parts, name+"="+v)
		}
	}
	return strings.Join(append(append(parts, "quics-bench"), args...), " ")
}

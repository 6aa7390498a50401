package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/internal/atomicfile"
)

type syncOptions struct {
	json bool
}

func newSyncCmd(g *globalOptions) *cobra.Command {
	var o syncOptions
	cmd := &cobra.Command{
		Use:   "sync",
		Short: "Sync every root once: scan, pull remote changes, push local ones",
		Long: `Sync every root once: scan the local directories, pull what changed on the
server, push local changes. Exit status 0 when everything converged, 3 when
conflicts are pending (listed on stderr), 1 on error.

When stdout and stderr are terminals and --json is not given, a transfer of
more than 4 MiB shows a progress bar on stderr.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSync(cmd.Context(), g, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print the pass's counters as one JSON object")
	return cmd
}

func runSync(ctx context.Context, g *globalOptions, o syncOptions, out, errOut io.Writer) error {
	h, err := openHome(ctx, g)
	if err != nil {
		return err
	}
	defer h.Close()
	c, err := dial(ctx, h)
	if err != nil {
		return err
	}
	defer c.Close()
	opts := client.EngineOptions{Warn: warnTo(errOut)}
	gate := barGate{stdoutTerminal: isTerminal(out), stderrTerminal: isTerminal(errOut), json: o.json}
	var bars *syncBars
	if gate.allowed() {
		bars = newSyncBars(gate, errOut)
		opts.Progress, opts.Warn = bars, bars.warn
	}
	eng := client.NewEngine(h.State(), c, opts)
	res, syncErr := eng.SyncAll(ctx)
	if bars != nil {
		bars.Close() // the summary starts on a line of its own
	}
	if err := saveLastPass(h.Dir(), syncErr); err != nil {
		fmt.Fprintf(errOut, "qic: warning: %v\n", err)
	}
	if o.json {
		enc := json.NewEncoder(out)
		if err := enc.Encode(res); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "uploaded %d, downloaded %d, deleted %d files; sent %d chunks (%d already on the server), %d bytes sent, %d received\n",
			res.FilesUploaded, res.FilesDownloaded, res.FilesDeleted, res.ChunksSent, res.ChunksSkipped, res.BytesSent, res.BytesReceived)
	}
	if syncErr != nil {
		return syncErr
	}
	if res.Conflicts > 0 {
		for _, cf := range res.ConflictList {
			fmt.Fprintf(errOut, "conflict: root %q: %s\n", cf.Root, cf.Path)
		}
		fmt.Fprintf(errOut, "qic: %d conflicts pending\n", res.Conflicts)
		return &exitCodeError{code: exitConflicts}
	}
	return nil
}

// lastPassFile keeps the outcome of the last sync pass for qic status.
const lastPassFile = "last-pass.json"

// lastPass is what lastPassFile holds. Pending conflicts are not kept
// here: the local records say which changes the server kept as conflict
// candidates, for qic sync and qic run alike.
type lastPass struct {
	Time  time.Time `json:"time"`
	Error string    `json:"error,omitempty"`
}

func saveLastPass(home string, syncErr error) error {
	lp := lastPass{Time: time.Now().UTC()}
	if syncErr != nil {
		lp.Error = syncErr.Error()
	}
	b, err := json.MarshalIndent(lp, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(home, lastPassFile), append(b, '\n'), 0o600)
}

func loadLastPass(home string) (lastPass, bool) {
	b, err := os.ReadFile(filepath.Join(home, lastPassFile))
	if err != nil || len(b) > 16<<20 {
		return lastPass{}, false
	}
	var lp lastPass
	if json.Unmarshal(b, &lp) != nil {
		return lastPass{}, false
	}
	return lp, true
}

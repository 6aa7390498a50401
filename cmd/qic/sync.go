package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
conflicts are pending in these roots, whichever device's change caused them
(listed on stderr with the command that resolves each), 1 on error.

A local change whose content the server already keeps in the file's history
(a conflict over it was resolved while this device was away) is superseded:
the local copy becomes the head, and a line on stderr says so.

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
	// Every unresolved conflict of these roots, whoever's change caused
	// it: this client's may have been found by an earlier pass, and
	// another client's concerns this one's copy too.
	var open []conflictListing
	roots, err := h.State().Roots(ctx)
	if err != nil {
		return err
	}
	if syncErr == nil {
		open, err = listConflicts(ctx, c, roots, "", h.Config().ClientID.String())
		if err != nil {
			fmt.Fprintf(errOut, "qic: warning: could not list the server's conflicts: %v\n", err)
		}
	}
	pending := pendingConflicts(res, open, roots)
	if o.json {
		report := syncReport{PassResult: res, OpenConflicts: []openConflict{}}
		for _, l := range pending {
			report.OpenConflicts = append(report.OpenConflicts, openConflict{Root: l.Root, Path: l.Path, LocalPath: l.LocalPath})
		}
		if err := json.NewEncoder(out).Encode(report); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, "uploaded %d, downloaded %d, deleted %d files; sent %d chunks (%d already on the server), %d bytes sent, %d received\n",
			res.FilesUploaded, res.FilesDownloaded, res.FilesDeleted, res.ChunksSent, res.ChunksSkipped, res.BytesSent, res.BytesReceived)
	}
	for _, sp := range res.SupersededList {
		fmt.Fprintf(errOut, "qic: root %q: %s: the local version was superseded on the server (a conflict over it was resolved, or the file replaced); "+
			"it is kept in the history (qic history list), and the local copy is now version %d\n", sp.Root, sp.Path, sp.Seq)
	}
	if syncErr != nil {
		return syncErr
	}
	if len(pending) > 0 {
		for _, l := range pending {
			sides := make([]string, 0, len(l.Candidates))
			for _, cand := range l.Candidates {
				sides = append(sides, cand.Side+" by "+cand.who())
			}
			fmt.Fprintf(errOut, "conflict: root %q: %s", l.Root, l.Path)
			if len(sides) > 0 {
				fmt.Fprintf(errOut, " (%s)", strings.Join(sides, ", "))
			}
			fmt.Fprintf(errOut, "\n  resolve with: %s\n", resolveHint(l))
		}
		fmt.Fprintf(errOut, "qic: %d conflicts pending; see qic conflict list\n", len(pending))
		return &exitCodeError{code: exitConflicts}
	}
	return nil
}

// syncReport is what qic sync --json prints: the pass's counters and the
// conflicts left unresolved in its roots.
type syncReport struct {
	client.PassResult
	OpenConflicts []openConflict `json:"open_conflicts"`
}

type openConflict struct {
	Root      string `json:"root"`
	Path      string `json:"path"`
	LocalPath string `json:"local_path"`
}

// pendingConflicts merges the conflicts a pass ran into with those the
// server lists (which may be none, if it could not be asked).
func pendingConflicts(res client.PassResult, open []conflictListing, roots []client.Root) []conflictListing {
	list := slices.Clone(open)
	for _, cf := range res.ConflictList {
		if slices.ContainsFunc(list, func(l conflictListing) bool { return l.Root == cf.Root && l.Path == cf.Path }) {
			continue
		}
		l := conflictListing{Root: cf.Root, Path: cf.Path}
		if i := slices.IndexFunc(roots, func(r client.Root) bool { return r.Name == cf.Root }); i >= 0 {
			l.LocalPath = filepath.Join(roots[i].Dir, filepath.FromSlash(cf.Path))
		}
		list = append(list, l)
	}
	return list
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

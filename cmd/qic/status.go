package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/client"
)

type statusOptions struct {
	json    bool
	offline bool
}

// statusServerTimeout bounds how long qic status waits for the server's
// list of conflicts before it shows what the local state knows.
const statusServerTimeout = 5 * time.Second

func newStatusCmd(g *globalOptions) *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the roots, pending local changes, conflicts and the last sync",
		Long: `Show the roots, pending local changes, conflicts and the last sync. The
conflicts are this client's own (from its local state) and, unless --offline
is given or the server does not answer within 5 s, every unresolved conflict
the server lists for these roots.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	cmd.Flags().BoolVar(&o.offline, "offline", false, "do not ask the server for the roots' conflicts")
	return cmd
}

type rootStatus struct {
	Name      string    `json:"name"`
	Dir       string    `json:"dir"`
	Cursor    uint64    `json:"cursor"`
	LastSync  time.Time `json:"last_sync,omitzero"`
	Pending   []string  `json:"pending"`
	Conflicts []string  `json:"conflicts"`
}

type status struct {
	ClientID    string    `json:"client_id"`
	Server      string    `json:"server,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	LastPass    time.Time `json:"last_pass,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// ServerChecked is set when the conflicts include the server's list;
	// ServerError says why they do not.
	ServerChecked bool         `json:"server_checked"`
	ServerError   string       `json:"server_error,omitempty"`
	Roots         []rootStatus `json:"roots"`
}

func runStatus(ctx context.Context, g *globalOptions, o statusOptions, out io.Writer) error {
	h, err := openHome(ctx, g)
	if err != nil {
		return err
	}
	defer h.Close()
	cfg := h.Config()
	s := status{ClientID: cfg.ClientID.String(), Server: cfg.ServerAddr, Fingerprint: cfg.Fingerprint, Roots: []rootStatus{}}
	lp, _ := loadLastPass(h.Dir())
	s.LastPass, s.LastError = lp.Time, lp.Error
	roots, err := h.State().Roots(ctx)
	if err != nil {
		return err
	}
	for _, r := range roots {
		rs := rootStatus{Name: r.Name, Dir: r.Dir, Cursor: r.Cursor, LastSync: r.LastSync, Pending: []string{}, Conflicts: []string{}}
		err := h.State().PendingFiles(ctx, r.Name, func(rec client.FileRecord) error {
			rs.Pending = append(rs.Pending, rec.Path)
			// A conflict is pending while the local change the server
			// kept as a candidate is: qic sync and qic run both note it.
			if rec.HasCandidate && rec.Candidate == rec.Hash {
				rs.Conflicts = append(rs.Conflicts, rec.Path)
			}
			return nil
		})
		if err != nil {
			return err
		}
		s.Roots = append(s.Roots, rs)
	}
	if !o.offline && cfg.Registered() && len(roots) > 0 {
		open, err := serverConflicts(ctx, h, roots)
		if err != nil {
			s.ServerError = err.Error()
		} else {
			s.ServerChecked = true
			for i := range s.Roots {
				rs := &s.Roots[i]
				for _, l := range open {
					if l.Root == rs.Name && !slices.Contains(rs.Conflicts, l.Path) {
						rs.Conflicts = append(rs.Conflicts, l.Path)
					}
				}
				slices.Sort(rs.Conflicts)
			}
		}
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	fmt.Fprintf(out, "client %s", s.ClientID)
	if s.Server != "" {
		fmt.Fprintf(out, ", server %s", s.Server)
	} else {
		fmt.Fprint(out, ", not registered")
	}
	fmt.Fprintln(out)
	if !s.LastPass.IsZero() {
		fmt.Fprintf(out, "last sync pass %s", s.LastPass.Local().Format(time.RFC3339))
		if s.LastError != "" {
			fmt.Fprintf(out, " failed: %s", s.LastError)
		}
		fmt.Fprintln(out)
	}
	for _, rs := range s.Roots {
		last := "never"
		if !rs.LastSync.IsZero() {
			last = rs.LastSync.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(out, "root %q at %s: seq %d, last sync %s, %d pending, %d conflicts\n",
			rs.Name, rs.Dir, rs.Cursor, last, len(rs.Pending), len(rs.Conflicts))
		for _, p := range rs.Conflicts {
			fmt.Fprintf(out, "  conflict: %s\n", p)
		}
	}
	if s.ServerError != "" {
		fmt.Fprintf(out, "server not asked for conflicts (%s): only this client's own are shown\n", s.ServerError)
	}
	if n := countConflicts(s.Roots); n > 0 {
		fmt.Fprintf(out, "%d conflicts: qic conflict list shows their sides and how to resolve them\n", n)
	}
	return nil
}

func countConflicts(roots []rootStatus) int {
	n := 0
	for _, rs := range roots {
		n += len(rs.Conflicts)
	}
	return n
}

// serverConflicts asks the server, within statusServerTimeout, for the
// unresolved conflicts of roots.
func serverConflicts(ctx context.Context, h *client.Home, roots []client.Root) ([]conflictListing, error) {
	ctx, cancel := context.WithTimeout(ctx, statusServerTimeout)
	defer cancel()
	c, err := dial(ctx, h)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return listConflicts(ctx, c, roots, "", h.Config().ClientID.String())
}

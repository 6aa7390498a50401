package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/client"
)

type statusOptions struct {
	json bool
}

func newStatusCmd(g *globalOptions) *cobra.Command {
	var o statusOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the roots, pending local changes, conflicts and the last sync",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runStatus(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
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
	ClientID    string       `json:"client_id"`
	Server      string       `json:"server,omitempty"`
	Fingerprint string       `json:"fingerprint,omitempty"`
	LastPass    time.Time    `json:"last_pass,omitzero"`
	LastError   string       `json:"last_error,omitempty"`
	Roots       []rootStatus `json:"roots"`
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
	return nil
}

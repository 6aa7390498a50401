package main

import (
	"context"
	"fmt"
	"io"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/quic-s/quics/admin"
)

// Share links (issue #9): the operator lists every link and stops any.

func newShowSharesCmd() *cobra.Command {
	return newShowListCmd("shares", "Share links, their downloads and state (not their URLs: only a hash is kept)", 0,
		func(ctx context.Context, c *admin.Conn, _ []string) (any, error) {
			return admin.Call(ctx, c, admin.OpListShares, admin.NoRequest{})
		}, printShares)
}

func printShares(w io.Writer, shares []admin.ShareInfo) error {
	return table(w, "ID\tROOT\tPATH\tBY\tDOWNLOADS\tEXPIRES\tVERSION\tSTATE", func(tw io.Writer) {
		for _, s := range shares {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, orDash(s.Root), s.Path, orDash(nameOr(s.ClientName, s.Client)),
				downloadsOf(s.Downloads, s.MaxDownloads), expiresOf(s), versionOf(s), s.State)
		}
	})
}

// downloadsOf spells "used of allowed".
func downloadsOf(n, limit uint64) string {
	if limit == 0 {
		return fmt.Sprintf("%d of unlimited", n)
	}
	return fmt.Sprintf("%d of %d", n, limit)
}

func expiresOf(s admin.ShareInfo) string {
	if s.Expires == nil {
		return "never"
	}
	return when(*s.Expires)
}

func versionOf(s admin.ShareInfo) string {
	if s.Version == "" {
		return "head"
	}
	return fmt.Sprintf("%s (%s)", shortHash(s.Version), humanize.IBytes(s.Size))
}

func newShareCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "share",
		Short: "Manage share links",
		Long: `Members create share links with qic share; quics show shares lists them all.
A link's URL is shown once, to its creator: the server keeps only a hash of
its token, so links are named here by their id.`,
	}
	var o adminOptions
	stop := &cobra.Command{
		Use:   "stop <id>",
		Short: "Stop a share link, whoever created it: its URL answers 404 from now on",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				s, err := admin.Call(ctx, c, admin.OpStopShare, admin.ShareRequest{ID: args[0]})
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), s)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "stopped share link %s to %s in %s (%s downloads)\n",
					s.ID, s.Path, orDash(s.Root), downloadsOf(s.Downloads, s.MaxDownloads))
				return err
			})
		},
	}
	o.register(stop, true, defaultAdminTimeout)
	cmd.AddCommand(stop)
	return cmd
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/internal/duration"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// shareListing is a share link as qic share list --json prints it: the
// keys of quics show shares --json, and url in qic share --json.
type shareListing struct {
	ID           string     `json:"id"`
	URL          string     `json:"url,omitempty"`
	Root         string     `json:"root"`
	Path         string     `json:"path"`
	Client       string     `json:"client"`
	ClientName   string     `json:"client_name,omitempty"`
	Created      time.Time  `json:"created"`
	Expires      *time.Time `json:"expires,omitempty"`
	MaxDownloads uint64     `json:"max_downloads"`
	Downloads    uint64     `json:"downloads"`
	LastDownload *time.Time `json:"last_download,omitempty"`
	Version      string     `json:"version,omitempty"`
	Seq          uint64     `json:"seq,omitempty"`
	Size         uint64     `json:"size,omitempty"`
	State        string     `json:"state"`
}

func shareOf(s *syncpb.ShareInfo) shareListing {
	l := shareListing{
		ID: s.GetId(), Root: s.GetRoot(), Path: s.GetPath(), Client: s.GetClientId(), ClientName: s.GetClientName(),
		Created: nsTime(s.GetCreated()), Expires: optionalNs(s.GetExpires()), MaxDownloads: uint64(s.GetMaxDownloads()),
		Downloads: uint64(s.GetDownloads()), LastDownload: optionalNs(s.GetLastDownload()), State: s.GetState(),
	}
	if len(s.GetPinnedHash()) > 0 {
		l.Version, l.Seq, l.Size = hashHex(s.GetPinnedHash()), s.GetPinnedSeq(), uint64(max(0, s.GetPinnedSize()))
	}
	return l
}

func optionalNs(ns int64) *time.Time {
	if ns == 0 {
		return nil
	}
	t := nsTime(ns)
	return &t
}

type shareOptions struct {
	path    string
	count   uint32
	expires string
	version string
	json    bool
}

func newShareCmd(g *globalOptions) *cobra.Command {
	var o shareOptions
	cmd := &cobra.Command{
		Use:   "share <localpath> [--count N] [--expires DUR] [--version HASH]",
		Short: "Print a link that downloads a file without qic, a limited number of times",
		Long: `Create a share link to a synced file and print its URL. Anyone with the URL
downloads the file over HTTPS, --count times (0: no limit), until --expires
(a duration such as 36h or 7d; default never). The link serves the file as
it is on the server at download time, or with --version the version whose
hash starts with HASH (see qic history list), which then stays downloadable
even if the root's retention drops it.

The URL is shown only now: the server keeps only a hash of it. Every GET
answered counts, a resumed or partial download too. The server must run
with --share-listen; its certificate is the server's own, so a browser
warns unless a proxy with a trusted certificate stands in front
(--share-base-url).

qic share list shows your links; qic share stop <id|url> ends one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.path = args[0]
			return runShare(cmd.Context(), g, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.Uint32VarP(&o.count, "count", "n", 1, "how many downloads the link serves (0: no limit)")
	f.StringVar(&o.expires, "expires", "", "stop working after this long, such as 36h or 7d (default never)")
	f.StringVar(&o.version, "version", "", "serve this version (a hash prefix of at least 8 hex digits) instead of the current one")
	f.BoolVar(&o.json, "json", false, "print JSON")
	cmd.AddCommand(newShareListCmd(g), newShareStopCmd(g))
	return cmd
}

func runShare(ctx context.Context, g *globalOptions, o shareOptions, out, errOut io.Writer) error {
	req := &syncpb.CreateShareRequest{MaxDownloads: o.count}
	if o.expires != "" {
		d, err := duration.Parse(o.expires)
		if err != nil || d <= 0 {
			return fmt.Errorf("--expires %q: want a positive duration such as 36h or 7d", o.expires)
		}
		req.ExpiresIn = int64(d)
	}
	if o.version != "" {
		prefix, err := parseHashPrefix(o.version)
		if err != nil {
			return err
		}
		req.HashPrefix = prefix.String()
	}
	s, err := openSession(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	r, rel, err := s.home.State().Locate(ctx, o.path)
	if err != nil {
		return err
	}
	req.Root, req.Path = r.Name, rel
	resp, err := s.conn.CreateShare(ctx, req)
	switch {
	case errors.Is(err, syncproto.ErrNotFound) && o.version == "":
		return fmt.Errorf("%w (has it been synced? run qic sync)", err)
	case err != nil:
		return err
	}
	link, err := client.ShareLink(s.home.Config().ServerAddr, resp)
	if err != nil {
		return err
	}
	l := shareOf(resp.GetShare())
	if o.json {
		l.URL = link
		return printJSON(out, l)
	}
	if _, err := fmt.Fprintln(out, link); err != nil {
		return err
	}
	// On stderr, so that stdout is the URL alone for scripts.
	fmt.Fprintf(errOut, "share link %s to %s in root %q: %s, expires %s, serves %s; stop it with: qic share stop %s\n",
		l.ID, l.Path, l.Root, downloadsOf(l.Downloads, l.MaxDownloads), expiresOf(l), servesOf(l), l.ID)
	return nil
}

func newShareListCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the share links this device created, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runShareList(cmd.Context(), g, asJSON, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func runShareList(ctx context.Context, g *globalOptions, asJSON bool, out io.Writer) error {
	s, err := openSession(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	shares, err := s.conn.ListShares(ctx)
	if err != nil {
		return err
	}
	list := make([]shareListing, 0, len(shares))
	for _, sh := range shares {
		list = append(list, shareOf(sh))
	}
	if asJSON {
		return printJSON(out, list)
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(out, "no share links (create one with qic share <file>)")
		return err
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tROOT\tPATH\tDOWNLOADS\tEXPIRES\tSERVES\tSTATE")
	for _, l := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", l.ID, orDash(l.Root), l.Path, downloadsOf(l.Downloads, l.MaxDownloads),
			expiresOf(l), servesOf(l), l.State)
	}
	return tw.Flush()
}

func newShareStopCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "stop <id|url>",
		Short: "Stop a share link this device created: its URL answers 404 from now on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runShareStop(cmd.Context(), g, args[0], cmd.OutOrStdout())
		},
	}
}

func runShareStop(ctx context.Context, g *globalOptions, ref string, out io.Writer) error {
	id, token, err := client.ParseShareRef(ref)
	if err != nil {
		return err
	}
	s, err := openSession(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	sh, err := s.conn.StopShare(ctx, id, token)
	if err != nil {
		return err
	}
	l := shareOf(sh)
	_, err = fmt.Fprintf(out, "stopped share link %s to %s in root %q (%s)\n", l.ID, l.Path, l.Root, downloadsOf(l.Downloads, l.MaxDownloads))
	return err
}

func printJSON(out io.Writer, v any) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func downloadsOf(n, limit uint64) string {
	if limit == 0 {
		return fmt.Sprintf("%d downloads of unlimited", n)
	}
	return fmt.Sprintf("%d of %d downloads", n, limit)
}

func expiresOf(l shareListing) string {
	if l.Expires == nil {
		return "never"
	}
	return l.Expires.Local().Format(time.RFC3339)
}

func servesOf(l shareListing) string {
	if l.Version == "" {
		return "the current version"
	}
	return fmt.Sprintf("version %d (%s)", l.Seq, l.Version[:min(16, len(l.Version))])
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func newRootGroupCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "root",
		Short: "Add, join, list and leave synced roots; set their retention",
	}
	cmd.AddCommand(newRootAddCmd(g), newRootJoinCmd(g), newRootListCmd(g), newRootLeaveCmd(g), newRootSetRetentionCmd(g))
	return cmd
}

type rootAddOptions struct {
	dir      string
	name     string
	password string
}

func newRootAddCmd(g *globalOptions) *cobra.Command {
	var o rootAddOptions
	cmd := &cobra.Command{
		Use:   "add <dir>",
		Short: "Create a root on the server from a local directory",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.dir = args[0]
			return runRootAdd(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.password, "root-password", "", "password other devices need to join the root")
	cmd.Flags().StringVar(&o.name, "name", "", "root name (default: the directory's base name)")
	_ = cmd.MarkFlagRequired("root-password")
	return cmd
}

// rootDir makes dir absolute and makes sure it is a directory, creating
// it when create is set.
func rootDir(dir string, create bool) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if create {
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return "", err
		}
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", abs)
	}
	return abs, nil
}

func chunking(info *syncpb.RootInfo) chunker.Params {
	c := info.GetChunking()
	return chunker.Params{Min: int(c.GetMin()), Avg: int(c.GetAvg()), Max: int(c.GetMax())}
}

func runRootAdd(ctx context.Context, g *globalOptions, o rootAddOptions, out io.Writer) error {
	dir, err := rootDir(o.dir, false)
	if err != nil {
		return err
	}
	name := o.name
	if name == "" {
		name = filepath.Base(dir)
	}
	err = attachRoot(ctx, g, name, dir, func(c *syncproto.Client) (*syncpb.RootInfo, error) {
		return c.RegisterRoot(ctx, name, o.password)
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "root %q created from %s; run qic sync or qic run to upload it\n", name, dir)
	return err
}

type rootJoinOptions struct {
	name     string
	dir      string
	password string
}

func newRootJoinCmd(g *globalOptions) *cobra.Command {
	var o rootJoinOptions
	cmd := &cobra.Command{
		Use:   "join <name> <dir>",
		Short: "Join a root of the server and sync it into a local directory",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.name, o.dir = args[0], args[1]
			return runRootJoin(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.password, "root-password", "", "the root's password")
	_ = cmd.MarkFlagRequired("root-password")
	return cmd
}

func runRootJoin(ctx context.Context, g *globalOptions, o rootJoinOptions, out io.Writer) error {
	dir, err := rootDir(o.dir, true)
	if err != nil {
		return err
	}
	err = attachRoot(ctx, g, o.name, dir, func(c *syncproto.Client) (*syncpb.RootInfo, error) {
		return c.JoinRoot(ctx, o.name, o.password)
	})
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "joined root %q into %s; run qic sync or qic run to download it\n", o.name, dir)
	return err
}

// attachRoot asks the server for a root (created or joined, by ask) and
// records it here as synced into dir.
func attachRoot(ctx context.Context, g *globalOptions, name, dir string, ask func(*syncproto.Client) (*syncpb.RootInfo, error)) error {
	h, err := openHome(ctx, g)
	if err != nil {
		return err
	}
	defer h.Close()
	if _, err := h.State().Root(ctx, name); err == nil {
		return fmt.Errorf("root %q is already synced here", name)
	}
	c, err := dial(ctx, h)
	if err != nil {
		return err
	}
	defer c.Close()
	info, err := ask(c)
	if err != nil {
		return err
	}
	return h.State().PutRoot(ctx, client.Root{Name: name, Dir: dir, Chunking: chunking(info)})
}

type rootListOptions struct {
	remote bool
	json   bool
}

func newRootListCmd(g *globalOptions) *cobra.Command {
	var o rootListOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the roots synced here, or with --remote every root on the server",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRootList(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.remote, "remote", false, "list the server's roots")
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// rootListing is one line of qic root list.
type rootListing struct {
	Name     string    `json:"name"`
	Dir      string    `json:"dir,omitempty"`
	Seq      uint64    `json:"seq"`
	LastSync time.Time `json:"last_sync,omitzero"`
	Owner    string    `json:"owner,omitempty"`
	Members  []string  `json:"members,omitempty"`
}

func runRootList(ctx context.Context, g *globalOptions, o rootListOptions, out io.Writer) error {
	h, err := openHome(ctx, g)
	if err != nil {
		return err
	}
	defer h.Close()
	var list []rootListing
	if o.remote {
		c, err := dial(ctx, h)
		if err != nil {
			return err
		}
		defer c.Close()
		infos, err := c.ListRoots(ctx, true)
		if err != nil {
			return err
		}
		for _, info := range infos {
			l := rootListing{Name: info.GetName(), Seq: info.GetSeq(), Owner: info.GetOwner(), Members: info.GetMembers()}
			if r, err := h.State().Root(ctx, info.GetName()); err == nil {
				l.Dir = r.Dir
			}
			list = append(list, l)
		}
	} else {
		roots, err := h.State().Roots(ctx)
		if err != nil {
			return err
		}
		for _, r := range roots {
			list = append(list, rootListing{Name: r.Name, Dir: r.Dir, Seq: r.Cursor, LastSync: r.LastSync})
		}
	}
	if o.json {
		if list == nil {
			list = []rootListing{}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tDIR\tSEQ\tLAST SYNC")
	for _, l := range list {
		last := "never"
		if !l.LastSync.IsZero() {
			last = l.LastSync.Format(time.RFC3339)
		}
		if o.remote {
			last = "-"
		}
		dir := l.Dir
		if dir == "" {
			dir = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", l.Name, dir, l.Seq, last)
	}
	return tw.Flush()
}

func newRootLeaveCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "leave <name>",
		Short: "Stop syncing a root (the local files stay)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRootLeave(cmd.Context(), g, args[0], cmd.OutOrStdout())
		},
	}
}

func runRootLeave(ctx context.Context, g *globalOptions, name string, out io.Writer) error {
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
	if err := c.LeaveRoot(ctx, name); err != nil {
		return err
	}
	if err := h.State().DeleteRoot(ctx, name); err != nil && !errors.Is(err, client.ErrRootNotFound) {
		return err
	}
	_, err = fmt.Fprintf(out, "left root %q; the local files were kept\n", name)
	return err
}

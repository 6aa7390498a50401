package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/quic-s/quics/admin"
	"github.com/quic-s/quics/server"
)

// defaultAdminTimeout bounds an admin command; removing a large root is the
// slowest.
const defaultAdminTimeout = 5 * time.Minute

// adminOptions are the flags every admin command has.
type adminOptions struct {
	DataDir string
	JSON    bool
	Timeout time.Duration
}

func (o *adminOptions) register(cmd *cobra.Command, withJSON bool, timeout time.Duration) {
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data", defaultDataDir(), "data directory of the server (env "+envData+")")
	f.DurationVar(&o.Timeout, "timeout", timeout, "give up after this long")
	if withJSON {
		f.BoolVar(&o.JSON, "json", false, "print JSON instead of a table")
	}
}

// withAdmin runs fn against the server of o.DataDir: the running one
// through its admin API, else the data directory opened here.
func withAdmin(ctx context.Context, o adminOptions, fn func(ctx context.Context, c *admin.Conn) error) (err error) {
	if o.DataDir == "" {
		return errors.New("no data directory: pass --data or set " + envData)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	c, err := admin.Connect(ctx, admin.ConnectOptions{DataDir: o.DataDir})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	return fn(ctx, c)
}

func newShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show clients, roots, files, history, conflicts and share links",
		Long: `Show what the server knows. Each listing prints a table, or JSON with --json.

Admin commands reach the server running on --data through its admin API,
and open the data directory themselves when no server runs.`,
	}
	cmd.AddCommand(
		newShowListCmd("clients", "Registered clients, their roots and whether they are connected", 0,
			func(ctx context.Context, c *admin.Conn, _ []string) (any, error) {
				return admin.Call(ctx, c, admin.OpListClients, admin.NoRequest{})
			}, printClients),
		newShowListCmd("roots", "Sync roots with their members and usage", 0,
			func(ctx context.Context, c *admin.Conn, _ []string) (any, error) {
				return admin.Call(ctx, c, admin.OpListRoots, admin.NoRequest{})
			}, printRoots),
		newShowListCmd("files <root>", "The files of a root: the head version of each", 1,
			func(ctx context.Context, c *admin.Conn, args []string) (any, error) {
				return admin.Call(ctx, c, admin.OpListFiles, admin.RootRequest{Root: args[0]})
			}, printFiles),
		newShowListCmd("history <root> <file>", "Every version of a file, oldest first", 2,
			func(ctx context.Context, c *admin.Conn, args []string) (any, error) {
				return admin.Call(ctx, c, admin.OpHistory, admin.FileRequest{Root: args[0], Path: args[1]})
			}, printHistory),
		newShowConflictsCmd(),
		newShowSharesCmd(),
	)
	return cmd
}

// newShowListCmd builds one `show` subcommand: fetch a listing, print it as
// JSON or as a table.
func newShowListCmd[T any](use, short string, nargs int,
	fetch func(context.Context, *admin.Conn, []string) (any, error), table func(io.Writer, T) error,
) *cobra.Command {
	var o adminOptions
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  usageArgs(argsCheck(nargs)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				v, err := fetch(ctx, c, args)
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), v)
				}
				return table(cmd.OutOrStdout(), v.(T))
			})
		},
	}
	o.register(cmd, true, defaultAdminTimeout)
	return cmd
}

// argsCheck is ExactArgs(n), or at most one argument for n < 0.
func argsCheck(n int) cobra.PositionalArgs {
	if n < 0 {
		return cobra.MaximumNArgs(1)
	}
	return cobra.ExactArgs(n)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes aligned columns; the header row first.
func table(w io.Writer, header string, rows func(tw io.Writer)) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(tw)
	return tw.Flush()
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16]
	}
	return orDash(h)
}

func printClients(w io.Writer, clients []admin.ClientInfo) error {
	return table(w, "ID\tNAME\tCONNECTED\tLAST SEEN\tADDRESS\tROOTS", func(tw io.Writer) {
		for _, c := range clients {
			seen := "-"
			if c.LastSeen != nil {
				seen = when(*c.LastSeen)
			}
			connected := "no"
			if c.Connected {
				connected = fmt.Sprintf("yes (%d)", c.Sessions)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, orDash(c.Name), connected, seen,
				orDash(c.LastAddress), orDash(strings.Join(c.Roots, ",")))
		}
	})
}

func printRoots(w io.Writer, roots []admin.RootInfo) error {
	return table(w, "NAME\tFILES\tSIZE\tVERSIONS\tHISTORY\tCONFLICTS\tRETENTION\tMEMBERS", func(tw io.Writer) {
		for _, r := range roots {
			members := make([]string, 0, len(r.Members))
			for _, m := range r.Members {
				members = append(members, memberName(m))
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%d\t%s\t%s\n", r.Name, r.Files, humanize.IBytes(r.Bytes),
				r.Versions, humanize.IBytes(r.HistoryBytes), r.Conflicts, r.Retention, orDash(strings.Join(members, ",")))
		}
	})
}

func memberName(m admin.MemberInfo) string {
	if m.Name != "" {
		return m.Name
	}
	return m.ID
}

func printFiles(w io.Writer, files []admin.FileInfo) error {
	return table(w, "PATH\tSEQ\tSIZE\tHASH\tMODIFIED\tBY\tSTATE", func(tw io.Writer) {
		for _, f := range files {
			state := "-"
			if f.Deleted {
				state = "deleted"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", f.Path, f.Seq, humanize.IBytes(f.Size),
				shortHash(f.Hash), when(f.MTime), orDash(nameOr(f.ClientName, f.Client)), state)
		}
	})
}

func printHistory(w io.Writer, versions []admin.VersionInfo) error {
	return table(w, "SEQ\tTIME\tCLIENT\tSIZE\tHASH\tSTATE", func(tw io.Writer) {
		for _, v := range versions {
			state := "-"
			if v.Deleted {
				state = "deleted"
			}
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", v.Seq, when(v.Time), orDash(nameOr(v.ClientName, v.Client)),
				humanize.IBytes(v.Size), shortHash(v.Hash), state)
		}
	})
}

func nameOr(name, id string) string {
	if name != "" {
		return name
	}
	return id
}

func newPasswordCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "password", Short: "Manage the server password"}
	var o adminOptions
	var password string
	set := &cobra.Command{
		Use:   "set",
		Short: "Set the server password that registering a device requires",
		Long: `Set the server password. It applies to the next registration at once;
devices already registered keep working with their tokens.

The password is read from --password, else from standard input (asked
twice without echo on a terminal, else the first line).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			pw := password
			if !cmd.Flags().Changed("password") {
				var err error
				if pw, err = readPassword(cmd.InOrStdin(), cmd.ErrOrStderr()); err != nil {
					return err
				}
			}
			if pw == "" {
				return errors.New("empty password: nothing changed")
			}
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				done, err := admin.Call(ctx, c, admin.OpSetPassword, admin.PasswordRequest{Password: pw})
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), done)
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), "server password changed: new registrations need it; registered devices keep working")
				return err
			})
		},
	}
	o.register(set, true, defaultAdminTimeout)
	set.Flags().StringVar(&password, "password", "", "the new password (visible to other users of this machine: prefer stdin)")
	cmd.AddCommand(set)
	return cmd
}

// readPassword reads a new password from in: twice without echo when in is
// a terminal, else its first line.
func readPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(prompt, "New server password: ")
		first, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(prompt, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(first) != string(again) {
			return "", errors.New("the passwords differ: nothing changed")
		}
		return string(first), nil
	}
	line, err := bufio.NewReader(io.LimitReader(in, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func newStopCmd() *cobra.Command {
	var o adminOptions
	cmd := &cobra.Command{
		Use:   "stop",
		Short: "Stop the running server gracefully",
		Long: `Ask the server running on --data to stop, and wait until it has: open
transfers end, commits in flight complete, the database is closed. Exits 0
also when no server was running.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return stopServer(cmd.Context(), o, cmd.OutOrStdout())
		},
	}
	o.register(cmd, false, time.Minute)
	return cmd
}

func stopServer(ctx context.Context, o adminOptions, out io.Writer) error {
	inUse, err := server.DataDirInUse(o.DataDir)
	if err != nil {
		return err
	}
	if !inUse {
		_, err := fmt.Fprintf(out, "no quics server is running on %s\n", o.DataDir)
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	c, err := admin.Connect(ctx, admin.ConnectOptions{DataDir: o.DataDir})
	if err != nil {
		return err
	}
	if c.Online() {
		_, err = admin.Call(ctx, c, admin.OpStop, admin.NoRequest{})
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// The server has agreed to stop; it is done when it lets go of the
	// data directory.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		inUse, err := server.DataDirInUse(o.DataDir)
		if err != nil {
			return err
		}
		if !inUse {
			_, err := fmt.Fprintln(out, "quics stopped")
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the server on %s did not stop within %s", o.DataDir, o.Timeout)
		case <-tick.C:
		}
	}
}

func newClientCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "client", Short: "Manage registered clients"}
	var o adminOptions
	var yes bool
	remove := &cobra.Command{
		Use:   "remove <id|name>",
		Short: "Remove a client: its token stops working at once and it leaves every root",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				if !yes {
					clients, err := admin.Call(ctx, c, admin.OpListClients, admin.NoRequest{})
					if err != nil {
						return err
					}
					q := fmt.Sprintf("Remove client %q? It loses access at once.", args[0])
					for _, ci := range clients {
						if ci.ID == args[0] || ci.Name == args[0] {
							q = fmt.Sprintf("Remove client %s (%s), member of %s? It loses access at once.",
								orDash(ci.Name), ci.ID, orDash(strings.Join(ci.Roots, ", ")))
							break
						}
					}
					if err := confirm(cmd.InOrStdin(), cmd.ErrOrStderr(), q); err != nil {
						return err
					}
				}
				removed, err := admin.Call(ctx, c, admin.OpRemoveClient, admin.ClientRequest{Client: args[0]})
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), removed)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed client %s (%s)\n", orDash(removed.Name), removed.ID)
				return err
			})
		},
	}
	o.register(remove, true, defaultAdminTimeout)
	remove.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.AddCommand(remove)
	return cmd
}

func newRootAdminCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "root", Short: "Manage sync roots"}
	var o adminOptions
	var yes bool
	remove := &cobra.Command{
		Use:   "remove <name>",
		Short: "Remove a root with its files and history; the next gc frees its data",
		Args:  usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				if !yes {
					roots, err := admin.Call(ctx, c, admin.OpListRoots, admin.NoRequest{})
					if err != nil {
						return err
					}
					q := fmt.Sprintf("Remove root %q?", args[0])
					for _, r := range roots {
						if r.Name == args[0] {
							q = fmt.Sprintf("Remove root %q with %d files (%s) and %d versions? Its %d members stop syncing it.",
								r.Name, r.Files, humanize.IBytes(r.Bytes), r.Versions, len(r.Members))
							break
						}
					}
					if err := confirm(cmd.InOrStdin(), cmd.ErrOrStderr(), q); err != nil {
						return err
					}
				}
				removed, err := admin.Call(ctx, c, admin.OpRemoveRoot, admin.RootRequest{Root: args[0]})
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), removed)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "removed root %s: %d files, %d versions; `quics gc` frees their data after its safety margin\n",
					removed.Name, removed.Files, removed.Versions)
				return err
			})
		},
	}
	o.register(remove, true, defaultAdminTimeout)
	remove.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	cmd.AddCommand(remove, newSetRetentionCmd())
	return cmd
}

// errAborted is the answer to a confirmation that was not "yes".
var errAborted = errors.New("aborted: nothing changed (pass --yes to skip the question)")

// confirm asks q on prompt and reads the answer from in: only y or yes
// proceeds.
func confirm(in io.Reader, prompt io.Writer, q string) error {
	fmt.Fprintf(prompt, "%s [y/N] ", q)
	line, err := bufio.NewReader(io.LimitReader(in, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read answer: %w", err)
	}
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return nil
	}
	return errAborted
}

func newHealthCmd() *cobra.Command {
	var o adminOptions
	cmd := &cobra.Command{
		Use:   "health",
		Short: "Exit 0 when the server running on --data answers its health check",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), o.Timeout)
			defer cancel()
			inUse, err := server.DataDirInUse(o.DataDir)
			if err != nil {
				return err
			}
			if !inUse {
				return fmt.Errorf("no quics server is running on %s", o.DataDir)
			}
			c, err := admin.Connect(ctx, admin.ConnectOptions{DataDir: o.DataDir})
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Health(ctx); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "ok")
			return err
		},
	}
	o.register(cmd, false, 10*time.Second)
	return cmd
}

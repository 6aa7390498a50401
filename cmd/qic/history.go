package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func newHistoryCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "history",
		Short: "List, download and roll back the versions of a file",
		Long: `Every version of a file the server accepted stays in its history until the
root's retention policy drops it (qic root set-retention). A version is
named by its content hash; any unique hex prefix of at least 8 digits will do.`,
	}
	cmd.AddCommand(newHistoryListCmd(g), newHistoryDownloadCmd(g), newHistoryRollbackCmd(g))
	return cmd
}

// versionListing is one version as qic history list --json prints it:
// the keys of quics show history --json.
type versionListing struct {
	Seq        uint64    `json:"seq"`
	Hash       string    `json:"hash"` // "" for a deletion
	Size       int64     `json:"size"`
	Mode       uint32    `json:"mode"`
	MTime      time.Time `json:"mtime"`
	Client     string    `json:"client"`
	ClientName string    `json:"client_name,omitempty"`
	Time       time.Time `json:"time"` // when the server accepted it
	Deleted    bool      `json:"deleted"`
}

func versionOf(v *syncpb.HistoryEntry) versionListing {
	return versionListing{
		Seq: v.GetSeq(), Hash: hashHex(v.GetHash()), Size: v.GetSize(), Mode: v.GetMode(),
		MTime: nsTime(v.GetMtime()), Client: v.GetClientId(), ClientName: v.GetClientName(),
		Time: nsTime(v.GetTime()), Deleted: v.GetDeleted(),
	}
}

// parseHashPrefix checks a hash or hash prefix typed by a person: 8 to 64
// hex digits. It returns the digits in lower case.
func parseHashPrefix(s string) (cas.Prefix, error) {
	p, err := cas.ParsePrefix(strings.TrimSpace(s))
	if err != nil {
		return cas.Prefix{}, fmt.Errorf("hash %q: give at least %d hex digits of a version's hash (see qic history list): %w", s, cas.MinPrefixLen, err)
	}
	return p, nil
}

// pickVersion returns the newest version of versions whose content hash
// starts with prefix. A prefix matching no content, or two different
// contents, is an error naming them.
func pickVersion(versions []*syncpb.HistoryEntry, prefix cas.Prefix, path string) (*syncpb.HistoryEntry, error) {
	var found *syncpb.HistoryEntry
	contents := map[cas.ID]bool{}
	for _, v := range versions {
		if v.GetDeleted() {
			continue
		}
		id, err := cas.IDFromBytes(v.GetHash())
		if err != nil || !prefix.Matches(id) {
			continue
		}
		contents[id] = true
		if found == nil || v.GetSeq() > found.GetSeq() {
			found = v
		}
	}
	switch len(contents) {
	case 0:
		return nil, fmt.Errorf("no version of %s has a hash starting with %s (see qic history list)", path, prefix)
	case 1:
		return found, nil
	}
	names := make([]string, 0, len(contents))
	for id := range contents {
		names = append(names, id.String())
	}
	return nil, fmt.Errorf("hash prefix %s is ambiguous for %s: it matches %s; give more digits", prefix, path, strings.Join(names, ", "))
}

type historyListOptions struct {
	path  string
	limit uint32
	json  bool
}

func newHistoryListCmd(g *globalOptions) *cobra.Command {
	var o historyListOptions
	cmd := &cobra.Command{
		Use:   "list <localpath>",
		Short: "List the versions of a file, oldest first",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.path = args[0]
			return runHistoryList(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().Uint32VarP(&o.limit, "limit", "n", 0, "show only the newest N versions (0: all)")
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

func runHistoryList(ctx context.Context, g *globalOptions, o historyListOptions, out io.Writer) error {
	s, err := openSession(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	r, rel, err := s.home.State().Locate(ctx, o.path)
	if err != nil {
		return err
	}
	versions, err := s.conn.History(ctx, r.Name, rel, o.limit)
	if err != nil {
		return err
	}
	list := make([]versionListing, 0, len(versions))
	for _, v := range versions {
		list = append(list, versionOf(v))
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if len(list) == 0 {
		_, err := fmt.Fprintf(out, "%s has no versions on the server\n", rel)
		return err
	}
	var base uint64
	if rec, err := s.home.State().File(ctx, r.Name, rel); err == nil && !rec.Pending {
		base = rec.BaseSeq
	}
	fmt.Fprintf(out, "history of %s in root %q, oldest first:\n", rel, r.Name)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tACCEPTED\tBY\tSIZE\tHASH\t")
	for i, v := range list {
		hash, size := v.Hash, fmt.Sprint(v.Size)
		if len(hash) > 16 {
			hash = hash[:16]
		}
		if v.Deleted {
			hash, size = "(deleted)", "-"
		}
		by := v.ClientName
		if by == "" {
			by = v.Client
		}
		var notes []string
		if i == len(list)-1 {
			notes = append(notes, "head")
		}
		if v.Seq == base {
			notes = append(notes, "local copy")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", v.Seq, v.Time.Local().Format(time.RFC3339), by, size, hash, strings.Join(notes, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	local := shellQuote(filepath.Join(r.Dir, filepath.FromSlash(rel)))
	_, err = fmt.Fprintf(out, "download: qic history download %s <hash> -o OUT\nroll back: qic history rollback %s <hash>\n", local, local)
	return err
}

type historyDownloadOptions struct {
	path   string
	hash   string
	output string
	force  bool
}

func newHistoryDownloadCmd(g *globalOptions) *cobra.Command {
	var o historyDownloadOptions
	cmd := &cobra.Command{
		Use:   "download <localpath> <hash> -o OUT",
		Short: "Write one version of a file to OUT",
		Long: `Write the version of a file whose hash starts with <hash> (at least 8 hex
digits) to OUT, or into OUT under the file's name when OUT is a directory.
An existing file is not overwritten unless --force is given.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.path, o.hash = args[0], args[1]
			return runHistoryDownload(cmd.Context(), g, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&o.output, "output", "o", "", "file (or directory) to write")
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite an existing file")
	_ = cmd.MarkFlagRequired("output")
	return cmd
}

func runHistoryDownload(ctx context.Context, g *globalOptions, o historyDownloadOptions, out, errOut io.Writer) error {
	prefix, err := parseHashPrefix(o.hash)
	if err != nil {
		return err
	}
	if o.output == "" {
		return errors.New("-o OUT is empty")
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
	versions, err := s.conn.History(ctx, r.Name, rel, 0)
	if err != nil {
		return err
	}
	v, err := pickVersion(versions, prefix, rel)
	if err != nil {
		return err
	}
	dest := o.output
	if fi, err := os.Stat(dest); err == nil && fi.IsDir() {
		dest = filepath.Join(dest, filepath.Base(filepath.FromSlash(rel)))
	}
	id, _ := cas.IDFromBytes(v.GetHash()) // checked by pickVersion
	n, err := s.engine(errOut).SaveVersion(ctx, r.Name, rel, id, dest, client.SaveOptions{
		Mode: fs.FileMode(v.GetMode()).Perm(), MTime: nsTime(v.GetMtime()), Overwrite: o.force,
	})
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%w; use --force to overwrite", err)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "wrote version %d of %s (%s, %d bytes) to %s\n", v.GetSeq(), rel, id.String()[:16], n, dest)
	return err
}

type historyRollbackOptions struct {
	path string
	hash string
}

func newHistoryRollbackCmd(g *globalOptions) *cobra.Command {
	var o historyRollbackOptions
	cmd := &cobra.Command{
		Use:   "rollback <localpath> <hash>",
		Short: "Make an old version of a file its new head, on every device",
		Long: `Make the version of a file whose hash starts with <hash> (at least 8 hex
digits) the file's new head: a new version (history is never rewritten)
that every device takes, this one at once. This also brings back a deleted
file. The content it replaces stays in the history.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.path, o.hash = args[0], args[1]
			return runHistoryRollback(cmd.Context(), g, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	return cmd
}

func runHistoryRollback(ctx context.Context, g *globalOptions, o historyRollbackOptions, out, errOut io.Writer) error {
	prefix, err := parseHashPrefix(o.hash)
	if err != nil {
		return err
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
	head, committed, err := s.engine(errOut).Rollback(ctx, r.Name, rel, prefix.String())
	var lu *client.LocalUpdateError
	if err != nil && !errors.As(err, &lu) {
		if errors.Is(err, syncproto.ErrNotFound) || errors.Is(err, syncproto.ErrBadRequest) {
			return fmt.Errorf("%w (no single version of %s has a hash starting with %s; see qic history list)", err, rel, prefix)
		}
		return err
	}
	if committed {
		fmt.Fprintf(out, "rolled %s in root %q back to %s: now version %d (%s)\n", rel, r.Name, prefix, head.GetSeq(), describeHead(head))
	} else {
		fmt.Fprintf(out, "%s in root %q already holds %s (version %d): nothing to roll back\n", rel, r.Name, prefix, head.GetSeq())
	}
	if lu != nil {
		fmt.Fprintf(errOut, "qic: warning: %v; run qic sync\n", lu)
	}
	return nil
}

package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/conflict"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func newConflictCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "conflict",
		Short: "List, download and resolve conflicts",
		Long: `A conflict arises when a device changes a file that another device changed
first: the server keeps the head and every conflicting change as candidates
until someone picks one. Any device of the root may list, download and
resolve it; the chosen side becomes a new version that every device takes,
and the other sides stay in the file's history.`,
	}
	cmd.AddCommand(newConflictListCmd(g), newConflictDownloadCmd(g), newConflictResolveCmd(g))
	return cmd
}

// conflictListing is one conflict as qic conflict list --json prints it.
type conflictListing struct {
	Root       string             `json:"root"`
	Path       string             `json:"path"`
	LocalPath  string             `json:"local_path"`
	Candidates []candidateListing `json:"candidates"`
}

// candidateListing is one side of a conflict.
type candidateListing struct {
	Side       string    `json:"side"` // "server" or "client"
	ClientID   string    `json:"client_id"`
	ClientName string    `json:"client_name"`
	Hash       string    `json:"hash"` // "" for a deletion
	Size       int64     `json:"size"`
	Mode       uint32    `json:"mode"`
	MTime      time.Time `json:"mtime"`
	Deleted    bool      `json:"deleted"`
	BaseSeq    uint64    `json:"base_seq"`
	Created    time.Time `json:"created"`
	Name       string    `json:"name"` // file name in a conflict download
	Mine       bool      `json:"mine"` // this client's own candidate
}

// nsTime turns Unix nanoseconds into a UTC time; 0 stays the zero time.
func nsTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

func hashHex(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return hex.EncodeToString(b)
}

// listingOf turns the server's conflict on a file of root r into its
// listing; me is this client's ID.
func listingOf(r client.Root, c *syncpb.Conflict, me string) conflictListing {
	l := conflictListing{
		Root: r.Name, Path: c.GetPath(), LocalPath: filepath.Join(r.Dir, filepath.FromSlash(c.GetPath())),
		Candidates: make([]candidateListing, 0, len(c.GetCandidates())),
	}
	for _, cand := range c.GetCandidates() {
		side := "client"
		if cand.GetSide() == syncpb.ConflictCandidate_SIDE_SERVER {
			side = "server"
		}
		l.Candidates = append(l.Candidates, candidateListing{
			Side: side, ClientID: cand.GetClientId(), ClientName: cand.GetClientName(),
			Hash: hashHex(cand.GetHash()), Size: cand.GetSize(), Mode: cand.GetMode(),
			MTime: nsTime(cand.GetMtime()), Deleted: cand.GetDeleted(), BaseSeq: cand.GetBaseSeq(),
			Created: nsTime(cand.GetCreated()), Name: cand.GetName(),
			Mine: side == "client" && cand.GetClientId() == me,
		})
	}
	return l
}

// who names a candidate's author for people.
func (c candidateListing) who() string {
	name := c.ClientName
	if name == "" {
		name = c.ClientID
	}
	if name == "" {
		name = "(unknown)"
	}
	if c.Mine {
		name += " (this client)"
	}
	return name
}

// keepChoices lists the --keep values that pick each side of l.
func keepChoices(l conflictListing) []string {
	choices := []string{"server"}
	if slices.ContainsFunc(l.Candidates, func(c candidateListing) bool { return c.Mine }) {
		choices = append(choices, "client")
	}
	for _, c := range l.Candidates {
		switch {
		case c.Side == "server", c.Mine:
		case c.ClientName != "" && !slices.Contains(choices, c.ClientName):
			choices = append(choices, c.ClientName)
		case c.ClientName == "" && c.ClientID != "":
			choices = append(choices, c.ClientID)
		}
	}
	return append(choices, "<hash>")
}

// resolveHint is the command that resolves l.
func resolveHint(l conflictListing) string {
	return fmt.Sprintf("qic conflict resolve %s --keep %s", shellQuote(l.LocalPath), strings.Join(keepChoices(l), "|"))
}

// shellQuote quotes s for a POSIX shell unless it needs none.
func shellQuote(s string) string {
	plain := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+,:@%=", r)
	}
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool { return !plain(r) }) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// printConflict writes one conflict for people: its sides, and how to
// download and resolve it.
func printConflict(w io.Writer, l conflictListing) {
	fmt.Fprintf(w, "conflict in root %q: %s\n  local file %s\n", l.Root, l.Path, l.LocalPath)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  SIDE\tBY\tHASH\tSIZE\tMODIFIED\tDOWNLOAD NAME")
	for _, c := range l.Candidates {
		hash, size, mtime := c.Hash, fmt.Sprint(c.Size), "-"
		if len(hash) > 16 {
			hash = hash[:16]
		}
		if c.Deleted {
			hash, size = "(deleted)", "-"
		}
		if !c.MTime.IsZero() {
			mtime = c.MTime.Local().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.Side, c.who(), hash, size, mtime, c.Name)
	}
	_ = tw.Flush()
	fmt.Fprintf(w, "  download: qic conflict download %s -o DIR\n", shellQuote(l.LocalPath))
	fmt.Fprintf(w, "  resolve:  %s\n", resolveHint(l))
}

// listConflicts asks the server for the unresolved conflicts of the given
// roots (of one path when path is set), in root and path order.
func listConflicts(ctx context.Context, rs client.Resolver, roots []client.Root, path, me string) ([]conflictListing, error) {
	list := []conflictListing{}
	for _, r := range roots {
		cs, err := rs.ListConflicts(ctx, r.Name, path)
		if err != nil {
			return list, fmt.Errorf("root %q: %w", r.Name, err)
		}
		for _, c := range cs {
			list = append(list, listingOf(r, c, me))
		}
	}
	slices.SortStableFunc(list, func(a, b conflictListing) int {
		if c := strings.Compare(a.Root, b.Root); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return list, nil
}

type conflictListOptions struct {
	path string
	json bool
}

func newConflictListCmd(g *globalOptions) *cobra.Command {
	var o conflictListOptions
	cmd := &cobra.Command{
		Use:   "list [<localpath>]",
		Short: "List the unresolved conflicts of every root, or of one file",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.path = args[0]
			}
			return runConflictList(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// session is an open home and a session with its server.
type session struct {
	home *client.Home
	conn *syncproto.Client
}

func (s *session) Close() {
	_ = s.conn.Close()
	_ = s.home.Close()
}

func openSession(ctx context.Context, g *globalOptions) (*session, error) {
	h, err := openHome(ctx, g)
	if err != nil {
		return nil, err
	}
	c, err := dial(ctx, h)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return &session{home: h, conn: c}, nil
}

// engine returns a sync engine over the session, its warnings on errOut.
func (s *session) engine(errOut io.Writer) *client.Engine {
	return client.NewEngine(s.home.State(), s.conn, client.EngineOptions{Warn: warnTo(errOut)})
}

func (s *session) clientID() string { return s.home.Config().ClientID.String() }

func runConflictList(ctx context.Context, g *globalOptions, o conflictListOptions, out io.Writer) error {
	s, err := openSession(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	var roots []client.Root
	path := ""
	if o.path != "" {
		r, rel, err := s.home.State().Locate(ctx, o.path)
		if err != nil {
			return err
		}
		roots, path = []client.Root{r}, rel
	} else if roots, err = s.home.State().Roots(ctx); err != nil {
		return err
	}
	list, err := listConflicts(ctx, s.conn, roots, path, s.clientID())
	if err != nil {
		return err
	}
	if o.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	}
	if len(list) == 0 {
		_, err := fmt.Fprintln(out, "no unresolved conflicts")
		return err
	}
	for i, l := range list {
		if i > 0 {
			fmt.Fprintln(out)
		}
		printConflict(out, l)
	}
	return nil
}

// conflictOf returns the unresolved conflict on the local file name.
func conflictOf(ctx context.Context, s *session, name string) (client.Root, conflictListing, error) {
	r, rel, err := s.home.State().Locate(ctx, name)
	if err != nil {
		return client.Root{}, conflictListing{}, err
	}
	list, err := listConflicts(ctx, s.conn, []client.Root{r}, rel, s.clientID())
	if err != nil {
		return client.Root{}, conflictListing{}, err
	}
	for _, l := range list {
		if l.Path == rel {
			return r, l, nil
		}
	}
	return client.Root{}, conflictListing{}, fmt.Errorf("no unresolved conflict on %s (root %q, %s)", name, r.Name, rel)
}

type conflictDownloadOptions struct {
	path  string
	dir   string
	force bool
}

func newConflictDownloadCmd(g *globalOptions) *cobra.Command {
	var o conflictDownloadOptions
	cmd := &cobra.Command{
		Use:   "download <localpath>",
		Short: "Download every side of a conflict into a directory",
		Long: `Download every side of the conflict on a file into a directory (by default
the current one), each named as the server's conflict view names it:
server-<hash8>.ext for the head, <client-name>-<hash8>.ext for each client's
change. A side that deleted the file has nothing to download and is only
listed. Existing files are not overwritten unless --force is given.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.path = args[0]
			return runConflictDownload(cmd.Context(), g, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&o.dir, "output", "o", ".", "directory to write the sides into (created if missing)")
	cmd.Flags().BoolVar(&o.force, "force", false, "overwrite existing files")
	return cmd
}

// candidateFileName is the name a side is saved under: the server's name
// when it is one plain file name, else one made the server's way.
func candidateFileName(c candidateListing, path string) string {
	n := c.Name
	if n != "" && n != "." && n != ".." && len(n) <= 255 && utf8.ValidString(n) &&
		!strings.ContainsAny(n, "/\\\x00") && !client.IsTempName(n) && !strings.HasPrefix(n, "-") {
		return n
	}
	side := conflict.ServerSide
	if c.Side != "server" {
		side = c.ClientName
	}
	var id cas.ID
	if b, err := hex.DecodeString(c.Hash); err == nil && len(b) == cas.IDSize {
		id = cas.ID(b)
	}
	return conflict.CandidateName(side, id, path)
}

func runConflictDownload(ctx context.Context, g *globalOptions, o conflictDownloadOptions, out, errOut io.Writer) error {
	s, err := openSession(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	r, l, err := conflictOf(ctx, s, o.path)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if inRoot, _, err := s.home.State().Locate(ctx, filepath.Join(dir, "x")); err == nil {
		fmt.Fprintf(errOut, "qic: note: %s is inside root %q: the downloaded sides will be synced like any file unless you move them out\n", dir, inRoot.Name)
	}
	type job struct {
		cand candidateListing
		hash cas.ID
		dest string
	}
	var jobs []job
	seen := map[string]bool{}
	for _, c := range l.Candidates {
		if c.Deleted {
			fmt.Fprintf(out, "%s side by %s deleted the file: nothing to download\n", c.Side, c.who())
			continue
		}
		id, err := cas.ParseID(c.Hash)
		if err != nil {
			return fmt.Errorf("%s side by %s: hash %q: %w", c.Side, c.who(), c.Hash, err)
		}
		name := candidateFileName(c, l.Path)
		if seen[name] {
			continue // the same side name and content twice: one file
		}
		seen[name] = true
		dest := filepath.Join(dir, name)
		if !o.force {
			if _, err := os.Lstat(dest); err == nil {
				return fmt.Errorf("%s exists: %w (use --force to overwrite)", dest, fs.ErrExist)
			}
		}
		jobs = append(jobs, job{cand: c, hash: id, dest: dest})
	}
	eng := s.engine(errOut)
	for _, j := range jobs {
		n, err := eng.SaveVersion(ctx, r.Name, l.Path, j.hash, j.dest, client.SaveOptions{
			Mode: fs.FileMode(j.cand.Mode).Perm(), MTime: j.cand.MTime, Overwrite: o.force,
		})
		if err != nil {
			return fmt.Errorf("%s side by %s: %w", j.cand.Side, j.cand.who(), err)
		}
		fmt.Fprintf(out, "%s side by %s: %s (%d bytes)\n", j.cand.Side, j.cand.who(), j.dest, n)
	}
	fmt.Fprintf(out, "resolve with: %s\n", resolveHint(l))
	return nil
}

type conflictResolveOptions struct {
	path string
	keep string
}

func newConflictResolveCmd(g *globalOptions) *cobra.Command {
	var o conflictResolveOptions
	cmd := &cobra.Command{
		Use:   "resolve <localpath> --keep server|client|<client-name>|<hash>",
		Short: "Resolve a conflict by keeping one side",
		Long: `Resolve the conflict on a file by keeping one side: "server" (the head when
the conflict arose), "client" (this client's own change), another client's
name or ID, or a hex prefix (at least 8 digits) of a side's hash. The kept
side becomes a new version that every device takes, this one at once; the
other sides stay in the file's history (qic history list).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.path = args[0]
			return runConflictResolve(cmd.Context(), g, o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&o.keep, "keep", "", "side to keep: server, client, a client name, or a hash prefix")
	_ = cmd.MarkFlagRequired("keep")
	return cmd
}

func runConflictResolve(ctx context.Context, g *globalOptions, o conflictResolveOptions, out, errOut io.Writer) error {
	keep := strings.TrimSpace(o.keep)
	if keep == "" {
		return errors.New("--keep is empty: give server, client, a client name, or a hash prefix")
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
	head, err := s.engine(errOut).ResolveConflict(ctx, r.Name, rel, keep)
	var lu *client.LocalUpdateError
	if err != nil && !errors.As(err, &lu) {
		return explainKeep(err, keep)
	}
	fmt.Fprintf(out, "resolved the conflict on %s in root %q: kept %s, now version %d (%s)\n",
		rel, r.Name, keep, head.GetSeq(), describeHead(head))
	fmt.Fprintf(out, "the other sides are in the history: qic history list %s\n",
		shellQuote(filepath.Join(r.Dir, filepath.FromSlash(rel))))
	if lu != nil {
		fmt.Fprintf(errOut, "qic: warning: %v; run qic sync\n", lu)
	}
	return nil
}

// explainKeep adds what --keep accepts to a refusal of it.
func explainKeep(err error, keep string) error {
	switch {
	case errors.Is(err, syncproto.ErrNotFound), errors.Is(err, syncproto.ErrBadRequest):
		return fmt.Errorf("%w (--keep %q: use server, client, a client name, or a hash prefix of at least 8 digits; see qic conflict list)", err, keep)
	}
	return err
}

// describeHead says what a head holds, for people.
func describeHead(h *syncpb.FileHead) string {
	if h.GetDeleted() {
		return "deleted"
	}
	hash := hashHex(h.GetHash())
	if len(hash) > 16 {
		hash = hash[:16]
	}
	return fmt.Sprintf("%s, %d bytes", hash, h.GetSize())
}

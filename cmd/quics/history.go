package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"
	"github.com/zeebo/blake3"
	"golang.org/x/sync/errgroup"

	"github.com/quic-s/quics/admin"
	"github.com/quic-s/quics/internal/atomicfile"
)

// The conflict, restore, history, views and retention commands (issue #5).

func newShowConflictsCmd() *cobra.Command {
	return newShowListCmd("conflicts [<root>]", "Unresolved conflicts and their sides", -1,
		func(ctx context.Context, c *admin.Conn, args []string) (any, error) {
			req := admin.ConflictsRequest{}
			if len(args) == 1 {
				req.Root = args[0]
			}
			return admin.Call(ctx, c, admin.OpListConflicts, req)
		}, printConflicts)
}

func printConflicts(w io.Writer, conflicts []admin.ConflictInfo) error {
	return table(w, "ROOT\tPATH\tSIDE\tBY\tSIZE\tHASH\tFILE", func(tw io.Writer) {
		for _, c := range conflicts {
			for _, cand := range c.Candidates {
				size := humanize.IBytes(cand.Size)
				if cand.Deleted {
					size = "deleted"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Root, c.Path, cand.Side,
					orDash(nameOr(cand.ClientName, cand.Client)), size, shortHash(cand.Hash), orDash(cand.Name))
			}
		}
	})
}

func newConflictCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "conflict", Short: "Resolve conflicts"}
	var o adminOptions
	var keep string
	resolve := &cobra.Command{
		Use:   "resolve <root> <file> --keep server|<client-name>|<client-id>|<hash>",
		Short: "Resolve a conflict by keeping one side; every client of the root takes it",
		Long: `Resolve the conflict on a file by keeping one side: "server" (the version that
was the head when the conflict arose), a client's side by its name or ID, or a
side by a prefix of its content hash (at least 8 hex digits).

The kept side becomes a new version; the other sides stay in the file's
history. Every client of the root replaces its copy with the kept one.`,
		Args: usageArgs(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keep == "" {
				return usageError{errors.New("--keep is required: server, a client name or ID, or a hash prefix")}
			}
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				res, err := admin.Call(ctx, c, admin.OpResolve, admin.ResolveRequest{Root: args[0], Path: args[1], Keep: keep})
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "resolved %s in %s: kept %s, now version %d (%s)\n",
					res.Path, res.Root, keep, res.Seq, describeHead(res))
				return err
			})
		},
	}
	o.register(resolve, true, defaultAdminTimeout)
	resolve.Flags().StringVar(&keep, "keep", "", "the side to keep: server, a client name or ID, or a hash prefix")
	cmd.AddCommand(resolve)
	return cmd
}

func describeHead(h admin.HeadResult) string {
	if h.Deleted {
		return "deleted"
	}
	return fmt.Sprintf("%s, %s", humanize.IBytes(h.Size), shortHash(h.Hash))
}

func newRestoreCmd() *cobra.Command {
	var o adminOptions
	var output string
	cmd := &cobra.Command{
		Use:   "restore <root> <file> <hash>",
		Short: "Make an old version of a file its new head, or write it out with --output",
		Long: `Make the version of a file whose content hash starts with <hash> (at least 8 hex
digits, unique among the file's versions) the file's new head. History is
never rewritten: the restored content becomes a new version, and every client
of the root takes it. A deleted file can be restored.

With --output PATH the version's content is written to PATH instead, and
nothing changes on the server.`,
		Args: usageArgs(cobra.ExactArgs(3)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := admin.VersionRequest{Root: args[0], Path: args[1], Hash: args[2]}
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				if output != "" {
					content, err := writeVersion(ctx, c, req, output)
					if err != nil {
						return err
					}
					if o.JSON {
						return printJSON(cmd.OutOrStdout(), map[string]any{"output": output, "hash": content.Hash, "size": content.Size})
					}
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "wrote %s (%s, %s)\n", output, humanize.IBytes(content.Size), shortHash(content.Hash))
					return err
				}
				res, err := admin.Call(ctx, c, admin.OpRestore, req)
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				if !res.Committed {
					_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s in %s already has that content (version %d): nothing to do\n", res.Path, res.Root, res.Seq)
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "restored %s in %s as version %d (%s)\n", res.Path, res.Root, res.Seq, describeHead(res))
				return err
			})
		},
	}
	o.register(cmd, true, defaultAdminTimeout)
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the version's content to this file instead of restoring it")
	return cmd
}

// writeVersion streams a version's content into path atomically, and keeps
// it only if the bytes hash to the version's hash.
func writeVersion(ctx context.Context, c *admin.Conn, req admin.VersionRequest, path string) (admin.Content, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		path = filepath.Join(path, filepath.Base(filepath.FromSlash(req.Path)))
	}
	pending, err := atomicfile.Create(path, ".quics-restore-*")
	if err != nil {
		return admin.Content{}, fmt.Errorf("--output %s: %w", path, err)
	}
	defer pending.Abort()
	sink := &restoreSink{dst: pending, h: blake3.New()}
	content, err := admin.Fetch(ctx, c, admin.OpContent, req, sink)
	if err != nil {
		return admin.Content{}, err
	}
	if got := fmt.Sprintf("%x", sink.h.Sum(nil)); got != content.Hash {
		return admin.Content{}, fmt.Errorf("content of %s: received bytes hash to %s, want %s: nothing written", req.Path, got, content.Hash)
	}
	mode := fs.FileMode(content.Mode).Perm()
	if mode == 0 {
		mode = 0o644
	}
	if _, err := pending.Commit(mode, time.Time{}); err != nil {
		return admin.Content{}, fmt.Errorf("--output %s: %w", path, err)
	}
	return content, nil
}

// Buffers of restoreSink.ReadFrom: large, so the file takes a few hundred
// writes instead of one per TLS record, and few, so memory stays small.
const (
	restoreBufSize = 1 << 20
	restoreBufs    = 4
)

// restoreSyncEvery is how much restoreSink.ReadFrom writes between two
// syncs of a destination that can sync. The fsync of the commit cannot
// start before the last byte, and on a large file it is a good part of the
// restore; synced along the way, on another goroutine, the disk works
// while bytes still arrive and the commit has only the tail left.
const restoreSyncEvery = 16 << 20

// syncer is a destination that can make what it holds durable before it
// is committed.
type syncer interface{ Sync() error }

// restoreSink writes the bytes of a version to dst and hashes them into h.
// Handed a reader (io.Copy calls ReadFrom), it reads into large buffers and
// hashes and writes them on two other goroutines, so that receiving,
// hashing and writing each take a core instead of taking turns on one.
type restoreSink struct {
	dst io.Writer
	h   *blake3.Hasher
}

func (s *restoreSink) Write(p []byte) (int, error) {
	_, _ = s.h.Write(p)
	return s.dst.Write(p)
}

// ReadFrom reads r to its end. Every buffer goes through the hasher, then
// the writer, then back to the reader: at most restoreBufs are in use. A
// dst that is a syncer is synced every restoreSyncEvery bytes, while the
// writing goes on. A write or sync error stops the reading and is
// returned; a read error is returned once the buffers read before it are
// written.
func (s *restoreSink) ReadFrom(r io.Reader) (int64, error) {
	free := make(chan []byte, restoreBufs)
	for range restoreBufs {
		free <- make([]byte, restoreBufSize)
	}
	toHash := make(chan []byte, restoreBufs)
	toWrite := make(chan []byte, restoreBufs)
	failed := make(chan struct{})
	var failOnce sync.Once
	fail := func() { failOnce.Do(func() { close(failed) }) }
	// The writer never waits for the syncer: one request at most is
	// pending, and a sync that starts later covers the bytes of any
	// request dropped meanwhile.
	syncNow := make(chan struct{}, 1)
	sy, canSync := s.dst.(syncer)

	var stages errgroup.Group
	stages.Go(func() error {
		defer close(toWrite)
		for b := range toHash {
			_, _ = s.h.Write(b)
			toWrite <- b
		}
		return nil
	})
	stages.Go(func() error {
		defer close(syncNow)
		var werr error
		unsynced := 0
		for b := range toWrite {
			// After a failure the buffers still come back, so that the
			// hasher never waits for a writer that has stopped.
			if werr == nil {
				if _, werr = s.dst.Write(b); werr != nil {
					fail()
				} else if unsynced += len(b); canSync && unsynced >= restoreSyncEvery {
					unsynced = 0
					select {
					case syncNow <- struct{}{}:
					default:
					}
				}
			}
			free <- b[:cap(b)]
		}
		return werr
	})
	if canSync {
		stages.Go(func() error {
			for range syncNow {
				if err := sy.Sync(); err != nil {
					fail()
					return err
				}
			}
			return nil
		})
	}

	var total int64
	var rerr error
	for rerr == nil {
		var b []byte
		select {
		case <-failed:
		case b = <-free:
			select {
			case <-failed: // reading on would be for nothing
				b = nil
			default:
			}
		}
		if b == nil {
			break
		}
		var n int
		n, rerr = fill(r, b)
		total += int64(n)
		if n > 0 {
			toHash <- b[:n]
		}
	}
	close(toHash)
	if err := stages.Wait(); err != nil {
		return total, err
	}
	if errors.Is(rerr, io.EOF) {
		rerr = nil
	}
	return total, rerr
}

// fill reads into b until it is full or r fails; the end of r is io.EOF.
// Unlike io.ReadFull it keeps a short read's io.ErrUnexpectedEOF apart
// from the end of the stream.
func fill(r io.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := r.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func newHistoryCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "history", Short: "Materialize versions of a file"}
	var o adminOptions
	export := &cobra.Command{
		Use:   "export <root> <file> [<hash>]",
		Short: "Write versions of a file under DATA/sync/<root>/history/<file>/",
		Long: `Write the version whose hash starts with <hash>, or without it every version of
the file, as v<seq>-<hash8><ext> under DATA/sync/<root>/history/<file>/.
History is never materialized by default: that would undo deduplication.`,
		Args: usageArgs(cobra.RangeArgs(2, 3)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := admin.VersionRequest{Root: args[0], Path: args[1]}
			if len(args) == 3 {
				req.Hash = args[2]
			}
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				res, err := admin.Call(ctx, c, admin.OpExportHistory, req)
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), strings.Join(res.Files, "\n"))
				return err
			})
		},
	}
	o.register(export, true, defaultAdminTimeout)
	cmd.AddCommand(export)
	return cmd
}

func newViewsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "views", Short: "Manage the browsable views under DATA/sync"}
	var o adminOptions
	rebuild := &cobra.Command{
		Use:   "rebuild [<root>]",
		Short: "Recreate DATA/sync/<root>/latest and conflict from the metadata",
		Args:  usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := admin.ConflictsRequest{}
			if len(args) == 1 {
				req.Root = args[0]
			}
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				res, err := admin.Call(ctx, c, admin.OpRebuildViews, req)
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), res)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "rebuilt the views of %d roots: %d latest files, %d conflict files, %d stale files removed\n",
					res.Roots, res.Latest, res.Conflict, res.Removed)
				return err
			})
		},
	}
	o.register(rebuild, true, defaultAdminTimeout)
	cmd.AddCommand(rebuild)
	return cmd
}

func newSetRetentionCmd() *cobra.Command {
	var o adminOptions
	var keepAll, staggered bool
	var keepLast int
	var keepWithin string
	cmd := &cobra.Command{
		Use:   "set-retention <root> --keep-all | --keep-last N | --keep-within DUR | --staggered",
		Short: "Set which versions of a root's files history keeps",
		Long: `Set a root's retention policy. The head of every file and every side of an
unresolved conflict are always kept; of the older versions:

  --keep-all          every version (the default)
  --keep-last N       the newest N versions of each file
  --keep-within DUR   versions younger than DUR (e.g. 720h, 30d, 2w)
  --staggered         one per 30 s for the last hour, one per hour for the
                      last day, one per day for the last 30 days, one per
                      week beyond

Versions the policy drops lose their pointers at once; quics gc frees their
data.`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := admin.RetentionRequest{Root: args[0]}
			set := 0
			if keepAll {
				req.Policy, set = "keep-all", set+1
			}
			if cmd.Flags().Changed("keep-last") {
				req.Policy, req.Value, set = "keep-last", fmt.Sprint(keepLast), set+1
			}
			if keepWithin != "" {
				req.Policy, req.Value, set = "keep-within", keepWithin, set+1
			}
			if staggered {
				req.Policy, set = "staggered", set+1
			}
			if set != 1 {
				return usageError{errors.New("give exactly one of --keep-all, --keep-last N, --keep-within DUR, --staggered")}
			}
			if _, err := admin.ParseRetention(req.Policy, req.Value); err != nil {
				return usageError{err}
			}
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				root, err := admin.Call(ctx, c, admin.OpSetRetention, req)
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), root)
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "root %s keeps %s: %d versions of %d files now\n", root.Name, root.Retention, root.Versions, root.Files+root.Deleted)
				return err
			})
		},
	}
	o.register(cmd, true, defaultAdminTimeout)
	f := cmd.Flags()
	f.BoolVar(&keepAll, "keep-all", false, "keep every version")
	f.IntVar(&keepLast, "keep-last", 0, "keep the newest N versions of each file")
	f.StringVar(&keepWithin, "keep-within", "", "keep versions younger than this duration (720h, 30d, 2w)")
	f.BoolVar(&staggered, "staggered", false, "keep fewer versions the older they are")
	return cmd
}

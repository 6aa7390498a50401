package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/quic-s/quics/admin"
	"github.com/quic-s/quics/gc"
)

func newGCCmd() *cobra.Command {
	var o adminOptions
	var req admin.GCRequest
	var threshold float64
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Delete chunks nothing references any more, and compact the packs",
		Long: `Collect garbage: mark every chunk that heads, retained versions, open conflicts
and uploads in flight reference; delete the others once they are older than
--margin; rewrite packs whose live share fell under --repack-threshold and
remove packs with nothing live. Runs while clients sync, against the running
server or, when none runs, on the data directory.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Flags().Changed("repack-threshold") {
				req.RepackThreshold = &threshold
			}
			if _, err := admin.GCOptions(req); err != nil {
				return usageError{err}
			}
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				rep, err := admin.Call(ctx, c, admin.OpGC, req)
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), rep)
				}
				return printGC(cmd.OutOrStdout(), rep)
			})
		},
	}
	o.register(cmd, true, time.Hour)
	f := cmd.Flags()
	f.BoolVar(&req.DryRun, "dry-run", false, "report what would be freed, change nothing")
	f.StringVar(&req.Margin, "margin", gc.DefaultMargin.String(), "keep unreferenced chunks younger than this (0 allowed)")
	f.Float64Var(&threshold, "repack-threshold", gc.DefaultRepackThreshold, "rewrite packs whose live share is below this (0 to 1)")
	return cmd
}

func printGC(w io.Writer, r gc.Report) error {
	verb := "freed"
	if r.DryRun {
		verb = "would free"
	}
	fmt.Fprintf(w, "marked %d chunks (%s) of %d; %d pinned, %d younger than the margin, %d re-marked\n",
		r.ChunksMarked, humanize.IBytes(uint64(max(r.BytesMarked, 0))), r.ChunksTotal, r.ChunksPinned, r.ChunksYoung, r.ChunksRemarked)
	fmt.Fprintf(w, "swept %d chunks (%s); packs: %d deleted, %d rewritten (%d chunks copied)\n",
		r.ChunksDeleted, humanize.IBytes(uint64(max(r.BytesDeleted, 0))), r.PacksDeleted, r.PacksRewritten, r.ChunksRepacked)
	fmt.Fprintf(w, "%s %s: packs %s -> %s, in %s\n", verb, humanize.IBytes(uint64(max(r.BytesFreed, 0))),
		humanize.IBytes(uint64(max(r.PackBytesBefore, 0))), humanize.IBytes(uint64(max(r.PackBytesAfter, 0))),
		time.Duration(r.DurationMS)*time.Millisecond)
	for _, warning := range r.Warnings {
		fmt.Fprintln(w, "warning:", warning)
	}
	if len(r.Roots) == 0 {
		return nil
	}
	return table(w, "ROOT\tFILES\tVERSIONS\tCONFLICT SIDES\tHISTORY", func(tw io.Writer) {
		for _, root := range r.Roots {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", root.Name, root.Files, root.Versions, root.Candidates, humanize.IBytes(root.Bytes))
		}
	})
}

// errProblems makes `quics check` exit 1 after printing what it found.
type errProblems struct{ n int }

func (e errProblems) Error() string { return fmt.Sprintf("%d problems found", e.n) }

func newCheckCmd() *cobra.Command {
	var o adminOptions
	var req admin.CheckRequest
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Check that metadata, chunk index and packs agree",
		Long: `Check that every chunk metadata references is in the index, and every index
entry points inside a pack. With --read-data every chunk is read and re-hashed.
Unreferenced chunks are reported, not counted as problems (gc frees them).

--repair first rebuilds the chunk index from the packs, then reports the
versions whose chunks are truly lost.

Exits 0 when clean, 1 when problems were found (they are listed).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				rep, err := admin.Call(ctx, c, admin.OpCheck, req)
				if err != nil {
					return err
				}
				if o.JSON {
					err = printJSON(cmd.OutOrStdout(), rep)
				} else {
					err = printCheck(cmd.OutOrStdout(), rep)
				}
				if err != nil {
					return err
				}
				if !rep.OK {
					return errProblems{len(rep.Problems)}
				}
				return nil
			})
		},
	}
	o.register(cmd, true, 24*time.Hour)
	cmd.Flags().BoolVar(&req.ReadData, "read-data", false, "read and re-hash every chunk")
	cmd.Flags().BoolVar(&req.Repair, "repair", false, "rebuild the chunk index from the packs first")
	return cmd
}

func printCheck(w io.Writer, r gc.CheckReport) error {
	fmt.Fprintf(w, "checked %d roots, %d versions, %d conflict sides: %d contents, %d chunk references\n",
		r.Roots, r.Versions, r.Candidates, r.Contents, r.ChunksReferenced)
	fmt.Fprintf(w, "chunk store: %d chunks indexed in %d packs", r.ChunksIndexed, r.Packs)
	if r.ReadData {
		fmt.Fprintf(w, ", %s read and re-hashed", humanize.IBytes(uint64(max(r.ScannedBytes, 0))))
	}
	fmt.Fprintf(w, "; %d unreferenced chunks (gc frees them), %d orphan records\n", r.OrphanChunks, r.OrphanRecords)
	if r.Repair != nil {
		fmt.Fprintf(w, "repair: rebuilt the index from %d packs (%d records, %d indexed); %d versions lost\n",
			r.Repair.Packs, r.Repair.Records, r.Repair.Indexed, len(r.Repair.Lost))
		for _, p := range r.Repair.Lost {
			fmt.Fprintln(w, "lost:", p.String())
		}
	}
	for _, p := range r.Problems {
		fmt.Fprintln(w, "problem:", p.String())
	}
	if r.OK {
		_, err := fmt.Fprintln(w, "ok")
		return err
	}
	return nil
}

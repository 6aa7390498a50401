package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/internal/duration"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// retentionOptions are the flags of qic root set-retention; exactly one
// policy flag is set.
type retentionOptions struct {
	root       string
	keepAll    bool
	keepLast   int64
	keepWithin string
	staggered  bool
	set        []string // the policy flags given, in flag order
}

func newRootSetRetentionCmd(g *globalOptions) *cobra.Command {
	var o retentionOptions
	cmd := &cobra.Command{
		Use:   "set-retention <root> --keep-all | --keep-last N | --keep-within DUR | --staggered",
		Short: "Set how long a root's old versions are kept",
		Long: `Set the retention policy of a root, for every device: which old versions of
each file the server keeps. Versions the policy no longer keeps are dropped
at once; a file's head and the sides of an unresolved conflict never are.

  --keep-all          keep every version (the default)
  --keep-last N       keep the newest N versions of each file
  --keep-within DUR   keep the versions younger than DUR (Go durations such
                      as 36h or 90m, plus days: 30d, 7d12h)
  --staggered         thin versions out with age: one per 30 s for an hour,
                      per hour for a day, per day for 30 days, per week
                      beyond`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.root = args[0]
			for _, f := range []string{"keep-all", "keep-last", "keep-within", "staggered"} {
				if cmd.Flags().Changed(f) {
					o.set = append(o.set, f)
				}
			}
			return runRootSetRetention(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&o.keepAll, "keep-all", false, "keep every version")
	cmd.Flags().Int64Var(&o.keepLast, "keep-last", 0, "keep the newest N versions of each file")
	cmd.Flags().StringVar(&o.keepWithin, "keep-within", "", "keep the versions younger than DUR (e.g. 36h, 30d)")
	cmd.Flags().BoolVar(&o.staggered, "staggered", false, "keep recent versions densely, older ones sparsely")
	return cmd
}

// policy turns the flags into the request's kind and value.
func (o retentionOptions) policy() (syncpb.SetRetentionRequest_Kind, int64, error) {
	if len(o.set) != 1 {
		given := "none"
		if len(o.set) > 0 {
			given = "--" + strings.Join(o.set, ", --")
		}
		return 0, 0, fmt.Errorf("give exactly one of --keep-all, --keep-last N, --keep-within DUR, --staggered (given: %s)", given)
	}
	switch o.set[0] {
	case "keep-all":
		if !o.keepAll {
			return 0, 0, errors.New("--keep-all=false is not a policy")
		}
		return syncpb.SetRetentionRequest_KIND_KEEP_ALL, 0, nil
	case "keep-last":
		if o.keepLast < 1 {
			return 0, 0, fmt.Errorf("--keep-last %d: keep at least 1 version", o.keepLast)
		}
		return syncpb.SetRetentionRequest_KIND_KEEP_LAST, o.keepLast, nil
	case "keep-within":
		d, err := duration.Parse(o.keepWithin)
		if err != nil {
			return 0, 0, fmt.Errorf("--keep-within: %w", err)
		}
		if d <= 0 {
			return 0, 0, fmt.Errorf("--keep-within %s: the duration must be positive", o.keepWithin)
		}
		return syncpb.SetRetentionRequest_KIND_KEEP_WITHIN, int64(d), nil
	default: // staggered
		if !o.staggered {
			return 0, 0, errors.New("--staggered=false is not a policy")
		}
		return syncpb.SetRetentionRequest_KIND_STAGGERED, 0, nil
	}
}

func describePolicy(kind syncpb.SetRetentionRequest_Kind, value int64) string {
	switch kind {
	case syncpb.SetRetentionRequest_KIND_KEEP_ALL:
		return "keep every version"
	case syncpb.SetRetentionRequest_KIND_KEEP_LAST:
		return fmt.Sprintf("keep the newest %d versions of each file", value)
	case syncpb.SetRetentionRequest_KIND_KEEP_WITHIN:
		return fmt.Sprintf("keep the versions of the last %s", time.Duration(value))
	case syncpb.SetRetentionRequest_KIND_STAGGERED:
		return "keep versions staggered (one per 30 s for an hour, per hour for a day, per day for 30 days, per week beyond)"
	}
	return kind.String()
}

func runRootSetRetention(ctx context.Context, g *globalOptions, o retentionOptions, out io.Writer) error {
	kind, value, err := o.policy()
	if err != nil {
		return err
	}
	s, err := openSession(ctx, g)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.conn.SetRetention(ctx, o.root, kind, value); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "root %q: %s\n", o.root, describePolicy(kind, value))
	return err
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/client"
)

type runOptions struct {
	scanInterval time.Duration
}

func newRunCmd(g *globalOptions) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Keep every root in sync until interrupted",
		Long: `Keep every root in sync until interrupted: changes on the server arrive
through the watch stream, local changes are seen by file events (debounced;
a pass then scans the paths they name, not the whole root), and every root
gets a full pass at start and every --scan-interval (less often for a root
whose full scan takes over 1 % of that time).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRun(cmd.Context(), g, o, cmd.ErrOrStderr())
		},
	}
	cmd.Flags().DurationVar(&o.scanInterval, "scan-interval", client.DefaultScanInterval, "period of full scans")
	return cmd
}

func runRun(ctx context.Context, g *globalOptions, o runOptions, errOut io.Writer) error {
	h, err := openHome(ctx, g)
	if err != nil {
		return err
	}
	defer h.Close()
	if !h.Config().Registered() {
		return fmt.Errorf("not registered with a server: run qic register first")
	}
	log := slog.New(slog.NewTextHandler(errOut, nil))
	err = client.Run(ctx, h.State(), client.RunOptions{
		Dial: func(ctx context.Context) (client.Session, error) {
			c, err := dial(ctx, h)
			if err != nil {
				return nil, err
			}
			log.Info("qic: connected", "server", h.Config().ServerAddr)
			return c, nil
		},
		ScanInterval: o.scanInterval,
		Engine:       client.EngineOptions{Warn: warnTo(errOut)},
		Logger:       log,
		OnPass: func(root string, res client.PassResult, err error) {
			if err != nil {
				return // Run logs it
			}
			if res.FilesUploaded+res.FilesDownloaded+res.FilesDeleted > 0 || res.Conflicts > 0 {
				log.Info("qic: synced", "root", root, "uploaded", res.FilesUploaded, "downloaded", res.FilesDownloaded,
					"deleted", res.FilesDeleted, "chunks_sent", res.ChunksSent, "conflicts", res.Conflicts, "duration_ms", res.DurationMS)
			}
			for _, c := range res.ConflictList {
				log.Warn("qic: conflict", "root", c.Root, "path", c.Path)
			}
			for _, sp := range res.SupersededList {
				log.Info("qic: local version superseded on the server (kept in its history); replaced by the head",
					"root", sp.Root, "path", sp.Path, "seq", sp.Seq)
			}
		},
	})
	return err
}

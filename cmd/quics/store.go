package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/cobra"

	"github.com/quic-s/quics/admin"
	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/server"
)

// Environment variables of the chunk store flags. Credentials also come
// from QUICS_S3_ACCESS_KEY / QUICS_S3_SECRET_KEY or the AWS variables (see
// s3store.ConfigFromEnv); flags override them.
const (
	envStore      = "QUICS_STORE"
	envStoreCache = "QUICS_STORE_CACHE"
)

// storeFlags are the flags that say where packs live.
type storeFlags struct {
	url                  string
	endpoint, region     string
	accessKey, secretKey string
	insecure             bool
	cache                string
	packSize             string
}

func (sf *storeFlags) register(cmd *cobra.Command, urlFlag, urlHelp string) {
	f := cmd.Flags()
	f.StringVar(&sf.url, urlFlag, os.Getenv(envStore), urlHelp)
	f.StringVar(&sf.endpoint, "s3-endpoint", "", "S3 endpoint URL, e.g. https://s3.eu-central-1.amazonaws.com or http://127.0.0.1:7070 (env QUICS_S3_ENDPOINT, AWS_ENDPOINT_URL)")
	f.StringVar(&sf.region, "s3-region", "", "S3 region (env QUICS_S3_REGION, AWS_REGION)")
	f.StringVar(&sf.accessKey, "s3-access-key", "", "S3 access key (env QUICS_S3_ACCESS_KEY, AWS_ACCESS_KEY_ID)")
	f.StringVar(&sf.secretKey, "s3-secret-key", "", "S3 secret key; visible to other users of this machine: prefer the environment (QUICS_S3_SECRET_KEY, AWS_SECRET_ACCESS_KEY)")
	f.BoolVar(&sf.insecure, "s3-insecure", false, "talk plain HTTP to the S3 endpoint (env QUICS_S3_INSECURE)")
	def := os.Getenv(envStoreCache)
	if def == "" {
		def = "1GiB"
	}
	f.StringVar(&sf.packSize, "pack-size", "32MiB", "size at which a pack file is sealed (and uploaded, with --store); 1KiB to 1GiB")
	f.StringVar(&sf.cache, "store-cache", def, "local cache of blocks read from remote packs, under DATA/cache; 0 turns it off (env "+envStoreCache+")")
}

// options turns the flags into server.StoreOptions. Unset S3 fields are left
// to the environment and to DATA/store.json.
func (sf *storeFlags) options() (server.StoreOptions, error) {
	so := server.StoreOptions{URL: sf.url}
	so.S3.Endpoint, so.S3.Region = sf.endpoint, sf.region
	so.S3.AccessKey, so.S3.SecretKey = sf.accessKey, sf.secretKey
	so.S3.Insecure = sf.insecure
	// Empty (runOptions built in code, not from flags) means the defaults.
	if sf.packSize != "" {
		ps, err := humanize.ParseBytes(sf.packSize)
		if err != nil || ps < cas.MinPackSize || ps > cas.MaxPackSize {
			return so, usageError{fmt.Errorf("--pack-size %q: want a size from 1KiB to 1GiB", sf.packSize)}
		}
		so.PackSize = int64(ps)
	}
	if sf.cache != "" {
		n, err := humanize.ParseBytes(sf.cache)
		switch {
		case err != nil:
			return so, usageError{fmt.Errorf("--store-cache %q: want a size such as 512MiB, 2GiB or 0", sf.cache)}
		case n == 0:
			so.CacheBytes = -1
		case n > 1<<50:
			return so, usageError{fmt.Errorf("--store-cache %q is too large", sf.cache)}
		default:
			so.CacheBytes = int64(n)
		}
	}
	return so, nil
}

func newStoreCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "store",
		Short: "Show or move the chunk store (local, S3, another disk)",
		Long: `The chunk store keeps every chunk once, in pack files of about 32 MiB. Packs
are local (DATA/cas/packs) unless the server runs with --store s3://BUCKET/PREFIX
or --store file:///PATH: then each pack is uploaded once sealed and read back
with ranged requests through a local cache. See docs/storage.md.`,
	}
	cmd.AddCommand(newStoreShowCmd(), newStoreMigrateCmd())
	return cmd
}

func newStoreShowCmd() *cobra.Command {
	var o adminOptions
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show where the packs are and how much lives where",
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withAdmin(cmd.Context(), o, func(ctx context.Context, c *admin.Conn) error {
				st, err := admin.Call(ctx, c, admin.OpStore, admin.NoRequest{})
				if err != nil {
					return err
				}
				if o.JSON {
					return printJSON(cmd.OutOrStdout(), st)
				}
				return printStoreStatus(cmd.OutOrStdout(), st)
			})
		},
	}
	o.register(cmd, true, defaultAdminTimeout)
	return cmd
}

func printStoreStatus(w io.Writer, st server.StoreStatus) error {
	where := st.URL
	if st.Backend != "" {
		where = st.Backend
	}
	_, err := fmt.Fprintf(w, "store: %s\npacks: %d (%s), %d chunks\nremote: %d packs (%s)\nlocal: %d packs (%s)\n",
		where, st.Packs, humanize.IBytes(uint64(max(st.PackBytes, 0))), st.Chunks,
		st.RemotePacks, humanize.IBytes(uint64(max(st.RemoteBytes, 0))),
		st.LocalPacks, humanize.IBytes(uint64(max(st.LocalBytes, 0))))
	return err
}

// migrateResult is what `quics store migrate --json` prints.
type migrateResult struct {
	Store      server.StoreStatus `json:"store"`
	MovedPacks int                `json:"moved_packs"`
	MovedBytes int64              `json:"moved_bytes"`
	Seconds    float64            `json:"seconds"`
}

func newStoreMigrateCmd() *cobra.Command {
	var (
		dataDir string
		asJSON  bool
		sf      storeFlags
	)
	cmd := &cobra.Command{
		Use:   "migrate --to s3://BUCKET/PREFIX|file:///PATH|local",
		Short: "Move the packs to S3 (or another disk, or back to local) and switch the store there",
		Long: `Switch the data directory's chunk store to --to and move every pack there.
The server must be stopped (quics stop).

To a backend: the switch is recorded first, in DATA/store.json, then every
local pack is uploaded; each local file is deleted only once the backend
has confirmed it. An interrupted migration resumes: run the command again,
or start the server, whose background uploader sends the rest.

Back to local (--to local): every remote pack is downloaded and fsynced,
marked local, and only then deleted from the backend; DATA/store.json
switches to local once all are down. Run it again to resume.

Credentials come from the --s3-* flags or the environment and are never
written to disk.`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if sf.url == "" {
				return usageError{errors.New("--to s3://BUCKET/PREFIX, file:///PATH or local is required")}
			}
			so, err := sf.options()
			if err != nil {
				return err
			}
			so.Migrate = true
			return migrateStore(cmd.Context(), dataDir, so, asJSON, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&dataDir, "data", defaultDataDir(), "data directory of the server (env "+envData+")")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	sf.register(cmd, "to", "where the packs go: s3://BUCKET/PREFIX, file:///PATH or local")
	return cmd
}

func migrateStore(ctx context.Context, dataDir string, so server.StoreOptions, asJSON bool, stdout, stderr io.Writer) error {
	if dataDir == "" {
		return errors.New("no data directory: pass --data or set " + envData)
	}
	inUse, err := server.DataDirInUse(dataDir)
	if err != nil {
		return err
	}
	if inUse {
		return fmt.Errorf("a quics server is running on %s: stop it first (quics stop --data %s), then migrate", dataDir, dataDir)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.Open(ctx, server.Options{DataDir: dataDir, Logger: log, Store: so, RetentionInterval: -1})
	if err != nil {
		return err
	}
	defer srv.Close()
	before, err := srv.StoreStatus(ctx)
	if err != nil {
		return err
	}
	if !asJSON {
		if so.URL == server.StoreLocal {
			fmt.Fprintf(stdout, "moving %d remote packs (%s) from %s to local disk\n", before.RemotePacks,
				humanize.IBytes(uint64(max(before.RemoteBytes, 0))), before.Backend)
		} else {
			fmt.Fprintf(stdout, "migrating %d local packs (%s) to %s\n", before.LocalPacks,
				humanize.IBytes(uint64(max(before.LocalBytes, 0))), before.Backend)
		}
	}
	start := time.Now()
	done := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if asJSON {
			return
		}
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if st, err := srv.StoreStatus(ctx); err == nil {
					fmt.Fprintf(stdout, "  %d of %d packs remote, %d local\n", st.RemotePacks, st.Packs, st.LocalPacks)
				}
			}
		}
	}()
	rep, err := srv.MigrateStore(ctx)
	close(done)
	<-progressDone
	if err != nil {
		return fmt.Errorf("migrate: %w (run the command again to resume)", err)
	}
	after, err := srv.StoreStatus(ctx)
	if err != nil {
		return err
	}
	res := migrateResult{Store: after, MovedPacks: rep.Packs, MovedBytes: rep.Bytes, Seconds: time.Since(start).Seconds()}
	if asJSON {
		return printJSON(stdout, res)
	}
	fmt.Fprintf(stdout, "moved %d packs (%s) in %s; the store is now %s\n", rep.Packs,
		humanize.IBytes(uint64(max(rep.Bytes, 0))), time.Since(start).Round(time.Millisecond), after.URL)
	return printStoreStatus(stdout, after)
}

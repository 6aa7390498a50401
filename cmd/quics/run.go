package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/quic-s/quics/admin"
	"github.com/quic-s/quics/gc"
	"github.com/quic-s/quics/server"
	"github.com/quic-s/quics/syncproto"
)

// Environment variables that supply defaults for the run flags.
const (
	envData        = "QUICS_DATA"
	envListen      = "QUICS_LISTEN"
	envPassword    = "QUICS_PASSWORD"
	envAdmin       = "QUICS_ADMIN"
	envAdminH3     = "QUICS_ADMIN_H3"
	envAdminSocket = "QUICS_ADMIN_SOCKET"

	envShareListen  = "QUICS_SHARE_LISTEN"
	envShareBaseURL = "QUICS_SHARE_BASE_URL"
)

// adminSocketAuto is --admin-socket's default: DATA/admin.sock, wherever
// --data points.
const adminSocketAuto = "auto"

// runOptions are the settings of `quics run`.
type runOptions struct {
	DataDir  string
	Listen   string
	Password string
	// Admin and AdminH3 are the admin API's TCP and UDP addresses; ""
	// turns that one off.
	Admin   string
	AdminH3 string
	// AdminSocket is the path of the admin API's Unix socket:
	// adminSocketAuto puts it in the data directory, "" turns it off.
	AdminSocket string
	// ShareListen is the address of the public share listener (TCP and
	// UDP); "" turns share links off. ShareBaseURL is the links' public
	// prefix when a proxy stands in front of it.
	ShareListen  string
	ShareBaseURL string
	Views        bool
	// Limits bound what clients can make the server hold (zero fields:
	// syncproto.DefaultLimits).
	Limits syncproto.Limits
	// Store says where packs live (--store and the S3 flags).
	Store storeFlags
	// GCInterval runs a garbage collection this often; 0 never.
	GCInterval time.Duration
	LogFormat  string // text or json
	LogLevel   string // debug, info, warn or error

	Stdout io.Writer // the fingerprint and a generated password
	Stderr io.Writer // logs

	// tune adjusts the server options (tests use cheap password hashing).
	tune func(*server.Options)
	// ready is told the address once the server listens.
	ready func(net.Addr)
}

func newRunCmd() *cobra.Command {
	o := runOptions{
		Listen: fmt.Sprintf(":%d", syncproto.DefaultPort), Admin: admin.DefaultAddr, AdminH3: admin.DefaultH3Addr,
		AdminSocket: adminSocketAuto, Views: true, LogFormat: "text", LogLevel: "info",
	}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the sync server",
		Long: `Run the sync server until SIGINT or SIGTERM.

On the first start it creates the data directory, a self-signed certificate
and, unless --password is given, a server password that is printed once and
written to DATA/initial-password. Every start prints the certificate's
SHA-256 fingerprint, which clients pin when they register.

The admin API (used by quics show, stop, password, client and root) listens
on loopback: HTTP/1.1 over TLS on --admin and HTTP/3 on --admin-h3, with the
bearer token of DATA/admin-token. It is also served as plain HTTP/1.1 on the
Unix socket --admin-socket (mode 0600; "auto" is DATA/admin.sock), which
the admin commands on this host prefer: it spares them TLS. An empty
address or path turns one off.

With --share-listen, members can create share links (qic share) that
anyone with the URL downloads over HTTPS, a limited number of times: the
server then also listens on that address, TCP for HTTP/1.1 and UDP for
HTTP/3, with its certificate, and serves nothing there but /s/<token>.
Behind a reverse proxy, --share-base-url is the public prefix of the links.

Chunks live in pack files under DATA/cas unless --store names an S3 bucket
(s3://BUCKET/PREFIX, with --s3-endpoint, --s3-region and credentials from
the --s3-* flags or the environment) or another disk (file:///PATH): packs
are then written locally, uploaded once sealed, and read back through a
local cache of --store-cache bytes. The choice is recorded in
DATA/store.json; credentials are not. A data directory with local packs
moves to S3 with quics store migrate. See docs/storage.md.

Flags default to the environment: QUICS_DATA, QUICS_LISTEN, QUICS_PASSWORD,
QUICS_ADMIN, QUICS_ADMIN_H3, QUICS_ADMIN_SOCKET, QUICS_SHARE_LISTEN,
QUICS_SHARE_BASE_URL, QUICS_STORE, QUICS_STORE_CACHE, QUICS_S3_ENDPOINT,
QUICS_S3_REGION, QUICS_S3_ACCESS_KEY, QUICS_S3_SECRET_KEY, QUICS_S3_INSECURE
(or the usual AWS_* variables).`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Stdout, o.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return runServer(cmd.Context(), o)
		},
	}
	if v := os.Getenv(envListen); v != "" {
		o.Listen = v
	}
	// Set but empty turns an admin transport off, as the flag's "" does.
	for env, dst := range map[string]*string{envAdmin: &o.Admin, envAdminH3: &o.AdminH3, envAdminSocket: &o.AdminSocket} {
		if v, ok := os.LookupEnv(env); ok {
			*dst = v
		}
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data", defaultDataDir(), "data directory (env "+envData+")")
	f.StringVar(&o.Listen, "listen", o.Listen, "UDP address to listen on (env "+envListen+")")
	f.StringVar(&o.Password, "password", os.Getenv(envPassword), "server password that registering a device requires (env "+envPassword+"); replaces the stored one")
	f.StringVar(&o.Admin, "admin", o.Admin, "TCP address of the admin API, HTTP/1.1 over TLS (env "+envAdmin+"; \"\" turns it off)")
	f.StringVar(&o.AdminH3, "admin-h3", o.AdminH3, "UDP address of the admin API over HTTP/3 (env "+envAdminH3+"; \"\" turns it off)")
	f.StringVar(&o.AdminSocket, "admin-socket", o.AdminSocket,
		"Unix socket of the admin API, plain HTTP/1.1 for admin commands on this host; \""+adminSocketAuto+"\" is DATA/"+admin.SocketFile+" (env "+envAdminSocket+"; \"\" turns it off)")
	f.StringVar(&o.ShareListen, "share-listen", os.Getenv(envShareListen),
		"address of the public share-link listener, TCP (HTTPS) and UDP (HTTP/3) (env "+envShareListen+"; default off)")
	f.StringVar(&o.ShareBaseURL, "share-base-url", os.Getenv(envShareBaseURL),
		"public URL prefix of share links, such as https://files.example.com behind a proxy (env "+envShareBaseURL+")")
	o.Limits = syncproto.DefaultLimits
	f.IntVar(&o.Limits.MaxConns, "max-conns", o.Limits.MaxConns, "logged-in connections served at once; more logins are refused with \"unavailable\"")
	f.IntVar(&o.Limits.MaxPendingConns, "max-pending-conns", o.Limits.MaxPendingConns, "connections that have not logged in yet, served at once")
	f.IntVar(&o.Limits.MaxPendingConnsPerIP, "max-pending-conns-per-ip", o.Limits.MaxPendingConnsPerIP, "connections from one address that have not logged in yet")
	f.DurationVar(&o.Limits.AuthTimeout, "auth-timeout", o.Limits.AuthTimeout, "close a connection that has not logged in within this time")
	f.Int64Var(&o.Limits.MaxUploadBytesPerClient, "max-upload-bytes-per-client", o.Limits.MaxUploadBytesPerClient, "chunk bytes one client may have in flight")
	f.Int64Var(&o.Limits.MaxUploadBytes, "max-upload-bytes", o.Limits.MaxUploadBytes, "chunk bytes all clients together may have in flight")
	o.Store.register(cmd, "store", "where sealed packs live: local (DATA/cas), s3://BUCKET/PREFIX or file:///PATH; default: what the data directory uses (env "+envStore+")")
	f.DurationVar(&o.GCInterval, "gc-interval", 0, "collect garbage this often (default 0: never; run quics gc by hand)")
	f.BoolVar(&o.Views, "views", o.Views, "materialize every file's latest version under DATA/sync")
	f.StringVar(&o.LogFormat, "log-format", o.LogFormat, "log format: text or json")
	f.StringVar(&o.LogLevel, "log-level", o.LogLevel, "log level: debug, info, warn or error")
	return cmd
}

// defaultDataDir is $QUICS_DATA, else $HOME/.quics.
func defaultDataDir() string {
	if d := os.Getenv(envData); d != "" {
		return d
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".quics")
	}
	return ""
}

// newLogger builds the slog logger the flags ask for.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// runServer opens the data directory, serves the sync protocol until ctx
// ends, then shuts down: connections are closed with "unavailable", the
// running transactions return (a commit already queued completes), and the
// store and database are closed.
func runServer(ctx context.Context, o runOptions) (err error) {
	if o.Stdout == nil {
		o.Stdout = io.Discard
	}
	if o.Stderr == nil {
		o.Stderr = io.Discard
	}
	if o.DataDir == "" {
		return errors.New("no data directory: pass --data or set " + envData)
	}
	log, err := newLogger(o.Stderr, o.LogFormat, o.LogLevel)
	if err != nil {
		return err
	}
	if o.ShareBaseURL != "" && o.ShareListen == "" {
		return usageError{errors.New("--share-base-url needs --share-listen")}
	}
	metrics := prometheus.NewRegistry()
	metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	store, err := o.Store.options()
	if err != nil {
		return err
	}
	sopts := server.Options{DataDir: o.DataDir, Password: o.Password, Views: o.Views, Logger: log, Metrics: metrics, Store: store}
	if o.tune != nil {
		o.tune(&sopts)
	}
	srv, err := server.Open(ctx, sopts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := srv.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	fmt.Fprintf(o.Stdout, "certificate fingerprint (SHA-256): %s\n", srv.Fingerprint())
	if pw := srv.InitialPassword(); pw != "" {
		fmt.Fprintf(o.Stdout, "server password (shown once; also in %s): %s\n", srv.InitialPasswordPath(), pw)
	}
	l, err := syncproto.Listen(ctx, o.Listen, srv.TLSConfig(), syncproto.Config{Logger: log})
	if err != nil {
		return err
	}
	// `quics stop` cancels runCtx through the admin API.
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	var shares *server.ShareListener
	if o.ShareListen != "" {
		shares, err = srv.ListenShares(runCtx, server.ShareListenOptions{Addr: o.ShareListen, BaseURL: o.ShareBaseURL})
		if err != nil {
			return errors.Join(err, l.Close())
		}
	}
	adm, err := startAdmin(runCtx, o, srv, metrics, log, stop)
	if err != nil {
		if shares != nil {
			err = errors.Join(err, shares.Close())
		}
		return errors.Join(err, l.Close())
	}
	log.Info("quics: serving", "addr", l.Addr().String(), "data", o.DataDir, "views", o.Views)
	fmt.Fprintf(o.Stdout, "listening on %s (udp)\n", l.Addr())
	if adm != nil {
		if a := adm.Addr(); a != nil {
			fmt.Fprintf(o.Stdout, "admin API on %s (tcp)\n", adm.URL())
		}
		if a := adm.H3Addr(); a != nil {
			fmt.Fprintf(o.Stdout, "admin API on https://%s (udp, HTTP/3)\n", a)
		}
		if p := adm.SocketPath(); p != "" {
			fmt.Fprintf(o.Stdout, "admin API on unix:%s\n", p)
		}
	}
	if shares != nil {
		base := strings.TrimRight(shares.BaseURL(), "/")
		if base == "" {
			base = fmt.Sprintf("https://<the host clients dial>:%d", shares.Port())
		}
		fmt.Fprintf(o.Stdout, "share links on %s (tcp and udp): %s/s/<token>\n", shares.Addr(), base)
	}
	if o.ready != nil {
		o.ready(l.Addr())
	}
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error {
		return syncproto.NewServer(srv, syncproto.ServerOptions{Logger: log, Limits: o.Limits}).Serve(gctx, l)
	})
	if o.GCInterval > 0 {
		g.Go(func() error { collectEvery(gctx, srv, o.GCInterval, log); return nil })
	}
	if shares != nil {
		g.Go(func() error { return shares.Serve(gctx) })
	}
	if adm != nil {
		g.Go(func() error {
			defer func() {
				if err := admin.Withdraw(o.DataDir); err != nil {
					log.Warn("quics: withdraw admin address", "err", err)
				}
			}()
			return adm.Serve(gctx)
		})
	}
	err = g.Wait()
	log.Info("quics: stopped")
	return err
}

// collectEvery runs a garbage collection with the default policy every
// interval until ctx ends. A failed collection is logged; the next one
// tries again.
func collectEvery(ctx context.Context, srv *server.Server, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rep, err := srv.GC(ctx, gc.DefaultOptions())
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("quics: automatic gc failed", "err", err)
			}
			continue
		}
		log.Info("quics: automatic gc", "chunks_deleted", rep.ChunksDeleted, "bytes_freed", rep.BytesFreed,
			"packs_deleted", rep.PacksDeleted, "packs_rewritten", rep.PacksRewritten, "duration_ms", rep.DurationMS)
	}
}

// startAdmin binds the admin API and publishes its addresses and token in
// the data directory; nil when every transport is off.
func startAdmin(ctx context.Context, o runOptions, srv *server.Server, metrics prometheus.Gatherer, log *slog.Logger, stop func()) (*admin.Listener, error) {
	socket := o.AdminSocket
	if socket == adminSocketAuto {
		socket = filepath.Join(o.DataDir, admin.SocketFile)
	}
	if o.Admin == "" && o.AdminH3 == "" && socket == "" {
		return nil, admin.Withdraw(o.DataDir)
	}
	token, err := admin.LoadOrCreateToken(o.DataDir)
	if err != nil {
		return nil, err
	}
	backend := &admin.Backend{Server: srv, DataDir: o.DataDir, Online: true, Stop: stop, Started: time.Now()}
	handler := admin.NewHandler(backend, admin.HandlerOptions{Token: token, Metrics: metrics, Logger: log})
	adm, err := admin.Listen(ctx, admin.ServeOptions{
		Addr: o.Admin, H3Addr: o.AdminH3, Socket: socket, TLS: srv.TLSConfig(), Handler: handler, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	// What is off, or a socket path too long to bind, is withdrawn.
	if err := adm.Publish(o.DataDir); err != nil {
		return nil, errors.Join(err, adm.Close())
	}
	return adm, nil
}

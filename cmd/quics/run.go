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

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/server"
	"github.com/quic-s/quics/syncproto"
)

// Environment variables that supply defaults for the run flags.
const (
	envData     = "QUICS_DATA"
	envListen   = "QUICS_LISTEN"
	envPassword = "QUICS_PASSWORD"
)

// runOptions are the settings of `quics run`.
type runOptions struct {
	DataDir   string
	Listen    string
	Password  string
	Views     bool
	LogFormat string // text or json
	LogLevel  string // debug, info, warn or error

	Stdout io.Writer // the fingerprint and a generated password
	Stderr io.Writer // logs

	// tune adjusts the server options (tests use cheap password hashing).
	tune func(*server.Options)
	// ready is told the address once the server listens.
	ready func(net.Addr)
}

func newRunCmd() *cobra.Command {
	o := runOptions{Listen: fmt.Sprintf(":%d", syncproto.DefaultPort), Views: true, LogFormat: "text", LogLevel: "info"}
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the sync server",
		Long: `Run the sync server until SIGINT or SIGTERM.

On the first start it creates the data directory, a self-signed certificate
and, unless --password is given, a server password that is printed once and
written to DATA/initial-password. Every start prints the certificate's
SHA-256 fingerprint, which clients pin when they register.

Flags default to the environment: QUICS_DATA, QUICS_LISTEN, QUICS_PASSWORD.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.Stdout, o.Stderr = cmd.OutOrStdout(), cmd.ErrOrStderr()
			return runServer(cmd.Context(), o)
		},
	}
	defaultData := os.Getenv(envData)
	if defaultData == "" {
		if home, err := os.UserHomeDir(); err == nil {
			defaultData = filepath.Join(home, ".quics")
		}
	}
	if v := os.Getenv(envListen); v != "" {
		o.Listen = v
	}
	f := cmd.Flags()
	f.StringVar(&o.DataDir, "data", defaultData, "data directory (env "+envData+")")
	f.StringVar(&o.Listen, "listen", o.Listen, "UDP address to listen on (env "+envListen+")")
	f.StringVar(&o.Password, "password", os.Getenv(envPassword), "server password that registering a device requires (env "+envPassword+"); replaces the stored one")
	f.BoolVar(&o.Views, "views", o.Views, "materialize every file's latest version under DATA/sync")
	f.StringVar(&o.LogFormat, "log-format", o.LogFormat, "log format: text or json")
	f.StringVar(&o.LogLevel, "log-level", o.LogLevel, "log level: debug, info, warn or error")
	return cmd
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
	sopts := server.Options{DataDir: o.DataDir, Password: o.Password, Views: o.Views, Logger: log}
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
	log.Info("quics: serving", "addr", l.Addr().String(), "data", o.DataDir, "views", o.Views)
	fmt.Fprintf(o.Stdout, "listening on %s (udp)\n", l.Addr())
	if o.ready != nil {
		o.ready(l.Addr())
	}
	err = syncproto.NewServer(srv, syncproto.ServerOptions{Logger: log}).Serve(ctx, l)
	log.Info("quics: stopped")
	return err
}

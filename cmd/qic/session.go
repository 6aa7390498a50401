package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto"
)

// openHome opens the home directory chosen by --home or $QIC_HOME.
func openHome(ctx context.Context, g *globalOptions) (*client.Home, error) {
	dir, err := client.HomeDir(g.home)
	if err != nil {
		return nil, err
	}
	return client.OpenHome(ctx, dir)
}

// dial opens an authenticated session with the server the home is
// registered with, accepting only the pinned certificate.
func dial(ctx context.Context, h *client.Home) (*syncproto.Client, error) {
	cfg := h.Config()
	if !cfg.Registered() {
		return nil, errors.New("not registered with a server: run qic register --server HOST:PORT --password PW")
	}
	tlsConf := tlsutil.PinnedClientConfig(cfg.Fingerprint, syncproto.ALPN)
	c, err := syncproto.DialSession(ctx, cfg.ServerAddr, tlsConf, syncproto.Config{}, cfg.ClientID.String(), cfg.Token)
	if err != nil {
		return nil, explainDial(err, cfg.ServerAddr, cfg.Fingerprint)
	}
	return c, nil
}

// explainDial turns a refused certificate into an error a person can act on.
func explainDial(err error, addr, pinned string) error {
	if errors.Is(err, tlsutil.ErrFingerprintMismatch) {
		return fmt.Errorf("the server at %s presented a certificate other than the one pinned at registration (fingerprint %s); "+
			"if the server's certificate really changed, register again with --fingerprint: %w", addr, pinned, err)
	}
	return fmt.Errorf("connect to %s: %w", addr, err)
}

// warnTo prints skipped files on w (stderr), naming them.
func warnTo(w io.Writer) func(client.Warning) {
	return func(wn client.Warning) {
		fmt.Fprintf(w, "qic: warning: %s\n", wn)
	}
}

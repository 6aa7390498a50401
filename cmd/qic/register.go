package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

type registerOptions struct {
	server      string
	password    string
	name        string
	fingerprint string
}

func newRegisterCmd(g *globalOptions) *cobra.Command {
	var o registerOptions
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register this device with a quics server",
		Long: `Register this device with a quics server, using the server password.
The server's certificate is pinned: trusted on first use unless --fingerprint
gives the SHA-256 fingerprint the server prints at start. A server presenting
another certificate later is refused.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRegister(cmd.Context(), g, o, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&o.server, "server", "", "server address HOST:PORT")
	cmd.Flags().StringVar(&o.password, "password", "", "server password")
	cmd.Flags().StringVar(&o.name, "name", "", "device name (default: the host name)")
	cmd.Flags().StringVar(&o.fingerprint, "fingerprint", "", "expected SHA-256 fingerprint of the server certificate (hex)")
	_ = cmd.MarkFlagRequired("server")
	_ = cmd.MarkFlagRequired("password")
	return cmd
}

func runRegister(ctx context.Context, g *globalOptions, o registerOptions, out io.Writer) error {
	pin := ""
	if o.fingerprint != "" {
		var err error
		if pin, err = tlsutil.ParseFingerprint(o.fingerprint); err != nil {
			return err
		}
	}
	h, err := openHome(ctx, g)
	if err != nil {
		return err
	}
	defer h.Close()
	cfg := h.Config()
	name := o.name
	if name == "" {
		name, _ = os.Hostname()
	}
	req := &syncpb.RegisterClientRequest{ClientId: cfg.ClientID.String(), Name: name, ServerPassword: o.password}
	resp, fp, err := syncproto.Register(ctx, o.server, tlsutil.PinnedClientConfig(pin, syncproto.ALPN), syncproto.Config{}, req)
	if err != nil {
		return explainDial(err, o.server, pin)
	}
	if pin != "" && fp != pin {
		return fmt.Errorf("server %s presented fingerprint %s, expected %s", o.server, fp, pin)
	}
	cfg.ServerAddr, cfg.Token, cfg.Fingerprint, cfg.DeviceName = o.server, resp.GetToken(), fp, name
	if err := h.SaveConfig(ctx, cfg); err != nil {
		return err
	}
	_, err = fmt.Fprintf(out, "registered client %s with %s\nserver certificate fingerprint %s\n", cfg.ClientID, o.server, fp)
	return err
}

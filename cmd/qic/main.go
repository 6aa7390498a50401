// Command qic is the quics client: it registers with a server and keeps local directories in sync.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/quic-s/quics/internal/buildinfo"
)

// Exit codes.
const (
	exitOK        = 0
	exitError     = 1
	exitConflicts = 3
)

// exitCodeError ends the command with a given exit code; err, if set, is
// printed.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit code %d", e.code)
	}
	return e.err.Error()
}

func (e *exitCodeError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(err))
}

// exitCode prints err (if any) and returns the process exit code.
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	code := exitError
	var ec *exitCodeError
	if errors.As(err, &ec) {
		code = ec.code
		if ec.err == nil {
			return code
		}
	}
	fmt.Fprintln(os.Stderr, "qic:", err)
	return code
}

// globalOptions are the flags every command has.
type globalOptions struct {
	home string
}

func newRootCmd() *cobra.Command {
	var g globalOptions
	root := &cobra.Command{
		Use:           "qic",
		Short:         "qic: the quics sync client",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.home, "home", "", "client home directory (default $QIC_HOME, else $HOME/.quics-client)")
	root.AddCommand(
		newVersionCmd(),
		newRegisterCmd(&g),
		newRootGroupCmd(&g),
		newSyncCmd(&g),
		newRunCmd(&g),
		newStatusCmd(&g),
		newConflictCmd(&g),
		newHistoryCmd(&g),
		newShareCmd(&g),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "qic", buildinfo.String())
			return err
		},
	}
}

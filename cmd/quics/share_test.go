package main

import (
	"context"
	"errors"
	"testing"
)

func TestRunShareFlags(t *testing.T) {
	t.Setenv(envShareListen, "127.0.0.1:8443")
	t.Setenv(envShareBaseURL, "https://files.example")
	cmd := newRunCmd()
	for flag, want := range map[string]string{"share-listen": "127.0.0.1:8443", "share-base-url": "https://files.example"} {
		if got := cmd.Flags().Lookup(flag).DefValue; got != want {
			t.Errorf("--%s defaults to %q, want %q", flag, got, want)
		}
	}
	t.Setenv(envShareListen, "")
	t.Setenv(envShareBaseURL, "")
	cmd = newRunCmd()
	if got := cmd.Flags().Lookup("share-listen").DefValue; got != "" {
		t.Errorf("--share-listen defaults to %q without env; share links are off by default", got)
	}

	err := runServer(context.Background(), runOptions{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", LogFormat: "text", LogLevel: "info", ShareBaseURL: "https://files.example", tune: cheap,
	})
	var ue usageError
	if !errors.As(err, &ue) {
		t.Errorf("--share-base-url without --share-listen: %v, want a usage error", err)
	}
}

package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestCompletion runs `qic completion SHELL` through the real command tree
// (cobra adds the command) and checks that each prints that shell's
// script for qic.
func TestCompletion(t *testing.T) {
	tests := []struct {
		shell string
		want  []string // each must appear in the script
	}{
		{"bash", []string{"# bash completion", "__start_qic()", "complete -o default -F __start_qic qic"}},
		{"zsh", []string{"#compdef qic", "compdef _qic qic", "_qic()"}},
		{"fish", []string{"# fish completion for qic", "complete -c qic "}},
		{"powershell", []string{"Register-ArgumentCompleter", "-CommandName 'qic'"}},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			var out, errOut bytes.Buffer
			cmd := newRootCmd()
			cmd.SetArgs([]string{"completion", tt.shell})
			cmd.SetOut(&out)
			cmd.SetErr(&errOut)
			if err := cmd.Execute(); err != nil {
				t.Fatalf("qic completion %s: %v (stderr %q)", tt.shell, err, errOut.String())
			}
			script := out.String()
			for _, w := range tt.want {
				if !strings.Contains(script, w) {
					t.Errorf("qic completion %s: no %q in the %d-byte script", tt.shell, w, len(script))
				}
			}
		})
	}
}

// TestCompletionCompletesSubcommands asks the completion machinery what
// follows "qic sy", as a shell script would.
func TestCompletionCompletesSubcommands(t *testing.T) {
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs([]string{"__complete", "sy"})
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "sync\t") {
		t.Errorf("completions of %q: %q, want sync", "sy", out.String())
	}
}

package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCompletionScripts(t *testing.T) {
	for shell, marker := range map[string]string{
		"bash": "complete -o default -F __start_quics quics",
		"zsh":  "#compdef quics",
		"fish": "complete -c quics",
	} {
		var out bytes.Buffer
		cmd := newRootCmd()
		cmd.SetOut(&out)
		cmd.SetArgs([]string{"completion", shell})
		if err := cmd.Execute(); err != nil {
			t.Fatalf("completion %s: %v", shell, err)
		}
		if !strings.Contains(out.String(), marker) {
			t.Errorf("completion %s lacks %q", shell, marker)
		}
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"show", "files"}, exitUsage},
		{[]string{"show", "history", "root"}, exitUsage},
		{[]string{"stop", "--no-such-flag"}, exitUsage},
		{[]string{"client", "remove"}, exitUsage},
		{[]string{"show", "clients", "--data", "/nonexistent/quics-data"}, exitError},
		{[]string{"version"}, exitOK},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		cmd := newRootCmd()
		cmd.SetOut(&bytes.Buffer{})
		cmd.SetArgs(tt.args)
		if got := exitCode(cmd.Execute(), &stderr); got != tt.want {
			t.Errorf("quics %v: exit %d, want %d (%s)", tt.args, got, tt.want, stderr.String())
		}
	}
}

func TestConfirm(t *testing.T) {
	for answer, ok := range map[string]bool{
		"y\n": true, "YES\n": true, " yes \r\n": true, "yes": true,
		"n\n": false, "\n": false, "": false, "yess\n": false, "sure\n": false,
	} {
		var prompt bytes.Buffer
		err := confirm(strings.NewReader(answer), &prompt, "Remove it?")
		if (err == nil) != ok || (err != nil && !errors.Is(err, errAborted)) {
			t.Errorf("answer %q: %v", answer, err)
		}
		if !strings.Contains(prompt.String(), "Remove it? [y/N]") {
			t.Errorf("prompt %q", prompt.String())
		}
	}
}

func TestReadPasswordFromPipe(t *testing.T) {
	for in, want := range map[string]string{
		"secret\n":        "secret",
		"with space\r\n":  "with space",
		"no newline":      "no newline",
		"first\nsecond\n": "first",
		"":                "",
		" padded \n":      " padded ",
	} {
		got, err := readPassword(strings.NewReader(in), &bytes.Buffer{})
		if err != nil || got != want {
			t.Errorf("%q: got %q, %v", in, got, err)
		}
	}
}

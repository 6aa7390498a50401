package client

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestOpenHomeCreatesIdentity(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "home")
	h := openTestHome(t, dir)
	cfg := h.Config()
	if cfg.ClientID == uuid.Nil || cfg.Registered() {
		t.Fatalf("fresh config %+v: want a client ID and no registration", cfg)
	}
	fi, err := os.Stat(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v, want 0600", fi.Mode().Perm())
	}
	cfg.DeviceName = "laptop"
	cfg.ServerAddr = "example.org:6122"
	cfg.Token = "s3cret"
	cfg.Fingerprint = strings.Repeat("ab", 32)
	if err := h.SaveConfig(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}

	h2 := openTestHome(t, dir)
	if got := h2.Config(); got != cfg || !got.Registered() {
		t.Errorf("config after reopen %+v, want %+v", got, cfg)
	}
	if h2.Dir() != dir {
		t.Errorf("Dir() = %s, want %s", h2.Dir(), dir)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if IsTempName(e.Name()) {
			t.Errorf("temporary file left in the home: %s", e.Name())
		}
	}
}

func TestOpenHomeIsLocked(t *testing.T) {
	dir := t.TempDir()
	openTestHome(t, dir)
	_, err := OpenHome(context.Background(), dir)
	if !errors.Is(err, ErrHomeLocked) {
		t.Fatalf("second OpenHome: %v, want ErrHomeLocked", err)
	}
	if !strings.Contains(err.Error(), "another qic is using") || !strings.Contains(err.Error(), dir) {
		t.Errorf("message %q should say another qic uses %s", err, dir)
	}
}

func TestSaveConfigRefusesInvalid(t *testing.T) {
	h := openTestHome(t, t.TempDir())
	good := h.Config()
	for name, mutate := range map[string]func(*Config){
		"no client id":          func(c *Config) { c.ClientID = uuid.Nil },
		"short fingerprint":     func(c *Config) { c.Fingerprint = "abcd" },
		"upper-case hex":        func(c *Config) { c.Fingerprint = strings.Repeat("AB", 32) },
		"non-hex fingerprint":   func(c *Config) { c.Fingerprint = strings.Repeat("zz", 32) },
		"device name too long":  func(c *Config) { c.DeviceName = strings.Repeat("x", 256) },
		"device name not UTF-8": func(c *Config) { c.DeviceName = "\xff" },
	} {
		c := good
		mutate(&c)
		if err := h.SaveConfig(context.Background(), c); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
	}
	if h.Config() != good {
		t.Error("a refused config replaced the good one")
	}
}

func TestOpenHomeBadConfig(t *testing.T) {
	id := uuid.New().String()
	for name, content := range map[string]string{
		"not JSON":        "{",
		"unknown field":   `{"version":1,"client_id":"` + id + `","flavor":"red"}`,
		"wrong version":   `{"version":2,"client_id":"` + id + `"}`,
		"no client id":    `{"version":1}`,
		"bad uuid":        `{"version":1,"client_id":"nope"}`,
		"trailing data":   `{"version":1,"client_id":"` + id + `"} {}`,
		"too large":       `{"version":1,"client_id":"` + id + `","device_name":"` + strings.Repeat("x", maxConfigLen) + `"}`,
		"bad fingerprint": `{"version":1,"client_id":"` + id + `","fingerprint":"xyz"}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			h, err := OpenHome(context.Background(), dir)
			if err == nil {
				h.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrBadConfig) {
				t.Errorf("error %v, want ErrBadConfig", err)
			}
			// The failed open released the lock.
			openTestHome(t, filepath.Join(dir, "other"))
			if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(`{"version":1,"client_id":"`+id+`"}`), 0o600); err != nil {
				t.Fatal(err)
			}
			if h := openTestHome(t, dir); h.Config().ClientID.String() != id {
				t.Errorf("client id %s, want %s", h.Config().ClientID, id)
			}
		})
	}
}

func TestHomeDir(t *testing.T) {
	t.Setenv(HomeEnv, "/from/env")
	if got, _ := HomeDir("/from/flag"); got != "/from/flag" {
		t.Errorf("flag: %s", got)
	}
	if got, _ := HomeDir(""); got != "/from/env" {
		t.Errorf("env: %s", got)
	}
	t.Setenv(HomeEnv, "")
	t.Setenv("HOME", "/home/someone")
	if got, _ := HomeDir(""); got != filepath.Join("/home/someone", DefaultHomeName) {
		t.Errorf("default: %s", got)
	}
}

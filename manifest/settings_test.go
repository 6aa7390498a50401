package manifest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestServerSettings(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.db.ServerSettings(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("settings of a fresh database: err = %v, want ErrNotFound", err)
	}
	first := ServerSettings{PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"}
	if err := e.db.SetServerSettings(ctx, first); err != nil {
		t.Fatal(err)
	}
	got, err := e.db.ServerSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.PasswordHash != first.PasswordHash || got.Updated.IsZero() {
		t.Errorf("settings = %+v, want the hash and a clock stamp", got)
	}
	second := ServerSettings{PasswordHash: "$argon2id$other", Updated: time.Unix(1700000000, 7).UTC()}
	if err := e.db.SetServerSettings(ctx, second); err != nil {
		t.Fatal(err)
	}
	e.reopen(t)
	got, err = e.db.ServerSettings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(second, got); d != "" {
		t.Errorf("settings after replace and reopen (-want +got):\n%s", d)
	}
	if err := e.db.SetServerSettings(ctx, ServerSettings{PasswordHash: strings.Repeat("x", maxPHCLen+1)}); !errors.Is(err, ErrInvalid) {
		t.Errorf("oversized hash: err = %v, want ErrInvalid", err)
	}
	if err := e.db.SetServerSettings(ctx, ServerSettings{PasswordHash: "\xff"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("invalid UTF-8 hash: err = %v, want ErrInvalid", err)
	}
}

func FuzzServerSettingsRecord(f *testing.F) {
	fuzzRecord(f, []ServerSettings{{PasswordHash: recClient.TokenHash, Updated: time.Unix(1700000000, 5).UTC()}, {}},
		encodeServerSettings, decodeServerSettings)
}

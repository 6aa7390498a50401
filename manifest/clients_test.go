package manifest

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/secret"
)

func TestClients(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := uuid.New()
	c, err := e.db.RegisterClient(ctx, NewClient{ID: id, Name: "laptop", Token: "s3cret", Address: "192.0.2.7:5000"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != id || c.Name != "laptop" || c.LastAddress != "192.0.2.7:5000" || c.Registered.IsZero() || !c.LastSeen.Equal(c.Registered) {
		t.Errorf("registered %+v", c)
	}
	if strings.Contains(c.TokenHash, "s3cret") || !strings.HasPrefix(c.TokenHash, "$argon2id$") {
		t.Errorf("token stored as %q, want an argon2id hash", c.TokenHash)
	}
	if p, err := secret.ParamsOf(c.TokenHash); err != nil || p != cheapParams {
		t.Errorf("token hashed with %+v, %v; want the configured %+v", p, err, cheapParams)
	}
	if _, err := e.db.RegisterClient(ctx, NewClient{ID: id, Name: "again", Token: "x"}); !errors.Is(err, ErrExists) {
		t.Errorf("second registration err = %v, want ErrExists", err)
	}
	got, err := e.db.Client(ctx, id)
	if err != nil || got != c {
		t.Errorf("Client = %+v, %v; want %+v", got, err, c)
	}
	if _, err := e.db.Client(ctx, uuid.New()); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown client err = %v", err)
	}

	// Authentication.
	if a, err := e.db.AuthenticateClient(ctx, id, "s3cret"); err != nil || a.ID != id {
		t.Errorf("AuthenticateClient(right) = %+v, %v", a, err)
	}
	if _, err := e.db.AuthenticateClient(ctx, id, "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("AuthenticateClient(wrong) err = %v", err)
	}
	if _, err := e.db.AuthenticateClient(ctx, uuid.New(), "s3cret"); !errors.Is(err, ErrNotFound) {
		t.Errorf("AuthenticateClient(unknown) err = %v", err)
	}

	// Touch.
	if err := e.db.TouchClient(ctx, id, "198.51.100.1:6000"); err != nil {
		t.Fatal(err)
	}
	touched, err := e.db.Client(ctx, id)
	if err != nil || touched.LastAddress != "198.51.100.1:6000" || !touched.LastSeen.After(c.LastSeen) || touched.TokenHash != c.TokenHash {
		t.Errorf("after touch %+v, %v", touched, err)
	}
	if err := e.db.TouchClient(ctx, uuid.New(), "x"); !errors.Is(err, ErrNotFound) {
		t.Errorf("touch unknown err = %v", err)
	}

	// List.
	other := e.client(t, "phone")
	list, err := e.db.ListClients(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListClients = %v, %v", list, err)
	}
	if list[0].ID.String() > list[1].ID.String() {
		t.Errorf("ListClients not in id order: %s, %s", list[0].ID, list[1].ID)
	}

	// Remove drops memberships both ways.
	root := e.root(t, "shared", other)
	if err := e.db.AddMember(ctx, root.ID, id); err != nil {
		t.Fatal(err)
	}
	if err := e.db.RemoveClient(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Client(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed client err = %v", err)
	}
	if ok, err := e.db.IsMember(ctx, root.ID, id); err != nil || ok {
		t.Errorf("removed client still member: %v, %v", ok, err)
	}
	members, err := e.db.MembersOfRoot(ctx, root.ID)
	if err != nil || len(members) != 1 || members[0].Client != other.ID {
		t.Errorf("members after removal = %v, %v", members, err)
	}
	if roots, err := e.db.RootsOfClient(ctx, id); err != nil || len(roots) != 0 {
		t.Errorf("roots of removed client = %v, %v", roots, err)
	}
	if err := e.db.RemoveClient(ctx, id); !errors.Is(err, ErrNotFound) {
		t.Errorf("second removal err = %v", err)
	}
}

func TestRegisterClientRejects(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name string
		nc   NewClient
	}{
		{"nil id", NewClient{Name: "x", Token: "t"}},
		{"name not UTF-8", NewClient{ID: uuid.New(), Name: "\xff", Token: "t"}},
		{"name too long", NewClient{ID: uuid.New(), Name: strings.Repeat("n", 256), Token: "t"}},
		{"address too long", NewClient{ID: uuid.New(), Token: "t", Address: strings.Repeat("a", 256)}},
		{"token too long", NewClient{ID: uuid.New(), Token: strings.Repeat("t", secret.MaxSecretLen+1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.db.RegisterClient(context.Background(), tc.nc); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if list, err := e.db.ListClients(context.Background()); err != nil || len(list) != 0 {
		t.Errorf("rejected registrations stored %v, %v", list, err)
	}
}

package server

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"

	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// A new server password applies to the next registration at once, and
// devices registered before keep their access (QUIC-S applied a password
// change only after a restart).
func TestSetPasswordAppliesAtOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := uuid.New()
	resp, err := e.srv.RegisterClient(ctx, testAddr, &syncpb.RegisterClientRequest{ClientId: id.String(), Name: "before", ServerPassword: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.SetPassword(ctx, "a new password"); err != nil {
		t.Fatal(err)
	}
	register := func(pw string) error {
		_, err := e.srv.RegisterClient(ctx, testAddr, &syncpb.RegisterClientRequest{ClientId: uuid.NewString(), Name: "after", ServerPassword: pw})
		return err
	}
	if err := register(testPassword); !errors.Is(err, syncproto.ErrBadPassword) {
		t.Errorf("registration with the old password: %v, want ErrBadPassword", err)
	}
	if err := register("a new password"); err != nil {
		t.Errorf("registration with the new password: %v", err)
	}
	if _, err := e.srv.Authenticate(ctx, testAddr, &syncpb.AuthRequest{ClientId: id.String(), Token: resp.GetToken()}); err != nil {
		t.Errorf("a device registered before the change lost access: %v", err)
	}
	if err := e.srv.SetPassword(ctx, ""); !errors.Is(err, syncproto.ErrBadRequest) {
		t.Errorf("empty password: %v, want ErrBadRequest", err)
	}

	// The new password survives a restart (started without --password).
	opts := e.opts
	opts.Password = ""
	e.reopen(t, opts)
	if err := register("a new password"); err != nil {
		t.Errorf("after a restart, registration with the new password: %v", err)
	}
}

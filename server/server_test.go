package server

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func TestOpenCreatesLayoutAndPassword(t *testing.T) {
	opts := testOptions(filepath.Join(t.TempDir(), "data"))
	opts.Password = ""
	e := newEnvWith(t, opts)
	fi, err := os.Stat(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("data dir mode %v, want 0700", fi.Mode().Perm())
	}
	for _, p := range []string{DBDir, CASDir, LockFile, filepath.Join(TLSDir, tlsutil.CertFile), filepath.Join(TLSDir, tlsutil.KeyFile)} {
		if _, err := os.Stat(filepath.Join(e.dir, p)); err != nil {
			t.Errorf("missing %s: %v", p, err)
		}
	}
	pw := e.srv.InitialPassword()
	if len(pw) != PasswordLen || strings.Trim(pw, passwordAlphabet) != "" {
		t.Fatalf("initial password %q: want %d characters of the alphabet", pw, PasswordLen)
	}
	fi, err = os.Stat(e.srv.InitialPasswordPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("initial-password mode %v, want 0600", fi.Mode().Perm())
	}
	if got := strings.TrimSpace(string(readFile(t, e.srv.InitialPasswordPath()))); got != pw {
		t.Errorf("initial-password holds %q, want %q", got, pw)
	}
	st, err := e.srv.db.ServerSettings(context.Background())
	if err != nil || strings.Contains(st.PasswordHash, pw) || !strings.HasPrefix(st.PasswordHash, "$argon2id$") {
		t.Errorf("stored %+v, %v: want only an argon2id hash", st, err)
	}
	fp := e.srv.Fingerprint()
	if _, err := tlsutil.ParseFingerprint(fp); err != nil {
		t.Errorf("fingerprint %q: %v", fp, err)
	}
	if tc := e.srv.TLSConfig(); len(tc.Certificates) != 1 || tc.NextProtos[0] != syncproto.ALPN {
		t.Errorf("TLS config %+v", tc)
	}

	register := func(password string) error {
		_, err := e.srv.RegisterClient(context.Background(), testAddr,
			&syncpb.RegisterClientRequest{ClientId: uuid.NewString(), Name: "d", ServerPassword: password})
		return err
	}
	if err := register(pw); err != nil {
		t.Errorf("the generated password does not register: %v", err)
	}

	// A second start keeps the password and the certificate, and shows
	// no password.
	e.reopen(t, opts)
	if e.srv.InitialPassword() != "" {
		t.Errorf("second start shows password %q", e.srv.InitialPassword())
	}
	if e.srv.Fingerprint() != fp {
		t.Error("the certificate changed across restarts")
	}
	if err := register(pw); err != nil {
		t.Errorf("the generated password stopped working: %v", err)
	}

	// An explicit password replaces it and removes the stale file.
	opts.Password = "chosen"
	e.reopen(t, opts)
	if err := register(pw); !errors.Is(err, syncproto.ErrBadPassword) {
		t.Errorf("old password after replacement: err = %v, want ErrBadPassword", err)
	}
	if err := register("chosen"); err != nil {
		t.Errorf("new password: %v", err)
	}
	if _, err := os.Stat(e.srv.InitialPasswordPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("initial-password still there after setting a password: %v", err)
	}
}

func TestNewPassword(t *testing.T) {
	seen := make(map[string]bool)
	for range 100 {
		pw, err := NewPassword()
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != PasswordLen || strings.Trim(pw, passwordAlphabet) != "" || seen[pw] {
			t.Fatalf("password %q: wrong length, alphabet or repeated", pw)
		}
		seen[pw] = true
	}
}

func TestOpenNeedsDataDir(t *testing.T) {
	if _, err := Open(context.Background(), Options{}); err == nil {
		t.Error("Open without a data dir succeeded")
	}
}

func TestRegisterClient(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	taken := uuid.New()
	if _, err := e.srv.RegisterClient(ctx, testAddr, &syncpb.RegisterClientRequest{ClientId: taken.String(), Name: "first", ServerPassword: testPassword}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  *syncpb.RegisterClientRequest
		want error
	}{
		{"wrong password", &syncpb.RegisterClientRequest{ClientId: uuid.NewString(), ServerPassword: "nope"}, syncproto.ErrBadPassword},
		{"empty password", &syncpb.RegisterClientRequest{ClientId: uuid.NewString()}, syncproto.ErrBadPassword},
		{"huge password", &syncpb.RegisterClientRequest{ClientId: uuid.NewString(), ServerPassword: strings.Repeat("p", 5000)}, syncproto.ErrBadPassword},
		{"wrong password hides a bad id", &syncpb.RegisterClientRequest{ClientId: "x", ServerPassword: "nope"}, syncproto.ErrBadPassword},
		{"not a uuid", &syncpb.RegisterClientRequest{ClientId: "laptop", ServerPassword: testPassword}, syncproto.ErrBadRequest},
		{"empty id", &syncpb.RegisterClientRequest{ServerPassword: testPassword}, syncproto.ErrBadRequest},
		{"nil uuid", &syncpb.RegisterClientRequest{ClientId: uuid.Nil.String(), ServerPassword: testPassword}, syncproto.ErrBadRequest},
		{"urn form", &syncpb.RegisterClientRequest{ClientId: "urn:uuid:" + uuid.NewString(), ServerPassword: testPassword}, syncproto.ErrBadRequest},
		{"braces", &syncpb.RegisterClientRequest{ClientId: "{" + uuid.NewString() + "}", ServerPassword: testPassword}, syncproto.ErrBadRequest},
		{"long name", &syncpb.RegisterClientRequest{ClientId: uuid.NewString(), Name: strings.Repeat("n", 256), ServerPassword: testPassword}, syncproto.ErrBadRequest},
		{"control in name", &syncpb.RegisterClientRequest{ClientId: uuid.NewString(), Name: "a\nb", ServerPassword: testPassword}, syncproto.ErrBadRequest},
		{"invalid UTF-8 name", &syncpb.RegisterClientRequest{ClientId: uuid.NewString(), Name: "a\xffb", ServerPassword: testPassword}, syncproto.ErrBadRequest},
		{"id taken", &syncpb.RegisterClientRequest{ClientId: taken.String(), ServerPassword: testPassword}, syncproto.ErrExists},
		{"ok", &syncpb.RegisterClientRequest{ClientId: uuid.NewString(), Name: strings.Repeat("n", 255), ServerPassword: testPassword}, nil},
		{"ok unicode name", &syncpb.RegisterClientRequest{ClientId: uuid.NewString(), Name: "Jane's Mac 日本", ServerPassword: testPassword}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := e.srv.RegisterClient(ctx, testAddr, tt.req)
			if tt.want == nil {
				if err != nil || len(resp.GetToken()) < 40 {
					t.Fatalf("register: %v, token %q", err, resp.GetToken())
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if w := syncproto.WireError(err); w.Code != syncproto.CodeOf(tt.want) {
				t.Errorf("travels as %v, want %v", w.Code, syncproto.CodeOf(tt.want))
			}
		})
	}
	c, err := e.srv.db.Client(ctx, taken)
	if err != nil || c.Name != "first" || c.LastAddress != testAddr.String() {
		t.Errorf("stored client %+v, %v", c, err)
	}
}

func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	id := uuid.New()
	resp, err := e.srv.RegisterClient(ctx, testAddr, &syncpb.RegisterClientRequest{ClientId: id.String(), Name: "d", ServerPassword: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	token := resp.GetToken()
	for _, tt := range []struct {
		name      string
		id, token string
	}{
		{"wrong token", id.String(), token + "x"},
		{"empty token", id.String(), ""},
		{"huge token", id.String(), strings.Repeat("t", 5000)},
		{"unknown id", uuid.NewString(), token},
		{"malformed id", "nope", token},
		{"nil id", uuid.Nil.String(), token},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sess, err := e.srv.Authenticate(ctx, testAddr, &syncpb.AuthRequest{ClientId: tt.id, Token: tt.token})
			if !errors.Is(err, syncproto.ErrUnauthenticated) || sess != nil {
				t.Fatalf("Authenticate = %v, %v; want ErrUnauthenticated", sess, err)
			}
			// All refusals read the same, whether or not the id exists.
			if got := syncproto.WireError(err).Message; got != "unknown client or wrong token" {
				t.Errorf("message %q reveals more than a refusal", got)
			}
		})
	}
	other := &netAddr{"198.51.100.9:1234"}
	sess, err := e.srv.Authenticate(ctx, other, &syncpb.AuthRequest{ClientId: id.String(), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	if sess.ClientID != id.String() || sess.Remote != other {
		t.Errorf("session %+v", sess)
	}
	c, err := e.srv.db.Client(ctx, id)
	if err != nil || c.LastAddress != other.String() || !c.LastSeen.After(c.Registered) {
		t.Errorf("client after auth %+v, %v: want the new address and a later last-seen", c, err)
	}
	// A session the server did not open is refused everywhere.
	foreign := &syncproto.Session{ClientID: id.String(), State: "not ours"}
	if _, err := e.srv.ListRoots(ctx, foreign, &syncpb.ListRootsRequest{}); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Errorf("foreign session: err = %v", err)
	}
	if _, err := e.srv.ListRoots(ctx, nil, &syncpb.ListRootsRequest{}); !errors.Is(err, syncproto.ErrUnauthenticated) {
		t.Errorf("nil session: err = %v", err)
	}
	e.srv.SessionEnded(foreign) // must not panic
}

type netAddr struct{ s string }

func (a *netAddr) Network() string { return "udp" }
func (a *netAddr) String() string  { return a.s }

func TestCloseIsIdempotentAndKeepsData(t *testing.T) {
	e := newEnv(t)
	a := e.client(t, "a")
	e.root(t, a, "docs")
	head := e.mustPush(t, a, "docs", "f.txt", nil, newFile(t, randomData(1, 100<<10)))
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	e.reopen(t, e.opts)
	h, err := e.srv.db.Head(context.Background(), 1, "f.txt")
	if err != nil || h.Seq != head.GetSeq() {
		t.Fatalf("head after reopen %+v, %v", h, err)
	}
	ok, err := e.srv.store.Has(context.Background(), newFile(t, randomData(1, 100<<10)).ids())
	if err != nil {
		t.Fatal(err)
	}
	for i, present := range ok {
		if !present {
			t.Errorf("chunk %d lost across restart", i)
		}
	}
}

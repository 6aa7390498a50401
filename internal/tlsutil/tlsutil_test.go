package tlsutil

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadOrCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	cert, err := LoadOrCreate(dir, []string{"sync.example.org", "192.0.2.7", "2001:db8::1", " ", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		t.Fatal("Leaf not parsed")
	}
	if got, want := strings.Join(leaf.DNSNames, ","), "localhost,sync.example.org"; got != want {
		t.Errorf("DNSNames = %s, want %s", got, want)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if got, want := strings.Join(ips, ","), "127.0.0.1,::1,192.0.2.7,2001:db8::1"; got != want {
		t.Errorf("IPAddresses = %s, want %s", got, want)
	}
	if life := time.Until(leaf.NotAfter); life < Validity-2*time.Hour || life > Validity {
		t.Errorf("certificate valid for %v, want about %v", life, Validity)
	}
	for name, want := range map[string]os.FileMode{KeyFile: 0o600, CertFile: 0o644} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		t.Errorf("dir mode %v, want no group/other access", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("dir holds %d entries, want only cert and key", len(entries))
	}

	again, err := LoadOrCreate(dir, []string{"other.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(again.Certificate[0]) != Fingerprint(cert.Certificate[0]) {
		t.Error("reload changed the fingerprint")
	}
}

func TestLoadOrCreateIncomplete(t *testing.T) {
	dir := t.TempDir()
	cert, err := LoadOrCreate(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, KeyFile)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir, nil); !errors.Is(err, ErrIncomplete) {
		t.Fatalf("cert without key: err = %v, want ErrIncomplete", err)
	}
	if _, err := os.Stat(filepath.Join(dir, CertFile)); err != nil {
		t.Fatalf("cert.pem was touched: %v", err)
	}

	// A key without its certificate is what a crash between the two renames
	// leaves: a new pair is created.
	dir2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir2, KeyFile), []byte("stale"), 0o600); err != nil {
		t.Fatal(err)
	}
	fresh, err := LoadOrCreate(dir2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if Fingerprint(fresh.Certificate[0]) == Fingerprint(cert.Certificate[0]) {
		t.Error("two created certificates share a fingerprint")
	}
}

func TestLoadOrCreateRejectsGarbage(t *testing.T) {
	dir := t.TempDir()
	if _, err := LoadOrCreate(dir, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, KeyFile), []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir, nil); err == nil || !strings.Contains(err.Error(), KeyFile) {
		t.Fatalf("corrupt key: err = %v, want an error naming %s", err, KeyFile)
	}
	if err := os.WriteFile(filepath.Join(dir, CertFile), make([]byte, maxPEMSize+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreate(dir, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("oversized cert: err = %v", err)
	}
}

func TestParseFingerprint(t *testing.T) {
	const fp = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	upperColons := strings.ToUpper(fp[:2])
	for i := 2; i < len(fp); i += 2 {
		upperColons += ":" + strings.ToUpper(fp[i:i+2])
	}
	tests := []struct {
		in, want string
		ok       bool
	}{
		{fp, fp, true},
		{strings.ToUpper(fp), fp, true},
		{upperColons, fp, true},
		{" " + fp + "\n", fp, true},
		{"", "", false},
		{fp[:62], "", false},
		{fp + "00", "", false},
		{"zz" + fp[2:], "", false},
	}
	for _, tt := range tests {
		got, err := ParseFingerprint(tt.in)
		if tt.ok != (err == nil) || got != tt.want {
			t.Errorf("ParseFingerprint(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidFingerprint) {
			t.Errorf("ParseFingerprint(%q) error %v does not wrap ErrInvalidFingerprint", tt.in, err)
		}
	}
}

// handshake runs a real TLS handshake over loopback TCP (a synchronous
// net.Pipe would deadlock when one side aborts mid-flight) and returns the
// client's error and connection state.
func handshake(t *testing.T, server *tls.Config, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = tls.Server(c, server).HandshakeContext(ctx)
	}()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl := tls.Client(raw, client)
	err = cl.HandshakeContext(ctx)
	raw.Close()
	<-done
	return cl.ConnectionState(), err
}

func serverConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"quics/1"}}
}

func TestPinnedClientConfig(t *testing.T) {
	good, err := LoadOrCreate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadOrCreate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	goodFP := Fingerprint(good.Certificate[0])
	otherFP := Fingerprint(other.Certificate[0])

	cs, err := handshake(t, serverConfig(good), PinnedClientConfig(goodFP, "quics/1"))
	if err != nil {
		t.Fatalf("pinned to the right cert: %v", err)
	}
	if cs.Version != tls.VersionTLS13 || cs.NegotiatedProtocol != "quics/1" {
		t.Errorf("version %x protocol %q, want TLS 1.3 and quics/1", cs.Version, cs.NegotiatedProtocol)
	}
	if got := PeerFingerprint(cs); got != goodFP {
		t.Errorf("PeerFingerprint = %s, want %s", got, goodFP)
	}

	upper := strings.ToUpper(goodFP)
	if _, err := handshake(t, serverConfig(good), PinnedClientConfig(upper, "quics/1")); err != nil {
		t.Errorf("upper-case pin refused: %v", err)
	}

	_, err = handshake(t, serverConfig(other), PinnedClientConfig(goodFP, "quics/1"))
	if !errors.Is(err, ErrFingerprintMismatch) {
		t.Fatalf("pinned to another cert: err = %v, want ErrFingerprintMismatch", err)
	}
	if !strings.Contains(err.Error(), goodFP) || !strings.Contains(err.Error(), otherFP) {
		t.Errorf("mismatch error %q does not show both fingerprints", err)
	}

	if _, err := handshake(t, serverConfig(good), PinnedClientConfig("not-a-fingerprint", "quics/1")); !errors.Is(err, ErrFingerprintMismatch) {
		t.Errorf("malformed pin: err = %v, want ErrFingerprintMismatch", err)
	}

	cs, err = handshake(t, serverConfig(other), PinnedClientConfig("", "quics/1"))
	if err != nil {
		t.Fatalf("trust on first use: %v", err)
	}
	if got := PeerFingerprint(cs); got != otherFP {
		t.Errorf("trust on first use saw %s, want %s", got, otherFP)
	}
	if PeerFingerprint(tls.ConnectionState{}) != "" {
		t.Error("PeerFingerprint of no certificate is not empty")
	}
}

func TestPinnedClientConfigRefusesTLS12(t *testing.T) {
	good, err := LoadOrCreate(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := serverConfig(good)
	srv.MaxVersion = tls.VersionTLS12
	if _, err := handshake(t, srv, PinnedClientConfig(Fingerprint(good.Certificate[0]), "quics/1")); err == nil {
		t.Fatal("handshake with a TLS 1.2 server succeeded")
	}
}

func BenchmarkFingerprint(b *testing.B) {
	cert, err := LoadOrCreate(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	der := cert.Certificate[0]
	b.SetBytes(int64(len(der)))
	for b.Loop() {
		Fingerprint(der)
	}
}

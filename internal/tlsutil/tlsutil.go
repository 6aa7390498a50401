package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/quic-s/quics/internal/atomicfile"
)

// File names inside the directory given to LoadOrCreate.
const (
	CertFile = "cert.pem"
	KeyFile  = "key.pem"
)

// Validity is how long a created certificate is valid. Clients pin the
// fingerprint, not a chain, so expiry only matters to tools that inspect it.
const Validity = 10 * 365 * 24 * time.Hour

// maxPEMSize bounds what LoadOrCreate reads: a P-256 pair is well under 2 KiB.
const maxPEMSize = 64 << 10

var (
	// ErrFingerprintMismatch means the server presented a certificate other than
	// the pinned one.
	ErrFingerprintMismatch = errors.New("tlsutil: server certificate fingerprint mismatch")
	// ErrInvalidFingerprint means a string is not 32 bytes of hex.
	ErrInvalidFingerprint = errors.New("tlsutil: invalid fingerprint")
	// ErrIncomplete means the directory holds a certificate without its key.
	ErrIncomplete = errors.New("tlsutil: incomplete certificate files")
)

// LoadOrCreate returns the certificate kept in dir, creating a self-signed
// one for localhost, 127.0.0.1, ::1 and hosts when dir has none. hosts are
// DNS names or IP addresses; they only matter when the certificate is
// created. The leaf DER is cert.Certificate[0] (its [Fingerprint] is the
// server's identity) and cert.Leaf is parsed.
func LoadOrCreate(dir string, hosts []string) (tls.Certificate, error) {
	certPath := filepath.Join(dir, CertFile)
	keyPath := filepath.Join(dir, KeyFile)
	certPEM, certErr := readBounded(certPath)
	keyPEM, keyErr := readBounded(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("tlsutil: load %s and %s: %w", certPath, keyPath, err)
		}
		return cert, nil
	case certErr == nil && errors.Is(keyErr, fs.ErrNotExist):
		return tls.Certificate{}, fmt.Errorf("%w: %s exists but %s does not", ErrIncomplete, certPath, keyPath)
	case certErr != nil && !errors.Is(certErr, fs.ErrNotExist):
		return tls.Certificate{}, certErr
	case keyErr != nil && !errors.Is(keyErr, fs.ErrNotExist):
		return tls.Certificate{}, keyErr
	}
	// No cert.pem: nobody can have pinned a key.pem left alone by a crash,
	// so a fresh pair replaces it.
	return create(dir, hosts)
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMSize+1))
	if err != nil {
		return nil, fmt.Errorf("tlsutil: read %s: %w", path, err)
	}
	if len(b) > maxPEMSize {
		return nil, fmt.Errorf("tlsutil: %s is larger than %d bytes", path, maxPEMSize)
	}
	return b, nil
}

func create(dir string, hosts []string) (tls.Certificate, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: create %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "quics server", Organization: []string{"quics"}},
		NotBefore:             now.Add(-time.Hour), // tolerate clients whose clock is a little behind
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	tmpl.DNSNames, tmpl.IPAddresses = subjectAltNames(hosts)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: encode key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// Key first: cert.pem is what marks the pair as complete.
	if err := atomicfile.WriteFile(filepath.Join(dir, KeyFile), keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, CertFile), certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsutil: created pair does not load: %w", err)
	}
	return cert, nil
}

// subjectAltNames splits hosts into DNS names and IPs, always including the
// loopback names, without duplicates.
func subjectAltNames(hosts []string) ([]string, []net.IP) {
	dns := []string{"localhost"}
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			if v4 := ip.To4(); v4 != nil {
				ip = v4
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if !slices.Contains(dns, h) {
			dns = append(dns, h)
		}
	}
	return dns, ips
}

// Fingerprint returns the lower-case hex SHA-256 of a certificate's DER
// bytes: the identity users compare and pin.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

// PeerFingerprint returns the fingerprint of the leaf certificate the peer
// presented on a finished connection, or "" if it presented none. A client
// that connected with an empty pin stores this value.
func PeerFingerprint(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return Fingerprint(cs.PeerCertificates[0].Raw)
}

// ParseFingerprint normalizes a fingerprint a user typed: hex digits in any
// case, optionally in colon-separated pairs as some tools print them.
func ParseFingerprint(s string) (string, error) {
	norm := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if len(norm) != hex.EncodedLen(sha256.Size) {
		return "", fmt.Errorf("%w: %q has %d hex digits, want %d", ErrInvalidFingerprint, s, len(norm), hex.EncodedLen(sha256.Size))
	}
	if _, err := hex.DecodeString(norm); err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrInvalidFingerprint, s, err)
	}
	return norm, nil
}

// PinnedClientConfig returns a TLS 1.3 client configuration offering the
// application protocol alpn that accepts exactly the server certificate
// whose [Fingerprint] is fingerprint (as accepted by [ParseFingerprint]).
// An empty fingerprint accepts any certificate (trust on first use; read it
// back with [PeerFingerprint]). A malformed fingerprint matches nothing, so
// every handshake fails with [ErrFingerprintMismatch]; validate user input
// with ParseFingerprint first.
func PinnedClientConfig(fingerprint, alpn string) *tls.Config {
	tofu := fingerprint == ""
	var want []byte
	if !tofu {
		if norm, err := ParseFingerprint(fingerprint); err == nil {
			want, _ = hex.DecodeString(norm)
		}
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{alpn},
		// There is no CA to verify against: the pin below replaces chain
		// and host name verification.
		InsecureSkipVerify: true, //nolint:gosec // replaced by fingerprint pinning in VerifyConnection
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: server presented no certificate", ErrFingerprintMismatch)
			}
			if tofu {
				return nil
			}
			got := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if len(want) == sha256.Size && subtle.ConstantTimeCompare(got[:], want) == 1 {
				return nil
			}
			return fmt.Errorf("%w: server presented %s, pinned %s",
				ErrFingerprintMismatch, hex.EncodeToString(got[:]), fingerprint)
		},
	}
}

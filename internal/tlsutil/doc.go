// Package tlsutil gives the quics server its own TLS identity and lets clients
// trust it without a certificate authority, by pinning its fingerprint.
//
// # Server identity
//
// [LoadOrCreate] keeps a self-signed certificate in a directory (the server's
// data dir "tls/"). The first run creates an ECDSA P-256 key and a
// certificate valid for ten years for localhost, 127.0.0.1, ::1 and the host
// names or addresses the operator gives; every later run loads the same
// pair, so the fingerprint clients pinned stays valid. The files are
//
//	cert.pem   the certificate, PEM "CERTIFICATE", mode 0644
//	key.pem    the private key, PEM "PRIVATE KEY" (PKCS #8), mode 0600
//
// in a directory created with mode 0700. Each file is written to a
// temporary file, fsynced and renamed into place, key first: a crash leaves
// either no cert.pem (and the pair is created again) or a complete pair.
// A cert.pem without its key is an error, never silently replaced, because
// replacing it would change the identity clients pinned.
// Callers serialize calls for one directory (the server holds its data
// directory's lock).
//
// # Fingerprints and pinning
//
// A [Fingerprint] is the lower-case hex SHA-256 of the leaf certificate's
// DER bytes: 64 hex digits, what `quics` prints and what `qic --fingerprint`
// takes ([ParseFingerprint] also accepts upper case and colon-separated
// pairs). [PinnedClientConfig] builds a TLS 1.3 client configuration that
// skips CA verification and instead accepts exactly the pinned leaf
// (constant-time comparison); any other certificate fails the handshake
// with an error wrapping [ErrFingerprintMismatch] that shows both
// fingerprints.
//
// # Trust on first use
//
// With an empty fingerprint, [PinnedClientConfig] accepts any certificate.
// The client then reads what it saw from the finished connection with
// [PeerFingerprint] and stores it; every later connection pins it. The
// fingerprint is read from the connection state rather than recorded by the
// shared configuration, so concurrent dials cannot mix up what they saw.
package tlsutil

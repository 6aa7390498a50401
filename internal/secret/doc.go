// Package secret hashes and verifies the secrets quics keeps: root
// passwords and client tokens. Only hashes are stored; a stolen database
// must not hand out credentials.
//
// # Algorithm
//
// Secrets are hashed with argon2id (RFC 9106), a memory-hard function: each
// guess costs an attacker the same memory and time it costs the server.
// A fresh random salt per hash makes equal secrets hash differently.
//
// # Encoding
//
// A hash is stored in the PHC string format used by the reference argon2
// implementation:
//
//	$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>
//
// m is memory in KiB, t the number of passes, p the parallelism; salt and
// hash are unpadded standard base64. Because the parameters travel with the
// hash, they can be raised later: old hashes still verify with the
// parameters they were made with, and [NeedsRehash] tells a caller to store
// a stronger hash the next time it sees the secret.
//
// # Parameters
//
// [PasswordParams] follow RFC 9106's second recommended option (t=3,
// 64 MiB, p=4) because passwords are chosen by people and can be guessed.
// [TokenParams] are much lighter: tokens come from [NewToken], 256 bits from
// crypto/rand, which no amount of guessing will find, so the hash only has
// to be one-way, and token checks happen on every connection.
//
// # Untrusted input
//
// [Verify] parses the encoded string with bounds (total length, salt and
// hash lengths, and a ceiling on m, t and p) before running argon2, so a
// tampered record cannot make the server allocate gigabytes or spin for
// minutes. The final comparison is constant-time.
package secret

package secret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the argon2id cost parameters of a hash.
type Params struct {
	// Time is the number of passes over memory.
	Time uint32
	// MemoryKiB is the memory used, in KiB.
	MemoryKiB uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen is the length of the random salt, in bytes.
	SaltLen uint32
	// KeyLen is the length of the derived hash, in bytes.
	KeyLen uint32
}

// PasswordParams protect root passwords, which people choose and attackers
// can guess: RFC 9106's second recommended option.
var PasswordParams = Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 4, SaltLen: 16, KeyLen: 32}

// TokenParams protect client tokens. A token is 256 random bits, so no
// dictionary helps and the cost only slows down every connection; the hash
// just has to be one-way.
var TokenParams = Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1, SaltLen: 16, KeyLen: 32}

// Bounds on what Hash accepts and Verify parses. The ceilings keep a
// tampered record from costing the server more than a few times the
// strongest parameters we use.
const (
	MaxSecretLen  = 1024      // bytes of a password or token
	MaxEncodedLen = 512       // bytes of an encoded hash
	MaxTime       = 16        // passes
	MaxMemoryKiB  = 256 << 10 // 256 MiB
	MaxThreads    = 16
	MinSaltLen    = 8
	MaxSaltLen    = 64
	MinKeyLen     = 16
	MaxKeyLen     = 64
)

// TokenBytes is the number of random bytes in a token from NewToken.
const TokenBytes = 32

const (
	algorithm = "argon2id"
	version   = argon2.Version // 0x13 = 19
)

var (
	// ErrMalformed is returned for an encoded hash that does not parse.
	ErrMalformed = errors.New("secret: malformed hash")
	// ErrParams is returned for cost parameters outside the accepted bounds.
	ErrParams = errors.New("secret: parameters out of bounds")
	// ErrSecretTooLong is returned for a secret longer than MaxSecretLen.
	ErrSecretTooLong = errors.New("secret: secret too long")
)

// Validate reports whether p is within the bounds Hash and Verify accept.
func (p Params) Validate() error {
	switch {
	case p.Time < 1 || p.Time > MaxTime:
		return fmt.Errorf("%w: t=%d not in [1, %d]", ErrParams, p.Time, MaxTime)
	case p.Threads < 1 || p.Threads > MaxThreads:
		return fmt.Errorf("%w: p=%d not in [1, %d]", ErrParams, p.Threads, MaxThreads)
	case p.MemoryKiB < 8*uint32(p.Threads) || p.MemoryKiB > MaxMemoryKiB:
		// argon2 needs at least 8 KiB per lane.
		return fmt.Errorf("%w: m=%d not in [%d, %d]", ErrParams, p.MemoryKiB, 8*uint32(p.Threads), MaxMemoryKiB)
	case p.SaltLen < MinSaltLen || p.SaltLen > MaxSaltLen:
		return fmt.Errorf("%w: salt length %d not in [%d, %d]", ErrParams, p.SaltLen, MinSaltLen, MaxSaltLen)
	case p.KeyLen < MinKeyLen || p.KeyLen > MaxKeyLen:
		return fmt.Errorf("%w: key length %d not in [%d, %d]", ErrParams, p.KeyLen, MinKeyLen, MaxKeyLen)
	}
	return nil
}

// Hash returns the PHC-encoded argon2id hash of secret under p, with a fresh
// random salt.
func Hash(secret string, p Params) (string, error) {
	if len(secret) > MaxSecretLen {
		return "", fmt.Errorf("%w: %d bytes, at most %d", ErrSecretTooLong, len(secret), MaxSecretLen)
	}
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("secret: read salt: %w", err)
	}
	key := idKey(secret, salt, p)
	return encode(p, salt, key), nil
}

// freeAfterKiB is the argon2 memory above which a hash hands its memory
// back at once.
const freeAfterKiB = 32 << 10

// idKey runs argon2id. Its memory (64 MiB for passwords) is garbage the
// moment it returns, but a GC cycle that ran meanwhile counted it as live
// and set the next heap goal from it: the server would then grow to twice
// that before collecting again. A forced collection right after resets
// the goal from what is really live and returns the pages; passwords are
// hashed rarely (registration, root creation), so its cost does not show.
func idKey(secret string, salt []byte, p Params) []byte {
	key := argon2.IDKey([]byte(secret), salt, p.Time, p.MemoryKiB, p.Threads, p.KeyLen)
	if p.MemoryKiB >= freeAfterKiB {
		debug.FreeOSMemory()
	}
	return key
}

// Verify reports whether secret matches the encoded hash. A wrong secret is
// (false, nil); an encoding that does not parse or has out-of-bounds
// parameters is an error, so a damaged record is not mistaken for a wrong
// password.
func Verify(secret, encoded string) (bool, error) {
	if len(secret) > MaxSecretLen {
		return false, fmt.Errorf("%w: %d bytes, at most %d", ErrSecretTooLong, len(secret), MaxSecretLen)
	}
	h, err := decode(encoded)
	if err != nil {
		return false, err
	}
	got := idKey(secret, h.salt, h.params)
	return subtle.ConstantTimeCompare(got, h.key) == 1, nil
}

// ParamsOf returns the parameters an encoded hash was made with.
func ParamsOf(encoded string) (Params, error) {
	h, err := decode(encoded)
	if err != nil {
		return Params{}, err
	}
	return h.params, nil
}

// NeedsRehash reports whether encoded was made with parameters other than
// p (or does not parse), so the caller should store a new hash the next
// time it holds the plain secret.
func NeedsRehash(encoded string, p Params) bool {
	got, err := ParamsOf(encoded)
	return err != nil || got != p
}

// NewToken returns a fresh client token: TokenBytes random bytes in
// unpadded base64url, safe in URLs, file names and config files.
func NewToken() (string, error) {
	b := make([]byte, TokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("secret: read token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

type hashed struct {
	params Params
	salt   []byte
	key    []byte
}

var b64 = base64.RawStdEncoding.Strict()

func encode(p Params, salt, key []byte) string {
	return fmt.Sprintf("$%s$v=%d$m=%d,t=%d,p=%d$%s$%s",
		algorithm, version, p.MemoryKiB, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// decode parses the canonical PHC form written by encode and nothing else:
// one spelling per hash keeps the parser small and the fuzz round trip
// exact.
func decode(encoded string) (hashed, error) {
	if len(encoded) > MaxEncodedLen {
		return hashed{}, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(encoded), MaxEncodedLen)
	}
	fields := strings.Split(encoded, "$")
	if len(fields) != 6 || fields[0] != "" {
		return hashed{}, fmt.Errorf("%w: want 5 '$'-separated fields", ErrMalformed)
	}
	if fields[1] != algorithm {
		return hashed{}, fmt.Errorf("%w: algorithm %q, want %q", ErrMalformed, fields[1], algorithm)
	}
	v, ok := cutNumber(fields[2], "v=")
	if !ok || v != version {
		return hashed{}, fmt.Errorf("%w: version field %q, want v=%d", ErrMalformed, fields[2], version)
	}
	params := strings.Split(fields[3], ",")
	if len(params) != 3 {
		return hashed{}, fmt.Errorf("%w: parameter field %q, want m=,t=,p=", ErrMalformed, fields[3])
	}
	m, okM := cutNumber(params[0], "m=")
	t, okT := cutNumber(params[1], "t=")
	p, okP := cutNumber(params[2], "p=")
	if !okM || !okT || !okP || p > 255 {
		return hashed{}, fmt.Errorf("%w: parameter field %q, want m=,t=,p=", ErrMalformed, fields[3])
	}
	salt, err := decodeB64(fields[4], MaxSaltLen)
	if err != nil {
		return hashed{}, fmt.Errorf("%w: salt: %w", ErrMalformed, err)
	}
	key, err := decodeB64(fields[5], MaxKeyLen)
	if err != nil {
		return hashed{}, fmt.Errorf("%w: hash: %w", ErrMalformed, err)
	}
	h := hashed{
		params: Params{Time: t, MemoryKiB: m, Threads: uint8(p), SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))},
		salt:   salt,
		key:    key,
	}
	if err := h.params.Validate(); err != nil {
		return hashed{}, err
	}
	return h, nil
}

// cutNumber parses name followed by a canonical decimal uint32 (no sign, no
// leading zero).
func cutNumber(s, name string) (uint32, bool) {
	digits, ok := strings.CutPrefix(s, name)
	if !ok || digits == "" || len(digits) > 10 || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<32-1 {
		return 0, false
	}
	return uint32(n), true
}

// decodeB64 decodes canonical unpadded base64 of at most maxLen bytes.
func decodeB64(s string, maxLen int) ([]byte, error) {
	if len(s) > b64.EncodedLen(maxLen) {
		return nil, fmt.Errorf("%d characters, at most %d", len(s), b64.EncodedLen(maxLen))
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		return nil, err
	}
	// The decoder skips CR and LF; re-encoding rejects them and any other
	// second spelling.
	if b64.EncodeToString(b) != s {
		return nil, errors.New("not canonical base64")
	}
	return b, nil
}

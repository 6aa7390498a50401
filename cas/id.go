package cas

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/zeebo/blake3"
)

// IDSize is the length in bytes of a chunk or file ID (BLAKE3-256).
const IDSize = 32

// MinPrefixLen is the shortest hex prefix accepted from a user, so that a
// prefix is very unlikely to be ambiguous in a real store.
const MinPrefixLen = 8

// ErrInvalidID is returned when a string is not a valid hex ID or prefix.
var ErrInvalidID = errors.New("cas: invalid id")

// ID names content by its BLAKE3-256 digest. It is comparable, so it can be a
// map key, and its zero value means "no content".
type ID [IDSize]byte

// Sum returns the ID of data.
func Sum(data []byte) ID {
	return ID(blake3.Sum256(data))
}

// String returns the lower-case hex form users see and type.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, for logs and human tables.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// Compare orders IDs bytewise, for sorting.
func (id ID) Compare(other ID) int { return bytes.Compare(id[:], other[:]) }

// MarshalText implements encoding.TextMarshaler so IDs appear as hex in JSON.
func (id ID) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(IDSize))
	hex.Encode(out, id[:])
	return out, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *ID) UnmarshalText(text []byte) error {
	parsed, err := ParseID(string(text))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// ParseID parses the full 64-digit hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != hex.EncodedLen(IDSize) {
		return id, fmt.Errorf("%w: %q has %d hex digits, want %d", ErrInvalidID, s, len(s), hex.EncodedLen(IDSize))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: %q: %w", ErrInvalidID, s, err)
	}
	return id, nil
}

// IDFromBytes copies a 32-byte slice into an ID.
func IDFromBytes(b []byte) (ID, error) {
	var id ID
	if len(b) != IDSize {
		return id, fmt.Errorf("%w: %d bytes, want %d", ErrInvalidID, len(b), IDSize)
	}
	copy(id[:], b)
	return id, nil
}

// Prefix is a user-typed hex prefix of an ID, as git accepts abbreviated
// commit hashes. An odd number of digits is allowed.
type Prefix struct {
	digits string // lower-case hex
}

// ParsePrefix validates a hex prefix of at least MinPrefixLen digits.
func ParsePrefix(s string) (Prefix, error) {
	if len(s) < MinPrefixLen || len(s) > hex.EncodedLen(IDSize) {
		return Prefix{}, fmt.Errorf("%w: prefix %q must have %d to %d hex digits", ErrInvalidID, s, MinPrefixLen, hex.EncodedLen(IDSize))
	}
	lower := make([]byte, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			lower[i] = c
		case c >= 'A' && c <= 'F':
			lower[i] = c + ('a' - 'A')
		default:
			return Prefix{}, fmt.Errorf("%w: prefix %q has a non-hex character at %d", ErrInvalidID, s, i)
		}
	}
	return Prefix{digits: string(lower)}, nil
}

// String returns the normalized hex digits.
func (p Prefix) String() string { return p.digits }

// Matches reports whether id starts with the prefix.
func (p Prefix) Matches(id ID) bool {
	full := id.String()
	return len(p.digits) <= len(full) && full[:len(p.digits)] == p.digits
}

// Bytes returns the whole bytes the prefix fixes, for a key-range scan; a
// trailing odd digit is left for Matches to check.
func (p Prefix) Bytes() []byte {
	b, _ := hex.DecodeString(p.digits[:len(p.digits)&^1]) // validated in ParsePrefix
	return b
}

// IDSet is a set of IDs.
type IDSet map[ID]struct{}

// NewIDSet returns a set holding ids.
func NewIDSet(ids ...ID) IDSet {
	s := make(IDSet, len(ids))
	for _, id := range ids {
		s[id] = struct{}{}
	}
	return s
}

// Has reports whether id is in the set.
func (s IDSet) Has(id ID) bool { _, ok := s[id]; return ok }

// Insert adds id to the set.
func (s IDSet) Insert(id ID) { s[id] = struct{}{} }

// Delete removes id from the set.
func (s IDSet) Delete(id ID) { delete(s, id) }

// List returns the IDs in ascending order.
func (s IDSet) List() []ID {
	out := make([]ID, 0, len(s))
	for id := range s {
		out = append(out, id)
	}
	slices.SortFunc(out, ID.Compare)
	return out
}

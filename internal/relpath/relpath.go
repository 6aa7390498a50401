package relpath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Limits of a sync path, in bytes.
const (
	MaxPathLen    = 4096
	MaxSegmentLen = 255
)

// ErrInvalidPath is wrapped by every error of [Check] and [Join].
var ErrInvalidPath = errors.New("relpath: invalid path")

// quoteLimit keeps error messages readable when a peer sends a 4 KiB path.
const quoteLimit = 128

// invalid builds the error for p; the message quotes p (shortened if long)
// so a log line shows exactly which bytes were refused.
func invalid(p, problem string) error {
	q := p
	if len(q) > quoteLimit {
		q = q[:quoteLimit]
		return fmt.Errorf("%w: %q... (%d bytes): %s", ErrInvalidPath, q, len(p), problem)
	}
	return fmt.Errorf("%w: %q: %s", ErrInvalidPath, q, problem)
}

// Check returns nil when p is a valid sync path (see the package
// documentation for the rule), else an error wrapping [ErrInvalidPath] that
// names the problem and the path.
func Check(p string) error {
	switch {
	case p == "":
		return invalid(p, "empty")
	case len(p) > MaxPathLen:
		return invalid(p, fmt.Sprintf("longer than %d bytes", MaxPathLen))
	case !utf8.ValidString(p):
		return invalid(p, "not valid UTF-8")
	case p[0] == '/':
		return invalid(p, "absolute")
	}
	start := 0
	for i := 0; i <= len(p); i++ {
		if i < len(p) {
			c := p[i]
			switch {
			case c < 0x20 || c == 0x7f:
				return invalid(p, fmt.Sprintf("control character %#02x at byte %d", c, i))
			case c == '\\':
				return invalid(p, fmt.Sprintf("backslash at byte %d", i))
			case c != '/':
				continue
			}
		}
		if err := checkSegment(p, p[start:i]); err != nil {
			return err
		}
		start = i + 1
	}
	return nil
}

func checkSegment(p, seg string) error {
	switch {
	case seg == "":
		return invalid(p, "empty segment (leading, trailing or double slash)")
	case seg == ".":
		return invalid(p, `"." segment`)
	case seg == "..":
		return invalid(p, `".." segment`)
	case len(seg) > MaxSegmentLen:
		return invalid(p, fmt.Sprintf("segment of %d bytes, longer than %d", len(seg), MaxSegmentLen))
	}
	return nil
}

// Join checks p and returns the local file name of p under base. The result
// is verified to lie strictly inside base even though a valid p cannot
// escape, so a bug in the rule cannot turn into a write outside a root.
// The errors never name base: they may travel to a peer.
func Join(base, p string) (string, error) {
	if err := Check(p); err != nil {
		return "", err
	}
	if base == "" {
		// An empty base would make the result relative to the working
		// directory, and on Windows "C:x" would become drive-relative.
		return "", invalid(p, "empty base directory")
	}
	cleanBase := filepath.Clean(base)
	joined := filepath.Join(cleanBase, filepath.FromSlash(p))
	prefix := cleanBase
	if !strings.HasSuffix(prefix, string(os.PathSeparator)) {
		prefix += string(os.PathSeparator)
	}
	if !strings.HasPrefix(joined, prefix) || len(joined) == len(prefix) {
		return "", invalid(p, "escapes its base directory")
	}
	return joined, nil
}

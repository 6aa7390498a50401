// Package duration parses the durations people type for retention, share
// expiry and gc margins: Go's time.ParseDuration, plus the units those are
// thought of in — whole weeks and days in front ("2w", "30d", "7d12h").
package duration

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const day = 24 * time.Hour

// Parse reads "1h30m", "30d", "7d12h", "2w", "2w3d".
func Parse(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration")
	}
	var total time.Duration
	rest := s
	for _, u := range []struct {
		suffix byte
		unit   time.Duration
	}{{'w', 7 * day}, {'d', day}} {
		i := strings.IndexByte(rest, u.suffix)
		if i <= 0 {
			continue
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("duration %q: %q is not a whole number", s, rest[:i])
		}
		if n < 0 || n > int64((1<<63-1-total)/u.unit) {
			return 0, fmt.Errorf("duration %q: %d%c is out of range", s, n, u.suffix)
		}
		total += time.Duration(n) * u.unit
		rest = rest[i+1:]
	}
	if rest == "" {
		return total, nil
	}
	r, err := time.ParseDuration(rest)
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	if r < 0 && total > 0 {
		return 0, fmt.Errorf("duration %q: whole days or weeks and a negative rest", s)
	}
	if total > 0 && r > (1<<63-1)-total {
		return 0, fmt.Errorf("duration %q is out of range", s)
	}
	return total + r, nil
}

package duration

import (
	"testing"
	"time"
)

func TestParseDays(t *testing.T) {
	day := 24 * time.Hour
	good := map[string]time.Duration{
		"90m": 90 * time.Minute, "1d": day, "7d12h": 7*day + 12*time.Hour, "2d30m": 2*day + 30*time.Minute,
		"0d": 0, " 3d ": 3 * day, "1.5h": 90 * time.Minute,
		"30d": 30 * day, "2w": 14 * day, "2w3d": 17 * day, "0": 0,
	}
	for in, want := range good {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "xd", "1.5d", "-1d", "1d-2h", "3days", "106752d", "1dd", "5"} {
		if got, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, got)
		}
	}
}

package cas

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestSumKnownVector(t *testing.T) {
	// BLAKE3-256 of the empty input, from the BLAKE3 reference vectors.
	const empty = "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
	if got := Sum(nil).String(); got != empty {
		t.Fatalf("Sum(nil) = %s, want %s", got, empty)
	}
	if Sum([]byte("a")) == Sum([]byte("b")) {
		t.Fatal("different inputs share an ID")
	}
}

func TestParseIDRoundTrip(t *testing.T) {
	id := Sum([]byte("quics"))
	got, err := ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(String()) = %v, %v", got, err)
	}
	upper, err := ParseID(strings.ToUpper(id.String()))
	if err != nil || upper != id {
		t.Fatalf("ParseID of upper-case hex = %v, %v", upper, err)
	}
	if id.Short() != id.String()[:8] {
		t.Fatalf("Short = %q", id.Short())
	}
	if !(ID{}).IsZero() || id.IsZero() {
		t.Fatal("IsZero wrong")
	}
}

func TestParseIDRejects(t *testing.T) {
	valid := Sum(nil).String()
	for _, s := range []string{"", "abc", valid[:63], valid + "0", "g" + valid[1:], " " + valid[1:]} {
		if _, err := ParseID(s); !errors.Is(err, ErrInvalidID) {
			t.Errorf("ParseID(%q): err = %v, want ErrInvalidID", s, err)
		}
	}
}

func TestIDFromBytes(t *testing.T) {
	id := Sum([]byte("x"))
	got, err := IDFromBytes(id[:])
	if err != nil || got != id {
		t.Fatalf("IDFromBytes = %v, %v", got, err)
	}
	for _, n := range []int{0, 31, 33} {
		if _, err := IDFromBytes(make([]byte, n)); !errors.Is(err, ErrInvalidID) {
			t.Errorf("IDFromBytes(%d bytes): err = %v", n, err)
		}
	}
}

func TestIDJSON(t *testing.T) {
	id := Sum([]byte("json"))
	b, err := json.Marshal(map[string]ID{"id": id})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"` + id.String() + `"}`; string(b) != want {
		t.Fatalf("JSON = %s, want %s", b, want)
	}
	var back map[string]ID
	if err := json.Unmarshal(b, &back); err != nil || back["id"] != id {
		t.Fatalf("Unmarshal = %v, %v", back, err)
	}
	if err := json.Unmarshal([]byte(`{"id":"zz"}`), &back); !errors.Is(err, ErrInvalidID) {
		t.Fatalf("Unmarshal of bad hex: err = %v", err)
	}
}

func TestPrefix(t *testing.T) {
	id := Sum([]byte("prefix"))
	hex := id.String()
	tests := []struct {
		in      string
		ok      bool
		matches bool
		bytes   int
	}{
		{hex[:8], true, true, 4},
		{hex[:9], true, true, 4},
		{strings.ToUpper(hex[:12]), true, true, 6},
		{hex, true, true, 32},
		{hex[:7], false, false, 0},
		{hex + "0", false, false, 0},
		{hex[:7] + "x", false, false, 0},
		{"00000000", true, hex[:8] == "00000000", 4},
	}
	for _, tc := range tests {
		p, err := ParsePrefix(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParsePrefix(%q): err = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidID) {
				t.Errorf("ParsePrefix(%q): err = %v, want ErrInvalidID", tc.in, err)
			}
			continue
		}
		if p.Matches(id) != tc.matches {
			t.Errorf("%q.Matches = %v, want %v", tc.in, p.Matches(id), tc.matches)
		}
		if len(p.Bytes()) != tc.bytes || string(p.Bytes()) != string(id[:tc.bytes]) && tc.matches {
			t.Errorf("%q.Bytes = %x, want the first %d bytes of the id", tc.in, p.Bytes(), tc.bytes)
		}
		if p.String() != strings.ToLower(tc.in) {
			t.Errorf("String = %q", p.String())
		}
	}
}

func TestIDSet(t *testing.T) {
	a, b, c := Sum([]byte("a")), Sum([]byte("b")), Sum([]byte("c"))
	s := NewIDSet(a, b, a)
	if len(s) != 2 || !s.Has(a) || !s.Has(b) || s.Has(c) {
		t.Fatalf("NewIDSet = %v", s)
	}
	s.Insert(c)
	s.Delete(a)
	want := []ID{b, c}
	slices.SortFunc(want, ID.Compare)
	if got := s.List(); !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
}

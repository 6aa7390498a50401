package main

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// runQic runs the command tree with args and a fresh home, and returns
// its error and output.
func runQic(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newRootCmd()
	cmd.SetArgs(append([]string{"--home", t.TempDir()}, args...))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.Execute()
	return out.String(), err
}

// TestFlagValidation checks refusals that come before any connection:
// the home is fresh and not registered, so a command that got past its
// checks would fail with "not registered" instead.
func TestFlagValidation(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the error
	}{
		{"resolve without --keep", []string{"conflict", "resolve", "f.txt"}, `"keep" not set`},
		{"resolve with an empty --keep", []string{"conflict", "resolve", "f.txt", "--keep", " "}, "--keep is empty"},
		{"resolve without a path", []string{"conflict", "resolve", "--keep", "server"}, "accepts 1 arg"},
		{"retention without a policy", []string{"root", "set-retention", "r"}, "exactly one"},
		{"retention with two policies", []string{"root", "set-retention", "r", "--keep-all", "--keep-last", "3"}, "given: --keep-all, --keep-last"},
		{"retention keeping no version", []string{"root", "set-retention", "r", "--keep-last", "0"}, "at least 1"},
		{"retention with a bad duration", []string{"root", "set-retention", "r", "--keep-within", "soon"}, "--keep-within"},
		{"retention with a negative duration", []string{"root", "set-retention", "r", "--keep-within", "-5h"}, "positive"},
		{"retention --keep-all=false", []string{"root", "set-retention", "r", "--keep-all=false"}, "not a policy"},
		{"download with a 7-digit hash", []string{"history", "download", "f.txt", "abcdef1", "-o", "out"}, "at least 8 hex digits"},
		{"download with a non-hex hash", []string{"history", "download", "f.txt", "abcdefgh", "-o", "out"}, "non-hex"},
		{"download without -o", []string{"history", "download", "f.txt", "abcdef12"}, `"output" not set`},
		{"rollback with a 4-digit hash", []string{"history", "rollback", "f.txt", "abcd"}, "at least 8 hex digits"},
		{"rollback with a 65-digit hash", []string{"history", "rollback", "f.txt", strings.Repeat("a", 65)}, "at least 8 hex digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runQic(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("qic %v: %v (output %q), want an error with %q", tt.args, err, out, tt.want)
			}
		})
	}
	// Past the checks, the same commands need a server.
	for _, args := range [][]string{
		{"root", "set-retention", "r", "--keep-within", "30d"},
		{"history", "rollback", "f.txt", "ABCDEF12"},
		{"conflict", "resolve", "f.txt", "--keep", "server"},
	} {
		if _, err := runQic(t, args...); err == nil || !strings.Contains(err.Error(), "not registered") {
			t.Errorf("qic %v: %v, want not registered", args, err)
		}
	}
}

func TestRetentionPolicy(t *testing.T) {
	tests := []struct {
		o     retentionOptions
		kind  syncpb.SetRetentionRequest_Kind
		value int64
	}{
		{retentionOptions{keepAll: true, set: []string{"keep-all"}}, syncpb.SetRetentionRequest_KIND_KEEP_ALL, 0},
		{retentionOptions{keepLast: 5, set: []string{"keep-last"}}, syncpb.SetRetentionRequest_KIND_KEEP_LAST, 5},
		{retentionOptions{keepWithin: "36h", set: []string{"keep-within"}}, syncpb.SetRetentionRequest_KIND_KEEP_WITHIN, int64(36 * time.Hour)},
		{retentionOptions{keepWithin: "30d", set: []string{"keep-within"}}, syncpb.SetRetentionRequest_KIND_KEEP_WITHIN, int64(30 * 24 * time.Hour)},
		{retentionOptions{staggered: true, set: []string{"staggered"}}, syncpb.SetRetentionRequest_KIND_STAGGERED, 0},
	}
	for _, tt := range tests {
		kind, value, err := tt.o.policy()
		if err != nil || kind != tt.kind || value != tt.value {
			t.Errorf("%+v: %v %d %v, want %v %d", tt.o, kind, value, err, tt.kind, tt.value)
		}
	}
}

func entry(seq uint64, content string, deleted bool) *syncpb.HistoryEntry {
	e := &syncpb.HistoryEntry{Seq: seq, Deleted: deleted}
	if !deleted {
		id := cas.Sum([]byte(content))
		e.Hash = id[:]
	}
	return e
}

func TestPickVersion(t *testing.T) {
	a, b := cas.Sum([]byte("a")).String(), cas.Sum([]byte("b")).String()
	// Two contents sharing a prefix of 8 digits are made up by editing
	// one entry's hash.
	twin := entry(5, "b", false)
	twin.Hash[5] ^= 0xff
	versions := []*syncpb.HistoryEntry{entry(1, "a", false), entry(2, "b", false), entry(3, "", true), entry(4, "a", false), twin}
	pick := func(s string) (*syncpb.HistoryEntry, error) {
		p, err := parseHashPrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		return pickVersion(versions, p, "f.txt")
	}
	if v, err := pick(a[:8]); err != nil || v.GetSeq() != 4 {
		t.Errorf("prefix of a: %v, %v; want the newest version with it, 4", v, err)
	}
	if v, err := pick(strings.ToUpper(a)); err != nil || v.GetSeq() != 4 {
		t.Errorf("full upper-case hash of a: %v, %v", v, err)
	}
	if _, err := pick(b[:8]); err == nil || !strings.Contains(err.Error(), "ambiguous") {
		t.Errorf("prefix shared by two contents: %v, want ambiguous", err)
	}
	if v, err := pick(b[:12]); err != nil || v.GetSeq() != 2 {
		t.Errorf("longer prefix of b: %v, %v", v, err)
	}
	if _, err := pick("00000000"); err == nil || !strings.Contains(err.Error(), "no version") {
		t.Errorf("unknown prefix: %v", err)
	}
}

func TestCandidateFileName(t *testing.T) {
	id := cas.Sum([]byte("x"))
	h := hex.EncodeToString(id[:])
	tests := []struct {
		c    candidateListing
		want string
	}{
		{candidateListing{Side: "server", Hash: h, Name: "server-" + id.Short() + ".txt"}, "server-" + id.Short() + ".txt"},
		{candidateListing{Side: "client", ClientName: "laptop", Hash: h, Name: "laptop-" + id.Short() + ".txt"}, "laptop-" + id.Short() + ".txt"},
		// A name that is not one plain file name is made here instead.
		{candidateListing{Side: "client", ClientName: "laptop", Hash: h, Name: "../evil.txt"}, "laptop-" + id.Short() + ".txt"},
		{candidateListing{Side: "client", ClientName: "my pc", Hash: h, Name: ""}, "my_pc-" + id.Short() + ".txt"},
		{candidateListing{Side: "server", Hash: h, Name: ".."}, "server-" + id.Short() + ".txt"},
		{candidateListing{Side: "server", Hash: h, Name: client.TempPrefix + "x"}, "server-" + id.Short() + ".txt"},
	}
	for _, tt := range tests {
		if got := candidateFileName(tt.c, "dir/notes.txt"); got != tt.want {
			t.Errorf("candidateFileName(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestListingOfAndHints(t *testing.T) {
	me, other := "11111111-1111-1111-1111-111111111111", "22222222-2222-2222-2222-222222222222"
	h1, h2 := cas.Sum([]byte("1")), cas.Sum([]byte("2"))
	c := &syncpb.Conflict{Path: "dir/my notes.txt", Candidates: []*syncpb.ConflictCandidate{
		{Side: syncpb.ConflictCandidate_SIDE_SERVER, ClientId: me, ClientName: "a", Hash: h1[:], Size: 3, Mtime: 1e18, Name: "server-x.txt"},
		{Side: syncpb.ConflictCandidate_SIDE_CLIENT, ClientId: me, ClientName: "a", Hash: h2[:], Name: "a-y.txt"},
		{Side: syncpb.ConflictCandidate_SIDE_CLIENT, ClientId: other, ClientName: "b", Deleted: true, Name: "b-deleted"},
	}}
	l := listingOf(client.Root{Name: "shared", Dir: "/home/u/shared"}, c, me)
	if l.LocalPath != "/home/u/shared/dir/my notes.txt" || len(l.Candidates) != 3 {
		t.Fatalf("listing: %+v", l)
	}
	server, mine, theirs := l.Candidates[0], l.Candidates[1], l.Candidates[2]
	if server.Side != "server" || server.Mine || server.Hash != h1.String() || !server.MTime.Equal(time.Unix(0, 1e18)) {
		t.Errorf("server side: %+v (the head's author is not its own candidate)", server)
	}
	if mine.Side != "client" || !mine.Mine || theirs.Mine || !theirs.Deleted || theirs.Hash != "" {
		t.Errorf("client sides: %+v, %+v", mine, theirs)
	}
	want := `qic conflict resolve '/home/u/shared/dir/my notes.txt' --keep server|client|b|<hash>`
	if got := resolveHint(l); got != want {
		t.Errorf("hint %q, want %q", got, want)
	}
	var out bytes.Buffer
	printConflict(&out, l)
	for _, s := range []string{"server-x.txt", "a (this client)", "(deleted)", want} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("printed conflict lacks %q:\n%s", s, out.String())
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/a/b.txt": "/a/b.txt", "a b": "'a b'", "it's": `'it'\''s'`, "": "''", "$HOME": "'$HOME'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPendingConflictsMergesPassAndServer(t *testing.T) {
	roots := []client.Root{{Name: "r", Dir: "/d"}}
	open := []conflictListing{{Root: "r", Path: "a.txt", LocalPath: "/d/a.txt"}}
	res := client.PassResult{ConflictList: []client.Conflict{{Root: "r", Path: "a.txt"}, {Root: "r", Path: "b/c.txt"}}}
	got := pendingConflicts(res, open, roots)
	if len(got) != 2 || got[0].Path != "a.txt" || got[1].Path != "b/c.txt" || got[1].LocalPath != "/d/b/c.txt" {
		t.Fatalf("merged: %+v", got)
	}
}

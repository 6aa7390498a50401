package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
)

// qicConflict is an element of qic conflict list --json.
type qicConflict struct {
	Root       string         `json:"root"`
	Path       string         `json:"path"`
	LocalPath  string         `json:"local_path"`
	Candidates []qicCandidate `json:"candidates"`
}

type qicCandidate struct {
	Side       string    `json:"side"`
	ClientID   string    `json:"client_id"`
	ClientName string    `json:"client_name"`
	Hash       string    `json:"hash"`
	Size       int64     `json:"size"`
	MTime      time.Time `json:"mtime"`
	Deleted    bool      `json:"deleted"`
	Name       string    `json:"name"`
	Mine       bool      `json:"mine"`
}

// conflicts runs qic conflict list --json.
func (q *qicHome) conflicts() []qicConflict {
	q.t.Helper()
	out := q.must("conflict", "list", "--json")
	var list []qicConflict
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		q.t.Fatalf("qic conflict list --json printed %q: %v", out, err)
	}
	return list
}

// qicVersion is an element of qic history list --json.
type qicVersion struct {
	Seq        uint64    `json:"seq"`
	Hash       string    `json:"hash"`
	Size       int64     `json:"size"`
	Mode       uint32    `json:"mode"`
	Client     string    `json:"client"`
	ClientName string    `json:"client_name"`
	Time       time.Time `json:"time"`
	Deleted    bool      `json:"deleted"`
}

// history runs qic history list --json on the file rel of q's root.
func (q *qicHome) history(rel string, extra ...string) []qicVersion {
	q.t.Helper()
	out := q.must(append([]string{"history", "list", q.path(rel), "--json"}, extra...)...)
	var list []qicVersion
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		q.t.Fatalf("qic history list --json printed %q: %v", out, err)
	}
	return list
}

// in returns q bound to the (sub)test t, whose goroutine its failures
// must stop.
func (q *qicHome) in(t *testing.T) *qicHome {
	c := *q
	c.t = t
	return &c
}

// path is the local file name of rel in q's root.
func (q *qicHome) path(rel string) string { return filepath.Join(q.dir, filepath.FromSlash(rel)) }

// content returns the local file rel of q's root; ok is false when it
// does not exist.
func (q *qicHome) content(rel string) (data []byte, ok bool) {
	q.t.Helper()
	b, err := os.ReadFile(q.path(rel))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	if err != nil {
		q.t.Fatal(err)
	}
	return b, true
}

// syncExpect runs qic sync --json and fails unless it exits with code.
func (q *qicHome) syncExpect(code int) (syncJSON, string) {
	q.t.Helper()
	out, errOut, got := q.run("sync", "--json")
	if got != code {
		q.t.Fatalf("qic sync in %s: exit %d, want %d\nstdout: %s\nstderr: %s", q.home, got, code, out, errOut)
	}
	var s syncJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		q.t.Fatalf("qic sync --json printed %q: %v", out, err)
	}
	return s, errOut
}

func hashOf(data []byte) string { return cas.Sum(data).String() }

// makeConflict has first write rel, every home take it, then first and
// each of others edit it offline (others[i] writes edits[i+1]; nil
// deletes) and sync in that order: first's change is committed, each
// other's is refused as a conflict.
func makeConflict(t *testing.T, rel string, edits [][]byte, first *qicHome, others ...*qicHome) {
	t.Helper()
	first.write(rel, []byte("base of "+rel+"\n"), 0o644)
	first.sync()
	for _, o := range others {
		if s := o.sync(); s.FilesDownloaded != 1 {
			t.Fatalf("first pull of %s: %+v", rel, s)
		}
	}
	for i, q := range append([]*qicHome{first}, others...) {
		if edits[i] == nil {
			if err := os.Remove(q.path(rel)); err != nil {
				t.Fatal(err)
			}
		} else {
			q.write(rel, edits[i], 0o644)
		}
	}
	first.sync()
	for _, o := range others {
		if s, _ := o.syncExpect(3); s.Conflicts != 1 {
			t.Fatalf("conflicting sync of %s: %+v", rel, s)
		}
	}
}

// conflictOn returns the only conflict q lists, checking it is on rel.
func conflictOn(t *testing.T, q *qicHome, rel string) qicConflict {
	t.Helper()
	list := q.conflicts()
	if len(list) != 1 || list[0].Path != rel || list[0].Root != "shared" || list[0].LocalPath != q.path(rel) {
		t.Fatalf("conflicts listed in %s: %+v, want one on %s at %s", q.home, list, rel, q.path(rel))
	}
	return list[0]
}

// candidateBy returns the side of c written by the client named name.
func candidateBy(t *testing.T, c qicConflict, side, name string) qicCandidate {
	t.Helper()
	for _, cand := range c.Candidates {
		if cand.Side == side && cand.ClientName == name {
			return cand
		}
	}
	t.Fatalf("no %s side by %s in %+v", side, name, c.Candidates)
	return qicCandidate{}
}

// hasVersion reports whether history holds content.
func hasVersion(history []qicVersion, content []byte) bool {
	for _, v := range history {
		if !v.Deleted && v.Hash == hashOf(content) {
			return true
		}
	}
	return false
}

func TestQicConflictResolveEachKeepForm(t *testing.T) {
	pa, pb := pair(t)
	tests := []struct {
		name        string
		resolvesOnA bool
		keep        func(aEdit, bEdit []byte) string
		keepsB      bool // b's edit is the chosen side, else a's
	}{
		{"server", false, func(_, _ []byte) string { return "server" }, false},
		{"client", false, func(_, _ []byte) string { return "client" }, true},
		{"other client's name", true, func(_, _ []byte) string { return "b" }, true},
		{"hash prefix", true, func(aEdit, _ []byte) string { return hashOf(aEdit)[:10] }, false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := pa.in(t), pb.in(t)
			resolver := b
			if tt.resolvesOnA {
				resolver = a
			}
			rel := "dir/notes-" + string(rune('a'+i)) + ".txt"
			aEdit := []byte("a's edit of " + rel + "\n")
			bEdit := append([]byte("b's edit, offline, of "+rel+"\n"), randomBytes(uint64(i), 3000)...)
			makeConflict(t, rel, [][]byte{aEdit, bEdit}, a, b)

			// Both clients list it; each knows which side is its own.
			for _, q := range []*qicHome{a, b} {
				c := conflictOn(t, q, rel)
				if len(c.Candidates) != 2 {
					t.Fatalf("candidates: %+v", c.Candidates)
				}
				server, client := candidateBy(t, c, "server", "a"), candidateBy(t, c, "client", "b")
				if server.Hash != hashOf(aEdit) || server.Size != int64(len(aEdit)) || server.Mine || server.Deleted {
					t.Errorf("server side listed by %s: %+v", q.home, server)
				}
				if client.Hash != hashOf(bEdit) || client.Mine != (q == b) || client.MTime.IsZero() {
					t.Errorf("client side listed by %s: %+v", q.home, client)
				}
			}
			// a's own sync and status show the conflict too.
			if _, errOut := a.syncExpect(3); !strings.Contains(errOut, rel) || !strings.Contains(errOut, "qic conflict resolve") {
				t.Errorf("a's sync does not show the conflict: %s", errOut)
			}
			var st struct {
				ServerChecked bool `json:"server_checked"`
				Roots         []struct {
					Conflicts []string `json:"conflicts"`
				} `json:"roots"`
			}
			if err := json.Unmarshal([]byte(a.must("status", "--json")), &st); err != nil {
				t.Fatal(err)
			}
			if !st.ServerChecked || len(st.Roots) != 1 || len(st.Roots[0].Conflicts) != 1 || st.Roots[0].Conflicts[0] != rel {
				t.Errorf("a's status: %+v", st)
			}

			// Every side downloads under the server's name for it.
			out := filepath.Join(t.TempDir(), "sides")
			c := conflictOn(t, resolver, rel)
			resolver.must("conflict", "download", resolver.path(rel), "-o", out)
			for _, cand := range c.Candidates {
				got, err := os.ReadFile(filepath.Join(out, cand.Name))
				if err != nil || hashOf(got) != cand.Hash {
					t.Errorf("downloaded %s: %v, hash %s, want %s", cand.Name, err, hashOf(got), cand.Hash)
				}
			}
			if entries, _ := os.ReadDir(out); len(entries) != 2 {
				t.Errorf("download wrote %d files, want 2", len(entries))
			}
			if _, errOut, code := resolver.run("conflict", "download", resolver.path(rel), "-o", out); code != 1 || !strings.Contains(errOut, "exists") {
				t.Errorf("second download without --force: exit %d, %s", code, errOut)
			}
			resolver.must("conflict", "download", resolver.path(rel), "-o", out, "--force")

			// Resolve: the resolver's copy is the chosen one at once.
			chosen, loser := aEdit, bEdit
			if tt.keepsB {
				chosen, loser = bEdit, aEdit
			}
			resolver.must("conflict", "resolve", resolver.path(rel), "--keep", tt.keep(aEdit, bEdit))
			if got, _ := resolver.content(rel); !bytes.Equal(got, chosen) {
				t.Fatalf("resolver's copy after the resolution: %q", got)
			}
			// Both converge without a new conflict.
			for _, q := range []*qicHome{a, b} {
				if s, _ := q.syncExpect(0); s.Conflicts != 0 {
					t.Errorf("sync in %s after the resolution: %+v", q.home, s)
				}
				if got, _ := q.content(rel); !bytes.Equal(got, chosen) {
					t.Errorf("%s holds %q after the resolution", q.home, got)
				}
				if list := q.conflicts(); len(list) != 0 {
					t.Errorf("%s still lists %+v", q.home, list)
				}
			}
			if h := b.history(rel); !hasVersion(h, loser) || !hasVersion(h, chosen) {
				t.Errorf("history lacks a side: %+v", h)
			}
		})
	}
}

// A conflict between three devices; the two that lose converge without
// a new conflict, the one that was offline through the resolution
// included (its proposal is superseded).
func TestQicConflictThreeWay(t *testing.T) {
	a, b := pair(t)
	c := newQicHome(t, "c")
	cfg, err := os.ReadFile(filepath.Join(a.home, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var addr struct {
		ServerAddr string `json:"server_addr"`
	}
	if err := json.Unmarshal(cfg, &addr); err != nil {
		t.Fatal(err)
	}
	c.must("register", "--server", addr.ServerAddr, "--password", serverPassword, "--name", "c")
	c.must("root", "join", "shared", c.dir, "--root-password", rootPassword)

	edits := [][]byte{[]byte("a's\n"), []byte("b's, longer\n"), []byte("c's, the longest of all\n")}
	makeConflict(t, "three.txt", edits, a, b, c)
	conf := conflictOn(t, c, "three.txt")
	if len(conf.Candidates) != 3 {
		t.Fatalf("candidates: %+v", conf.Candidates)
	}
	mine := candidateBy(t, conf, "client", "c")
	if !mine.Mine || candidateBy(t, conf, "client", "b").Mine || mine.Name == "" {
		t.Errorf("c's listing: %+v", conf.Candidates)
	}
	human := c.must("conflict", "list")
	for _, want := range []string{"three.txt", "c (this client)", "--keep server|client|b|<hash>"} {
		if !strings.Contains(human, want) {
			t.Errorf("qic conflict list lacks %q:\n%s", want, human)
		}
	}

	a.must("conflict", "resolve", a.path("three.txt"), "--keep", "c")
	// b was away: its pending edit is in history now, so its proposal is
	// superseded and its copy replaced.
	s, errOut := b.syncExpect(0)
	if s.Conflicts != 0 || s.FilesDownloaded != 1 || !strings.Contains(errOut, "superseded") {
		t.Errorf("b's sync after the resolution: %+v\n%s", s, errOut)
	}
	c.syncExpect(0)
	for _, q := range []*qicHome{a, b, c} {
		if got, _ := q.content("three.txt"); !bytes.Equal(got, edits[2]) {
			t.Errorf("%s holds %q", q.home, got)
		}
	}
	h := a.history("three.txt")
	for i, e := range edits {
		if !hasVersion(h, e) {
			t.Errorf("edit %d is not in the history %+v", i, h)
		}
	}
}

// An edit against a deletion: the deletion wins, then a rollback by hash
// prefix brings the edit back on both.
func TestQicConflictDeleteVersusEdit(t *testing.T) {
	a, b := pair(t)
	bEdit := []byte("b edited what a deleted\n")
	makeConflict(t, "gone.txt", [][]byte{nil, bEdit}, a, b)
	conf := conflictOn(t, b, "gone.txt")
	server := candidateBy(t, conf, "server", "a")
	if !server.Deleted || server.Hash != "" {
		t.Errorf("server side: %+v, want the deletion", server)
	}
	out := filepath.Join(t.TempDir(), "sides")
	printed := b.must("conflict", "download", b.path("gone.txt"), "-o", out)
	if !strings.Contains(printed, "deleted the file") {
		t.Errorf("download output: %s", printed)
	}
	entries, _ := os.ReadDir(out)
	if len(entries) != 1 || entries[0].Name() != candidateBy(t, conf, "client", "b").Name {
		t.Fatalf("download wrote %v", entries)
	}

	b.must("conflict", "resolve", b.path("gone.txt"), "--keep", "server")
	if _, ok := b.content("gone.txt"); ok {
		t.Fatal("b's copy survived keeping the deletion")
	}
	a.syncExpect(0)
	b.syncExpect(0)
	h := a.history("gone.txt")
	if !hasVersion(h, bEdit) || !h[len(h)-1].Deleted {
		t.Fatalf("history: %+v", h)
	}

	a.must("history", "rollback", a.path("gone.txt"), hashOf(bEdit)[:8])
	if got, _ := a.content("gone.txt"); !bytes.Equal(got, bEdit) {
		t.Fatalf("a's copy after the rollback: %q", got)
	}
	b.syncExpect(0)
	if got, _ := b.content("gone.txt"); !bytes.Equal(got, bEdit) {
		t.Fatalf("b's copy after the rollback: %q", got)
	}
}

// A client that runs qic run hears of a conflict another client's change
// caused.
func TestQicRunIsToldOfConflicts(t *testing.T) {
	a, b := pair(t)
	a.write("told.txt", []byte("base\n"), 0o644)
	a.sync()
	b.sync()
	b.write("told.txt", []byte("b's offline edit\n"), 0o644)
	log := startProcess(t, "qic", "--home", a.home, "run")
	a.write("told.txt", []byte("a's edit, pushed by qic run\n"), 0o644)
	waitFor(t, "qic run to push a's edit", func() bool {
		out, _, code := b.run("history", "list", b.path("told.txt"), "--json")
		return code == 0 && strings.Count(out, `"seq"`) == 2
	})
	b.syncExpect(3)
	waitFor(t, "qic run to log the conflict", func() bool {
		for line := range strings.Lines(log.String()) {
			if strings.Contains(line, "see qic conflict list") && strings.Contains(line, "path=told.txt") {
				return true
			}
		}
		return false
	})
}

package server

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/conflict"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func clientOf(t testing.TB, sess *syncproto.Session) uuid.UUID {
	t.Helper()
	st, err := sessionOf(sess)
	if err != nil {
		t.Fatal(err)
	}
	return st.client
}

// conflicted is a root "docs" whose file doc.txt is in conflict: laptop
// wrote base, then edited it to server (the head); phone and tablet
// edited base too, and their proposals became candidates.
type conflicted struct {
	e                     *env
	laptop, phone, tablet *syncproto.Session
	base                  *syncpb.FileHead // the version everyone started from
	head                  *syncpb.FileHead // the server side
	server, phoneF, tabF  file
}

const docPath = "doc.txt"

func newConflicted(t *testing.T, e *env, threeWay bool) *conflicted {
	t.Helper()
	c := &conflicted{e: e}
	c.laptop, c.phone, c.tablet = e.client(t, "laptop"), e.client(t, "phone"), e.client(t, "tablet")
	e.root(t, c.laptop, "docs")
	e.join(t, c.phone, "docs")
	e.join(t, c.tablet, "docs")
	c.base = e.mustPush(t, c.laptop, "docs", docPath, nil, newFile(t, randomData(10, 30<<10)))
	c.server = newFile(t, randomData(11, 30<<10))
	c.head = e.mustPush(t, c.laptop, "docs", docPath, c.base, c.server)
	c.phoneF = newFile(t, randomData(12, 20<<10))
	if _, err := e.push(c.phone, "docs", docPath, c.base, c.phoneF); !errors.Is(err, syncproto.ErrConflict) {
		t.Fatalf("phone's proposal: %v, want a conflict", err)
	}
	if threeWay {
		c.tabF = newFile(t, randomData(13, 25<<10))
		if _, err := e.push(c.tablet, "docs", docPath, c.base, c.tabF); !errors.Is(err, syncproto.ErrConflict) {
			t.Fatalf("tablet's proposal: %v, want a conflict", err)
		}
	}
	if e.srv.views != nil {
		e.srv.views.wait()
	}
	return c
}

// versionHashes are the content hashes of a file's versions, oldest
// first ("deleted" for deletions).
func versionHashes(t testing.TB, e *env, root, p string) []string {
	t.Helper()
	r, err := e.srv.db.RootByName(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	vs, err := e.srv.db.Versions(context.Background(), r.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = "deleted"
		if !v.Deleted {
			out[i] = v.Hash.Short()
		}
	}
	return out
}

func TestResolveKeepForms(t *testing.T) {
	tests := []struct {
		name   string
		keep   func(c *conflicted) string
		by     func(c *conflicted) *syncproto.Session
		winner func(c *conflicted) file
		author func(c *conflicted) *syncproto.Session
	}{
		{"server", func(*conflicted) string { return "server" }, nil,
			func(c *conflicted) file { return c.server }, func(c *conflicted) *syncproto.Session { return c.laptop }},
		{"client, by the phone", func(*conflicted) string { return "client" }, func(c *conflicted) *syncproto.Session { return c.phone },
			func(c *conflicted) file { return c.phoneF }, func(c *conflicted) *syncproto.Session { return c.phone }},
		{"client name", func(*conflicted) string { return "tablet" }, nil,
			func(c *conflicted) file { return c.tabF }, func(c *conflicted) *syncproto.Session { return c.tablet }},
		{"client UUID", func(c *conflicted) string { return clientOf(t, c.phone).String() }, nil,
			func(c *conflicted) file { return c.phoneF }, func(c *conflicted) *syncproto.Session { return c.phone }},
		{"hash prefix", func(c *conflicted) string { return c.tabF.hash.String()[:8] }, nil,
			func(c *conflicted) file { return c.tabF }, func(c *conflicted) *syncproto.Session { return c.tablet }},
		{"full hash, upper case", func(c *conflicted) string { return strings.ToUpper(c.phoneF.hash.String()) }, nil,
			func(c *conflicted) file { return c.phoneF }, func(c *conflicted) *syncproto.Session { return c.phone }},
		{"hash of the server side", func(c *conflicted) string { return c.server.hash.String()[:12] }, nil,
			func(c *conflicted) file { return c.server }, func(c *conflicted) *syncproto.Session { return c.laptop }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			c := newConflicted(t, e, true)
			w := e.watch(t, c.laptop, &syncpb.WatchRequest{})
			e.subscribed(t, "docs", 1)
			by := uuid.Nil
			if tt.by != nil {
				by = clientOf(t, tt.by(c))
			}
			win := tt.winner(c)
			v, err := e.srv.Resolve(ctx, "docs", docPath, tt.keep(c), by)
			if err != nil {
				t.Fatal(err)
			}
			if v.Hash != win.hash || v.Deleted || v.Client != clientOf(t, tt.author(c)) || v.Seq <= c.head.GetSeq() {
				t.Errorf("resolution %+v, want %s by %s after seq %d", v, win.hash.Short(), clientOf(t, tt.author(c)), c.head.GetSeq())
			}
			// Every side's content is a version, and the winner is last.
			got := versionHashes(t, e, "docs", docPath)
			for _, f := range []file{c.server, c.phoneF, c.tabF} {
				if !strings.Contains(strings.Join(got, " "), f.hash.Short()) {
					t.Errorf("versions %v lack %s", got, f.hash.Short())
				}
			}
			if got[len(got)-1] != win.hash.Short() {
				t.Errorf("versions %v do not end with the winner %s", got, win.hash.Short())
			}
			if cs, err := e.srv.Conflicts(ctx, "docs", ""); err != nil || len(cs) != 0 {
				t.Errorf("conflicts after resolution: %+v, %v", cs, err)
			}
			// Every copy follows: MUST_SYNC, then FORCE_SYNC with the winner.
			ns := w.waitFor(t, "force-sync", func(ns []*syncpb.Notice) bool { return len(forceNotices(ns, docPath)) > 0 })
			if h := forceNotices(ns, docPath)[0].GetHead(); h.GetSeq() != v.Seq || !bytes.Equal(h.GetHash(), win.hash[:]) {
				t.Errorf("force-sync head %v, want seq %d", h, v.Seq)
			}
			if !hasNotice(syncpb.Notice_KIND_MUST_SYNC, docPath)(ns) {
				t.Error("no MUST_SYNC after the resolution")
			}
			e.srv.views.wait()
			if got := readFile(t, filepath.Join(e.dir, SyncDir, "docs", latestDir, docPath)); !bytes.Equal(got, win.data) {
				t.Error("latest view is not the winner")
			}
			if _, err := os.Stat(filepath.Join(e.dir, SyncDir, "docs", conflictDir, docPath)); !os.IsNotExist(err) {
				t.Errorf("conflict view still there: %v", err)
			}
		})
	}
}

func TestResolveThreeWayKeepsLosersInHistory(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := newConflicted(t, e, true)
	conflictView := filepath.Join(e.dir, SyncDir, "docs", conflictDir, docPath)
	if entries, err := os.ReadDir(conflictView); err != nil || len(entries) != 3 {
		t.Fatalf("conflict view before resolution: %v, %v", entries, err)
	}
	before := versionHashes(t, e, "docs", docPath)
	v, err := e.srv.Resolve(ctx, "docs", docPath, "phone", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	// The server side was a version already; the tablet's becomes one,
	// authored by the tablet, then the phone's is the head.
	want := append(before, c.tabF.hash.Short(), c.phoneF.hash.Short())
	if got := versionHashes(t, e, "docs", docPath); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("versions %v, want %v", got, want)
	}
	r, _ := e.srv.db.RootByName(ctx, "docs")
	loser, err := e.srv.db.Version(ctx, r.ID, docPath, v.Seq-1)
	if err != nil || loser.Client != clientOf(t, c.tablet) || loser.Hash != c.tabF.hash {
		t.Errorf("loser version %+v, %v", loser, err)
	}
	// The loser's content can be downloaded as a version.
	if got, err := e.download(t, c.laptop, "docs", docPath, c.tabF.hash[:]); err != nil || !bytes.Equal(got, c.tabF.data) {
		t.Errorf("download of the kept loser: %v", err)
	}
	e.srv.views.wait()
	if _, err := os.Stat(conflictView); !os.IsNotExist(err) {
		t.Errorf("conflict view after resolution: %v", err)
	}
	if got := readFile(t, filepath.Join(e.dir, SyncDir, "docs", latestDir, docPath)); !bytes.Equal(got, c.phoneF.data) {
		t.Error("latest view is not the phone's version")
	}
	// A second resolution finds nothing to resolve.
	if _, err := e.srv.Resolve(ctx, "docs", docPath, "server", uuid.Nil); !errors.Is(err, syncproto.ErrNotFound) || !strings.Contains(err.Error(), "no conflict") {
		t.Errorf("second resolution: %v", err)
	}
}

func TestResolveErrors(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := newConflicted(t, e, false)
	cases := []struct {
		name string
		root string
		path string
		keep string
		by   uuid.UUID
		want error
		text string
	}{
		{"no such root", "nope", docPath, "server", uuid.Nil, syncproto.ErrNotFound, "nope"},
		{"no conflict", "docs", "other.txt", "server", uuid.Nil, syncproto.ErrNotFound, "no conflict"},
		{"hostile path", "docs", "../x", "server", uuid.Nil, syncproto.ErrInvalidPath, ""},
		{"client without a caller", "docs", docPath, "client", uuid.Nil, syncproto.ErrBadRequest, "operator"},
		{"client that has no side", "docs", docPath, "client", clientOf(t, c.tablet), syncproto.ErrNotFound, "server ("},
		{"unknown name", "docs", docPath, "nobody", uuid.Nil, syncproto.ErrNotFound, "phone"},
		{"UUID of no side", "docs", docPath, uuid.NewString(), uuid.Nil, syncproto.ErrNotFound, "the sides are"},
		{"short prefix", "docs", docPath, c.phoneF.hash.String()[:6], uuid.Nil, syncproto.ErrBadRequest, "at least 8"},
		{"prefix of no side", "docs", docPath, strings.Repeat("0", 16), uuid.Nil, syncproto.ErrNotFound, "starting with"},
		{"empty keep", "docs", docPath, "", uuid.Nil, syncproto.ErrBadRequest, ""},
	}
	for _, tt := range cases {
		_, err := e.srv.Resolve(ctx, tt.root, tt.path, tt.keep, tt.by)
		if !errors.Is(err, tt.want) || !strings.Contains(fmt.Sprint(err), tt.text) {
			t.Errorf("%s: %v, want %v mentioning %q", tt.name, err, tt.want, tt.text)
		}
	}
	if cs, _ := e.srv.Conflicts(ctx, "docs", docPath); len(cs) != 1 {
		t.Errorf("a failed resolution touched the conflict: %+v", cs)
	}
}

// TestResolveSharedName: two devices with one name are told apart by ID.
func TestResolveSharedName(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner, twin1, twin2 := e.client(t, "owner"), e.client(t, "twin"), e.client(t, "twin")
	e.root(t, owner, "docs")
	e.join(t, twin1, "docs")
	e.join(t, twin2, "docs")
	base := e.mustPush(t, owner, "docs", "f", nil, newFile(t, []byte("base")))
	e.mustPush(t, owner, "docs", "f", base, newFile(t, []byte("server")))
	f2 := newFile(t, []byte("twin 2"))
	for _, p := range []struct {
		s *syncproto.Session
		f file
	}{{twin1, newFile(t, []byte("twin 1"))}, {twin2, f2}} {
		if _, err := e.push(p.s, "docs", "f", base, p.f); !errors.Is(err, syncproto.ErrConflict) {
			t.Fatal(err)
		}
	}
	_, err := e.srv.Resolve(ctx, "docs", "f", "twin", uuid.Nil)
	if !errors.Is(err, syncproto.ErrBadRequest) || !strings.Contains(err.Error(), clientOf(t, twin1).String()) ||
		!strings.Contains(err.Error(), clientOf(t, twin2).String()) {
		t.Fatalf("shared name: %v, want ErrBadRequest naming both", err)
	}
	v, err := e.srv.Resolve(ctx, "docs", "f", clientOf(t, twin2).String(), uuid.Nil)
	if err != nil || v.Hash != f2.hash {
		t.Fatalf("resolve by ID: %+v, %v", v, err)
	}
}

func TestResolveDeleteVersusEdit(t *testing.T) {
	ctx := context.Background()
	latestOf := func(e *env) string { return filepath.Join(e.dir, SyncDir, "docs", latestDir, "f.txt") }

	t.Run("client deleted, server edited", func(t *testing.T) {
		for _, keep := range []string{"server", "deleter"} {
			t.Run(keep, func(t *testing.T) {
				e := newEnv(t)
				editor, deleter := e.client(t, "editor"), e.client(t, "deleter")
				e.root(t, editor, "docs")
				e.join(t, deleter, "docs")
				base := e.mustPush(t, editor, "docs", "f.txt", nil, newFile(t, []byte("base")))
				edit := newFile(t, []byte("edited"))
				e.mustPush(t, editor, "docs", "f.txt", base, edit)
				if _, err := e.srv.Propose(ctx, deleter, deleteRequest("docs", "f.txt", base), nil); !errors.Is(err, syncproto.ErrConflict) {
					t.Fatalf("deletion against an edit: %v", err)
				}
				before := versionHashes(t, e, "docs", "f.txt")
				v, err := e.srv.Resolve(ctx, "docs", "f.txt", keep, uuid.Nil)
				if err != nil {
					t.Fatal(err)
				}
				got := versionHashes(t, e, "docs", "f.txt")
				e.srv.views.wait()
				_, statErr := os.Stat(latestOf(e))
				if keep == "server" {
					// The deletion has no content to keep: only the winner is new.
					if v.Deleted || v.Hash != edit.hash || len(got) != len(before)+1 || statErr != nil {
						t.Errorf("keep server: %+v, versions %v, view %v", v, got, statErr)
					}
					return
				}
				if !v.Deleted || v.Client != clientOf(t, deleter) || got[len(got)-1] != "deleted" || len(got) != len(before)+1 {
					t.Errorf("keep deletion: %+v, versions %v", v, got)
				}
				if !os.IsNotExist(statErr) {
					t.Errorf("latest view of a deleted file: %v", statErr)
				}
			})
		}
	})

	t.Run("server deleted, client edited", func(t *testing.T) {
		for _, keep := range []string{"server", "editor"} {
			t.Run(keep, func(t *testing.T) {
				e := newEnv(t)
				deleter, editor := e.client(t, "deleter"), e.client(t, "editor")
				e.root(t, deleter, "docs")
				e.join(t, editor, "docs")
				base := e.mustPush(t, deleter, "docs", "f.txt", nil, newFile(t, []byte("base")))
				if _, err := e.srv.Propose(ctx, deleter, deleteRequest("docs", "f.txt", base), nil); err != nil {
					t.Fatal(err)
				}
				edit := newFile(t, []byte("edited while it was deleted"))
				if _, err := e.push(editor, "docs", "f.txt", base, edit); !errors.Is(err, syncproto.ErrConflict) {
					t.Fatalf("edit against a deletion: %v", err)
				}
				cs, err := e.srv.Conflicts(ctx, "docs", "f.txt")
				if err != nil || len(cs) != 1 || cs[0].Candidates[0].Side != SideServer || !cs[0].Candidates[0].Deleted ||
					cs[0].Candidates[0].Client != clientOf(t, deleter) || cs[0].Candidates[0].ClientName != "deleter" {
					t.Fatalf("conflict %+v, %v", cs, err)
				}
				v, err := e.srv.Resolve(ctx, "docs", "f.txt", keep, uuid.Nil)
				if err != nil {
					t.Fatal(err)
				}
				got := versionHashes(t, e, "docs", "f.txt")
				e.srv.views.wait()
				if keep == "server" {
					// The edit is kept in history, the deletion stays the head.
					want := []string{newFile(t, []byte("base")).hash.Short(), "deleted", edit.hash.Short(), "deleted"}
					if !v.Deleted || v.Client != clientOf(t, deleter) || strings.Join(got, " ") != strings.Join(want, " ") {
						t.Errorf("keep the deletion: %+v, versions %v, want %v", v, got, want)
					}
					if _, err := os.Stat(latestOf(e)); !os.IsNotExist(err) {
						t.Errorf("latest view: %v", err)
					}
					return
				}
				if v.Deleted || v.Hash != edit.hash || v.Client != clientOf(t, editor) {
					t.Errorf("keep the edit: %+v", v)
				}
				if b := readFile(t, latestOf(e)); !bytes.Equal(b, edit.data) {
					t.Errorf("latest view %q", b)
				}
			})
		}
	})
}

// TestSupersededAfterResolution: a client that was offline while its
// conflict was resolved against it proposes its copy again, from its old
// base. It hears SUPERSEDED and nothing is committed; a genuinely new
// edit from it still conflicts.
func TestSupersededAfterResolution(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := newConflicted(t, e, false)
	v, err := e.srv.Resolve(ctx, "docs", docPath, "server", uuid.Nil)
	if err != nil {
		t.Fatal(err)
	}
	r, _ := e.srv.db.RootByName(ctx, "docs")
	before := versionHashes(t, e, "docs", docPath)

	resp, err := e.push(c.phone, "docs", docPath, c.base, c.phoneF)
	if err != nil {
		t.Fatalf("re-proposal: %v", err)
	}
	if resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_SUPERSEDED || resp.GetHead().GetSeq() != v.Seq ||
		!bytes.Equal(resp.GetHead().GetHash(), c.server.hash[:]) {
		t.Fatalf("re-proposal answered %v, want SUPERSEDED with the head at %d", resp, v.Seq)
	}
	after, _ := e.srv.db.RootByID(ctx, r.ID)
	if after.Seq != v.Seq || strings.Join(versionHashes(t, e, "docs", docPath), " ") != strings.Join(before, " ") {
		t.Errorf("a superseded proposal committed something: root seq %d, want %d", after.Seq, v.Seq)
	}
	if cs, _ := e.srv.Conflicts(ctx, "docs", ""); len(cs) != 0 {
		t.Errorf("a superseded proposal made a conflict: %+v", cs)
	}
	if n := e.srv.pins.Len(); n != 0 {
		t.Errorf("%d chunks still pinned", n)
	}

	// A new edit from the same stale base is a new conflict.
	fresh := newFile(t, randomData(99, 10<<10))
	if _, err := e.push(c.phone, "docs", docPath, c.base, fresh); !errors.Is(err, syncproto.ErrConflict) {
		t.Errorf("new edit from a stale base: %v, want a conflict", err)
	}
}

// TestSupersededDeletion: a deletion that was accepted and then undone
// is not proposed into a conflict again.
func TestSupersededDeletion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	f := newFile(t, []byte("content"))
	base := e.mustPush(t, a, "docs", "f", nil, f)
	del, err := e.srv.Propose(ctx, a, deleteRequest("docs", "f", base), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.srv.RestoreVersion(ctx, "docs", "f", f.hash.String()[:8], uuid.Nil); err != nil {
		t.Fatal(err)
	}
	resp, err := e.srv.Propose(ctx, b, deleteRequest("docs", "f", base), nil)
	if err != nil || resp.GetOutcome() != syncpb.CommitResponse_OUTCOME_SUPERSEDED {
		t.Fatalf("stale deletion: %v, %v; want SUPERSEDED", resp, err)
	}
	if resp.GetHead().GetSeq() <= del.GetHead().GetSeq() || resp.GetHead().GetDeleted() {
		t.Errorf("superseded answer carries %v, want the restored head", resp.GetHead())
	}
}

// TestResolveRacesPropose runs resolutions against concurrent commits on
// the head and concurrent new sides. Whatever the order, the resolution
// is the head when both are done, nothing proposed is lost (it is a
// version or a side of a new conflict), and no conflict is cleared with
// a side the resolution never saw.
func TestResolveRacesPropose(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	laptop, phone, tablet := e.client(t, "laptop"), e.client(t, "phone"), e.client(t, "tablet")
	e.root(t, laptop, "docs")
	e.join(t, phone, "docs")
	e.join(t, tablet, "docs")
	r, _ := e.srv.db.RootByName(ctx, "docs")
	for i := range 12 {
		p := fmt.Sprintf("race-%d.txt", i)
		base := e.mustPush(t, laptop, "docs", p, nil, newFile(t, []byte(p+" base")))
		head := e.mustPush(t, laptop, "docs", p, base, newFile(t, []byte(p+" server")))
		phoneF := newFile(t, []byte(p+" phone"))
		if _, err := e.push(phone, "docs", p, base, phoneF); !errors.Is(err, syncproto.ErrConflict) {
			t.Fatal(err)
		}
		edit := newFile(t, []byte(p+" laptop edits on"))
		tab := newFile(t, []byte(p+" tablet"))
		var wg sync.WaitGroup
		var v manifest.Version
		var resolveErr, editErr, tabErr error
		var editResp *syncpb.CommitResponse
		wg.Go(func() { v, resolveErr = e.srv.Resolve(ctx, "docs", p, "phone", uuid.Nil) })
		wg.Go(func() { editResp, editErr = e.push(laptop, "docs", p, head, edit) })
		wg.Go(func() { _, tabErr = e.push(tablet, "docs", p, base, tab) })
		wg.Wait()
		if resolveErr != nil {
			t.Fatalf("%s: resolve: %v", p, resolveErr)
		}
		if editErr != nil && !errors.Is(editErr, syncproto.ErrConflict) {
			t.Fatalf("%s: edit: %v", p, editErr)
		}
		if !errors.Is(tabErr, syncproto.ErrConflict) {
			t.Fatalf("%s: tablet: %v, want a conflict", p, tabErr)
		}
		h, err := e.srv.db.Head(ctx, r.ID, p)
		if err != nil || h.Seq != v.Seq || h.Hash != phoneF.hash {
			t.Fatalf("%s: head %+v (%v), want the resolution %+v", p, h, err, v)
		}
		if editErr == nil && (editResp.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED || editResp.GetHead().GetSeq() >= v.Seq) {
			t.Errorf("%s: the edit committed at %v, after the resolution at %d", p, editResp.GetHead(), v.Seq)
		}
		// Lost nowhere: each content is a version or a side.
		kept := strings.Join(versionHashes(t, e, "docs", p), " ")
		if cs, _ := e.srv.Conflicts(ctx, "docs", p); len(cs) == 1 {
			for _, cand := range cs[0].Candidates {
				kept += " " + cand.Hash.Short()
			}
		}
		for name, f := range map[string]file{"edit": edit, "tablet": tab, "phone": phoneF} {
			if !strings.Contains(kept, f.hash.Short()) {
				t.Errorf("%s: the %s content %s is neither a version nor a side: %s", p, name, f.hash.Short(), kept)
			}
		}
	}
}

func TestConflictsListing(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := newConflicted(t, e, true)
	if _, err := e.push(c.phone, "docs", "other/b.md", nil, newFile(t, []byte("b"))); err != nil {
		t.Fatal(err)
	}
	all, err := e.srv.Conflicts(ctx, "docs", "")
	if err != nil || len(all) != 1 || all[0].Path != docPath || len(all[0].Candidates) != 3 {
		t.Fatalf("conflicts %+v, %v", all, err)
	}
	one, err := e.srv.Conflicts(ctx, "docs", docPath)
	if err != nil || len(one) != 1 {
		t.Fatalf("conflict on %s: %+v, %v", docPath, one, err)
	}
	if none, err := e.srv.Conflicts(ctx, "docs", "other/b.md"); err != nil || len(none) != 0 {
		t.Errorf("conflict on a clean path: %+v, %v", none, err)
	}
	if _, err := e.srv.Conflicts(ctx, "nope", ""); !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("missing root: %v", err)
	}
	if _, err := e.srv.Conflicts(ctx, "docs", "/abs"); !errors.Is(err, syncproto.ErrInvalidPath) {
		t.Errorf("hostile path: %v", err)
	}
	srv, ph, tab := one[0].Candidates[0], one[0].Candidates[1], one[0].Candidates[2]
	if srv.Side != SideServer || srv.Hash != c.server.hash || srv.Client != clientOf(t, c.laptop) || srv.ClientName != "laptop" ||
		srv.BaseSeq != c.head.GetSeq() || srv.Size != uint64(len(c.server.data)) || srv.Created.IsZero() {
		t.Errorf("server side %+v", srv)
	}
	if ph.Side != SideClient || ph.Hash != c.phoneF.hash || ph.Client != clientOf(t, c.phone) || ph.ClientName != "phone" ||
		ph.BaseSeq != c.base.GetSeq() || ph.Mode != 0o644 || ph.MTime.IsZero() {
		t.Errorf("phone side %+v", ph)
	}
	// Names are those of the view's files.
	entries, err := os.ReadDir(filepath.Join(e.dir, SyncDir, "docs", conflictDir, docPath))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, en := range entries {
		files = append(files, en.Name())
	}
	for _, cand := range []CandidateInfo{srv, ph, tab} {
		if !strings.Contains(strings.Join(files, " "), cand.Name) {
			t.Errorf("candidate name %q not among the view's files %v", cand.Name, files)
		}
	}
	if want := conflict.CandidateName("tablet", c.tabF.hash, docPath); tab.Name != want {
		t.Errorf("tablet's name %q, want %q", tab.Name, want)
	}
}

func TestPickCandidate(t *testing.T) {
	a, b, c := uuid.New(), uuid.New(), uuid.New()
	id := func(hexPrefix string) cas.ID {
		var x cas.ID
		for i := range x {
			x[i] = 0x11
		}
		b, err := hex.DecodeString(hexPrefix)
		if err != nil {
			t.Fatal(err)
		}
		copy(x[:], b)
		return x
	}
	cands := []CandidateInfo{
		{Side: SideServer, Client: a, ClientName: "laptop", Hash: id("aaaaaaaa01")},
		{Side: SideClient, Client: b, ClientName: "phone", Hash: id("aaaaaaaa02")},
		{Side: SideClient, Client: c, ClientName: "deadbeef", Hash: id("bbbbbbbb01")},
		{Side: SideClient, Client: a, ClientName: "laptop", Deleted: true},
	}
	tests := []struct {
		keep string
		by   uuid.UUID
		want int
		err  error
	}{
		{"server", uuid.Nil, 0, nil},
		{"client", b, 1, nil},
		{"client", a, 3, nil}, // the laptop's own side, not the server side it wrote
		{"client", uuid.Nil, 0, syncproto.ErrBadRequest},
		{"client", uuid.New(), 0, syncproto.ErrNotFound},
		{b.String(), uuid.Nil, 1, nil},
		{strings.ToUpper(c.String()), uuid.Nil, 2, nil},
		{"phone", uuid.Nil, 1, nil},
		{"laptop", uuid.Nil, 3, nil},
		{"deadbeef", uuid.Nil, 2, nil}, // a name wins over a hash prefix
		{"bbbbbbbb", uuid.Nil, 2, nil},
		{"aaaaaaaa01", uuid.Nil, 0, nil},
		{"aaaaaaaa0", uuid.Nil, 0, syncproto.ErrBadRequest}, // ambiguous
		{"aaaaaaa", uuid.Nil, 0, syncproto.ErrBadRequest},   // too short
		{"cccccccc", uuid.Nil, 0, syncproto.ErrNotFound},
		{"tablet", uuid.Nil, 0, syncproto.ErrNotFound},
		{"", uuid.Nil, 0, syncproto.ErrBadRequest},
	}
	for _, tt := range tests {
		got, err := pickCandidate(cands, tt.keep, tt.by)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("pick %q by %s: %d, %v; want %v", tt.keep, tt.by, got, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("pick %q by %s: %d, %v; want %d", tt.keep, tt.by, got, err, tt.want)
		}
	}
	// The same content on two sides is one answer: the server's.
	same := []CandidateInfo{
		{Side: SideClient, Client: b, Hash: id("cccccccc")},
		{Side: SideServer, Hash: id("cccccccc")},
	}
	if got, err := pickCandidate(same, "cccccccc", uuid.Nil); err != nil || got != 1 {
		t.Errorf("same content on two sides: %d, %v", got, err)
	}
}

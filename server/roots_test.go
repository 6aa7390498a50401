package server

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func TestRegisterRoot(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	info := e.root(t, a, "docs")
	p := chunker.DefaultParams
	if info.GetName() != "docs" || info.GetOwner() != a.ClientID || !slices.Equal(info.GetMembers(), []string{a.ClientID}) ||
		info.GetChunking().GetMin() != uint32(p.Min) || info.GetChunking().GetAvg() != uint32(p.Avg) ||
		info.GetChunking().GetMax() != uint32(p.Max) || info.GetCreated() == 0 || info.GetSeq() != 0 {
		t.Errorf("root info %v", info)
	}
	tests := []struct {
		name, root, password string
		want                 error
	}{
		{"taken", "docs", "pw", syncproto.ErrExists},
		{"empty name", "", "pw", syncproto.ErrInvalidPath},
		{"slash", "a/b", "pw", syncproto.ErrInvalidPath},
		{"dotdot", "..", "pw", syncproto.ErrInvalidPath},
		{"dot", ".", "pw", syncproto.ErrInvalidPath},
		{"absolute", "/docs", "pw", syncproto.ErrInvalidPath},
		{"backslash", `a\b`, "pw", syncproto.ErrInvalidPath},
		{"NUL", "a\x00", "pw", syncproto.ErrInvalidPath},
		{"newline", "a\nb", "pw", syncproto.ErrInvalidPath},
		{"invalid UTF-8", "a\xff", "pw", syncproto.ErrInvalidPath},
		{"256 bytes", strings.Repeat("r", 256), "pw", syncproto.ErrInvalidPath},
		{"empty password", "new", "", syncproto.ErrBadRequest},
		{"huge password", "new", strings.Repeat("p", 2000), syncproto.ErrBadRequest},
		{"255 bytes", strings.Repeat("r", 255), "pw", nil},
		{"unicode and spaces", "Photos 2025 日本", "pw", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.srv.RegisterRoot(ctx, a, &syncpb.RegisterRootRequest{Name: tt.root, RootPassword: tt.password})
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestJoinLeaveList(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.root(t, a, "secret")

	join := func(name, pw string) (*syncpb.RootInfo, error) {
		return e.srv.JoinRoot(ctx, b, &syncpb.JoinRootRequest{Name: name, RootPassword: pw})
	}
	if _, err := join("docs", "wrong"); !errors.Is(err, syncproto.ErrBadPassword) {
		t.Errorf("wrong root password: err = %v", err)
	}
	if _, err := join("nope", "pw"); !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("unknown root: err = %v", err)
	}
	if _, err := join(strings.Repeat("x", 300), "pw"); !errors.Is(err, syncproto.ErrBadRequest) {
		t.Errorf("overlong name: err = %v", err)
	}
	info, err := join("docs", rootPassword("docs"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(info.GetMembers(), b.ClientID) || !slices.Contains(info.GetMembers(), a.ClientID) || info.GetOwner() != a.ClientID {
		t.Errorf("after join %v", info)
	}
	if _, err := join("docs", rootPassword("docs")); err != nil {
		t.Errorf("joining again: %v", err)
	}
	if _, err := join("docs", "wrong"); !errors.Is(err, syncproto.ErrBadPassword) {
		t.Errorf("a member with a wrong password: err = %v", err)
	}

	list := func(sess *syncproto.Session, remote bool) map[string]*syncpb.RootInfo {
		t.Helper()
		resp, err := e.srv.ListRoots(ctx, sess, &syncpb.ListRootsRequest{Remote: remote})
		if err != nil {
			t.Fatal(err)
		}
		out := make(map[string]*syncpb.RootInfo)
		for _, r := range resp.GetRoots() {
			out[r.GetName()] = r
		}
		return out
	}
	if got := list(b, false); len(got) != 1 || got["docs"] == nil || len(got["docs"].GetMembers()) != 2 {
		t.Errorf("b's roots %v", got)
	}
	remote := list(b, true)
	if len(remote) != 2 || remote["docs"].GetOwner() != a.ClientID {
		t.Errorf("remote list %v", remote)
	}
	if s := remote["secret"]; s == nil || s.GetOwner() != "" || len(s.GetMembers()) != 0 || s.GetChunking() != nil || s.GetSeq() != 0 {
		t.Errorf("a root b is not in shows details: %v", s)
	}
	if got := list(a, false); len(got) != 2 {
		t.Errorf("a's roots %v", got)
	}

	if err := e.srv.LeaveRoot(ctx, b, &syncpb.LeaveRootRequest{Name: "docs"}); err != nil {
		t.Fatal(err)
	}
	if got := list(b, false); len(got) != 0 {
		t.Errorf("after leaving, b's roots %v", got)
	}
	if _, err := e.srv.Heads(ctx, b, &syncpb.HeadsRequest{Root: "docs"}, func([]*syncpb.FileHead) error { return nil }); !errors.Is(err, syncproto.ErrForbidden) {
		t.Errorf("heads after leaving: err = %v", err)
	}
	if err := e.srv.LeaveRoot(ctx, b, &syncpb.LeaveRootRequest{Name: "docs"}); !errors.Is(err, syncproto.ErrForbidden) {
		t.Errorf("leaving twice: err = %v", err)
	}
}

// TestMembershipEnforced calls every root-scoped method as a client that
// is not a member, for a root that exists and one that does not: both
// are Forbidden, with the same message shape.
func TestMembershipEnforced(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner, stranger := e.client(t, "owner"), e.client(t, "stranger")
	e.root(t, owner, "docs")
	f := newFile(t, []byte("hello"))
	head := e.mustPush(t, owner, "docs", "f.txt", nil, f)
	// Make the chunk reachable for the stranger's session, so GetChunks
	// is refused for membership and not for reachability.
	stranger.State.(*session).markReachable(f.ids(), nil)

	methods := []struct {
		name string
		call func(root string) error
	}{
		{"HaveChunks", func(root string) error { _, err := e.srv.HaveChunks(ctx, stranger, root, f.ids()); return err }},
		{"PutChunks", func(root string) error {
			return e.srv.PutChunks(ctx, stranger, root, chunkSource(nil))
		}},
		{"Propose", func(root string) error {
			_, err := e.srv.Propose(ctx, stranger, request(root, "f.txt", head, newFile(t, []byte("x"))), nil)
			return err
		}},
		{"Heads", func(root string) error {
			_, err := e.srv.Heads(ctx, stranger, &syncpb.HeadsRequest{Root: root}, func([]*syncpb.FileHead) error { return nil })
			return err
		}},
		{"ChunkList", func(root string) error {
			_, _, err := e.srv.ChunkList(ctx, stranger, &syncpb.ChunkListRequest{Root: root, Path: "f.txt", Hash: f.hash[:]})
			return err
		}},
		{"GetChunks", func(root string) error {
			return e.srv.GetChunks(ctx, stranger, root, f.ids(), func(syncproto.Chunk) error { return nil })
		}},
		{"Watch", func(root string) error {
			return e.srv.Watch(ctx, stranger, &syncpb.WatchRequest{Cursors: []*syncpb.WatchRequest_Cursor{{Root: root}}},
				func(*syncpb.Notice) error { return nil })
		}},
		{"LeaveRoot", func(root string) error { return e.srv.LeaveRoot(ctx, stranger, &syncpb.LeaveRootRequest{Name: root}) }},
	}
	for _, m := range methods {
		for _, root := range []string{"docs", "missing"} {
			t.Run(m.name+"/"+root, func(t *testing.T) {
				err := m.call(root)
				if !errors.Is(err, syncproto.ErrForbidden) {
					t.Fatalf("err = %v, want ErrForbidden", err)
				}
				if msg := syncproto.WireError(err).Message; msg != `not a member of root "`+root+`"` {
					t.Errorf("message %q", msg)
				}
			})
		}
	}
	// Nothing the stranger did changed the root.
	heads, seq, _ := e.heads(t, owner, "docs", 0)
	if len(heads) != 1 || seq != 1 || !slices.Equal(heads["f.txt"].GetHash(), f.hash[:]) {
		t.Errorf("root changed by a non-member: %v at seq %d", heads, seq)
	}
	if e.srv.pins.Len() != 0 {
		t.Errorf("a non-member pinned %d chunks", e.srv.pins.Len())
	}
}

// A session's proposals reuse the membership check it passed, but never
// past a change: after leaving, after the root is removed and another
// takes its name, a proposal is refused or lands in the new root.
func TestProposalMembershipFollowsChanges(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	one := newFile(t, []byte("one"))
	e.mustPush(t, b, "docs", "one.txt", nil, one)
	e.mustPush(t, b, "docs", "two.txt", nil, newFile(t, []byte("two"))) // from the cache

	if err := e.srv.LeaveRoot(ctx, b, &syncpb.LeaveRootRequest{Name: "docs"}); err != nil {
		t.Fatal(err)
	}
	// Content already stored: a proposal alone, no upload to refuse first.
	if _, err := e.srv.Propose(ctx, b, request("docs", "copy.txt", nil, one), one.refs); !errors.Is(err, syncproto.ErrForbidden) {
		t.Fatalf("proposal after leaving: %v, want ErrForbidden", err)
	}

	// a's session cached root "docs"; the root goes and a new one takes
	// the name: a's next proposal goes to the new root.
	e.mustPush(t, a, "docs", "old.txt", nil, newFile(t, []byte("old")))
	old, err := e.srv.db.RootByName(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.RemoveRoot(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	e.root(t, a, "docs")
	e.mustPush(t, a, "docs", "new.txt", nil, newFile(t, []byte("new")))
	heads, _, _ := e.heads(t, a, "docs", 0)
	if len(heads) != 1 || heads["new.txt"] == nil {
		t.Fatalf("the new root holds %v, want new.txt alone", heads)
	}
}

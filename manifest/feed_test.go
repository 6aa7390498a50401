package manifest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"testing"
)

// TestChangesCatchUp commits N versions over a few paths and checks that a
// client catching up from any point sees each path changed since then
// once, at its latest seq, in seq order.
func TestChangesCatchUp(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	const paths, rounds = 5, 4
	heads := make(map[string]*Version)
	latest := make(map[string]uint64)
	var all []string // path committed at seq i+1
	for round := range rounds {
		for i := range paths {
			p := fmt.Sprint("dir/file", i)
			if round == rounds-1 && i%2 == 1 {
				continue // leave some paths behind in the last round
			}
			var v Version
			if round == 2 && i == 0 {
				v = mustCommit(t, e.db, deletion(root.ID, p, *heads[p], owner.ID))
			} else {
				v = mustCommit(t, e.db, proposal(root.ID, p, heads[p], newContent(fmt.Sprint(p, round)), owner.ID))
			}
			heads[p], latest[p] = &v, v.Seq
			all = append(all, p)
		}
	}
	r, err := e.db.RootByID(ctx, root.ID)
	if err != nil {
		t.Fatal(err)
	}
	for after := uint64(0); after <= r.Seq; after++ {
		got, err := e.db.Changes(ctx, root.ID, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Expected: every path whose latest change is after `after`.
		var want []Change
		for seq := after + 1; seq <= r.Seq; seq++ {
			p := all[seq-1]
			if latest[p] == seq {
				want = append(want, Change{Seq: seq, Path: p})
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("Changes(after %d) = %v, want %v", after, got, want)
		}
	}
	// Compaction: one feed entry per path, whatever the history.
	if n := countKeys(t, e, rootScope(prefixFeed, root.ID)); n != paths {
		t.Errorf("%d feed entries, want one per path (%d)", n, paths)
	}
}

func TestChangesPaging(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	const n = 7
	for i := range n {
		mustCommit(t, e.db, proposal(root.ID, fmt.Sprint("f", i), nil, newContent(fmt.Sprint(i)), owner.ID))
	}
	var got []Change
	after := uint64(0)
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("paging does not end")
		}
		page, err := e.db.Changes(ctx, root.ID, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 3 {
			t.Fatalf("page of %d, limit 3", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, page...)
		after = page[len(page)-1].Seq
	}
	if len(got) != n {
		t.Fatalf("paged through %d changes, want %d", len(got), n)
	}
	for i, c := range got {
		if c.Seq != uint64(i+1) || c.Path != fmt.Sprint("f", i) {
			t.Errorf("change %d = %+v", i, c)
		}
	}
	if _, err := e.db.Changes(ctx, 99, 0, 0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Changes(unknown root) err = %v", err)
	}
	// Roots do not see each other's changes.
	other := e.root(t, "other", owner)
	if got, err := e.db.Changes(ctx, other.ID, 0, 0); err != nil || len(got) != 0 {
		t.Errorf("Changes(other root) = %v, %v", got, err)
	}
}

func TestForEachVersion(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	r1, r2 := e.root(t, "one", owner), e.root(t, "two", owner)
	v := mustCommit(t, e.db, proposal(r1.ID, "a", nil, newContent("a1"), owner.ID))
	mustCommit(t, e.db, proposal(r1.ID, "a", &v, newContent("a2"), owner.ID))
	mustCommit(t, e.db, proposal(r1.ID, "b", nil, newContent("b1"), owner.ID))
	mustCommit(t, e.db, proposal(r2.ID, "a", nil, newContent("c1"), owner.ID))

	type visit struct {
		root RootID
		path string
		seq  uint64
	}
	collect := func(root RootID) []visit {
		var out []visit
		err := e.db.ForEachVersion(ctx, root, func(r RootID, path string, v Version) error {
			out = append(out, visit{r, path, v.Seq})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got, want := fmt.Sprint(collect(AllRoots)), fmt.Sprint([]visit{{1, "a", 1}, {1, "a", 2}, {1, "b", 3}, {2, "a", 1}}); got != want {
		t.Errorf("all roots: %s, want %s", got, want)
	}
	if got, want := fmt.Sprint(collect(r2.ID)), fmt.Sprint([]visit{{2, "a", 1}}); got != want {
		t.Errorf("root two: %s, want %s", got, want)
	}
	stop := errors.New("stop")
	calls := 0
	err := e.db.ForEachVersion(ctx, AllRoots, func(RootID, string, Version) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("callback error: %v after %d calls", err, calls)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.db.ForEachVersion(cctx, AllRoots, func(RootID, string, Version) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled walk err = %v", err)
	}
}

// goneAndHere makes a root with a deleted file "gone" and a file at here.
func goneAndHere(t *testing.T, e *testEnv, here string) Root {
	t.Helper()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	v := mustCommit(t, e.db, proposal(root.ID, "gone", nil, newContent("x"), owner.ID))
	mustCommit(t, e.db, deletion(root.ID, "gone", v, owner.ID))
	mustCommit(t, e.db, proposal(root.ID, here, nil, newContent("y"), owner.ID))
	return root
}

func TestListHeadsIncludesDeleted(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := goneAndHere(t, e, "here")
	got := map[string]bool{}
	err := e.db.ListHeads(ctx, root.ID, func(path string, h Head) error {
		got[path] = h.Deleted
		return nil
	})
	if err != nil || len(got) != 2 || !got["gone"] || got["here"] {
		t.Errorf("ListHeads = %v, %v; want gone deleted and here present", got, err)
	}
	if err := e.db.ListHeads(ctx, 99, func(string, Head) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("ListHeads(unknown root) err = %v", err)
	}
}

// Heads reads several heads at once, as Head would one by one.
func TestHeadsMatchHead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	root := goneAndHere(t, e, "a/here")
	paths := []string{"a/here", "never", "gone"}
	heads, found, err := e.db.Heads(ctx, root.ID, paths)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(found, []bool{true, false, true}) {
		t.Fatalf("found = %v, want [true false true]", found)
	}
	for _, i := range []int{0, 2} {
		want, err := e.db.Head(ctx, root.ID, paths[i])
		if err != nil || !reflect.DeepEqual(heads[i], want) {
			t.Errorf("Heads[%q] = %+v, Head = %+v (%v)", paths[i], heads[i], want, err)
		}
	}
	if _, _, err := e.db.Heads(ctx, root.ID, []string{"ok", "nul\x00"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Heads of a path with NUL: err = %v, want ErrInvalid", err)
	}
}

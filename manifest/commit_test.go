package manifest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/go-cmp/cmp"

	"github.com/quic-s/quics/cas"
)

// TestCommitCompareAndSwap walks the CAS rules. Each case runs on a fresh
// file whose history is built by setup and then proposes with a base.
func TestCommitCompareAndSwap(t *testing.T) {
	e := newEnv(t)
	owner := e.client(t, "owner")
	root := e.root(t, "cas", owner)
	a, b, c := newContent("aaa"), newContent("bbb"), newContent("ccc")

	type base struct {
		seq  uint64
		hash cas.ID
	}
	for _, tc := range []struct {
		name string
		// setup commits a history and returns the base to propose on.
		setup   func(t *testing.T, path string) base
		deleted bool
		wantErr bool
	}{
		{"new file, zero base", func(*testing.T, string) base { return base{} }, false, false},
		{"new file, non-zero base seq", func(*testing.T, string) base { return base{seq: 1} }, false, true},
		{"new file, non-zero base hash", func(*testing.T, string) base { return base{hash: a.hash} }, false, true},
		{"base equals head", func(t *testing.T, path string) base {
			v := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			return base{v.Seq, v.Hash}
		}, false, false},
		{"existing file, zero base", func(t *testing.T, path string) base {
			mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			return base{}
		}, false, true},
		{"seq matches, hash does not", func(t *testing.T, path string) base {
			v := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			return base{v.Seq, c.hash}
		}, false, true},
		{"hash matches, seq does not", func(t *testing.T, path string) base {
			v := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			return base{v.Seq + 1, v.Hash}
		}, false, true},
		{"stale seq", func(t *testing.T, path string) base {
			v1 := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			mustCommit(t, e.db, proposal(root.ID, path, &v1, b, owner.ID))
			return base{v1.Seq, v1.Hash}
		}, false, true},
		{"same content back on a stale base", func(t *testing.T, path string) base {
			v1 := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			v2 := mustCommit(t, e.db, proposal(root.ID, path, &v1, b, owner.ID))
			mustCommit(t, e.db, proposal(root.ID, path, &v2, a, owner.ID)) // head hash == v1 hash again
			return base{v1.Seq, v1.Hash}
		}, false, true},
		{"delete with correct base", func(t *testing.T, path string) base {
			v := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			return base{v.Seq, v.Hash}
		}, true, false},
		{"delete with stale base", func(t *testing.T, path string) base {
			v1 := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			mustCommit(t, e.db, proposal(root.ID, path, &v1, b, owner.ID))
			return base{v1.Seq, v1.Hash}
		}, true, true},
		{"recreate on deleted head", func(t *testing.T, path string) base {
			v1 := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			d := mustCommit(t, e.db, deletion(root.ID, path, v1, owner.ID))
			return base{d.Seq, cas.ID{}}
		}, false, false},
		{"recreate on deleted head as new file", func(t *testing.T, path string) base {
			v1 := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			mustCommit(t, e.db, deletion(root.ID, path, v1, owner.ID))
			return base{}
		}, false, true},
		{"recreate naming the content before deletion", func(t *testing.T, path string) base {
			v1 := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			d := mustCommit(t, e.db, deletion(root.ID, path, v1, owner.ID))
			return base{d.Seq, v1.Hash}
		}, false, true},
		{"delete a deleted head", func(t *testing.T, path string) base {
			v1 := mustCommit(t, e.db, proposal(root.ID, path, nil, a, owner.ID))
			d := mustCommit(t, e.db, deletion(root.ID, path, v1, owner.ID))
			return base{d.Seq, cas.ID{}}
		}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := "files/" + tc.name
			bs := tc.setup(t, path)
			before, headErr := e.db.Head(ctx, root.ID, path)
			r0, err := e.db.RootByID(ctx, root.ID)
			if err != nil {
				t.Fatal(err)
			}
			p := proposal(root.ID, path, nil, c, owner.ID)
			if tc.deleted {
				p = Proposal{Root: root.ID, Path: path, Deleted: true, Client: owner.ID}
			}
			p.BaseSeq, p.BaseHash = bs.seq, bs.hash
			v, err := e.db.Commit(ctx, p)
			r1, rerr := e.db.RootByID(ctx, root.ID)
			if rerr != nil {
				t.Fatal(rerr)
			}
			if tc.wantErr {
				var hc *HeadChangedError
				if !errors.Is(err, ErrHeadChanged) || !errors.As(err, &hc) {
					t.Fatalf("Commit = %+v, %v; want a *HeadChangedError", v, err)
				}
				if errors.Is(err, badger.ErrConflict) {
					t.Errorf("CAS failure %v matches badger.ErrConflict", err)
				}
				if hc.Exists != (headErr == nil) || (hc.Exists && hc.Head != before) {
					t.Errorf("error carries head %+v (exists %v), current head is %+v (%v)", hc.Head, hc.Exists, before, headErr)
				}
				if r1.Seq != r0.Seq {
					t.Errorf("failed commit moved root seq %d -> %d", r0.Seq, r1.Seq)
				}
				return
			}
			if err != nil {
				t.Fatalf("Commit: %v", err)
			}
			if v.Seq != r0.Seq+1 || r1.Seq != v.Seq {
				t.Errorf("version seq %d, root seq %d -> %d; want the next root seq", v.Seq, r0.Seq, r1.Seq)
			}
			h, err := e.db.Head(ctx, root.ID, path)
			if err != nil || h != v.Head() {
				t.Errorf("head = %+v, %v; want %+v", h, err, v.Head())
			}
			if tc.deleted && (!h.Deleted || !h.Hash.IsZero() || h.Size != 0) {
				t.Errorf("deletion left head %+v", h)
			}
		})
	}
}

func TestCommitRecordsEverything(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	c := newContent("hello")
	p := proposal(root.ID, "docs/hello.txt", nil, c, owner.ID)
	p.Mode = 0o600
	p.WallTime = time.Date(2025, 5, 5, 5, 5, 5, 5, time.UTC)
	v := mustCommit(t, e.db, p)
	want := Version{Seq: 1, Hash: c.hash, Size: c.size, Mode: 0o600, MTime: p.MTime, Client: owner.ID, WallTime: p.WallTime}
	if d := cmp.Diff(want, v); d != "" {
		t.Errorf("Commit returned (-want +got):\n%s", d)
	}
	got, err := e.db.Version(ctx, root.ID, "docs/hello.txt", 1)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Version (-want +got):\n%s", d)
	}
	chunks, err := e.db.ChunkList(ctx, c.hash)
	if err != nil || !cmp.Equal(chunks, c.chunks) {
		t.Errorf("ChunkList = %v, %v; want %v", chunks, err, c.chunks)
	}
	// Without a wall time the clock stamps the version.
	p2 := proposal(root.ID, "docs/hello.txt", &v, newContent("hello!"), owner.ID)
	v2 := mustCommit(t, e.db, p2)
	if v2.WallTime.IsZero() || !v2.WallTime.After(e.clock.t.Add(-time.Second)) {
		t.Errorf("wall time %v not from the clock (now %v)", v2.WallTime, e.clock.t)
	}
	if _, err := e.db.Version(ctx, root.ID, "docs/hello.txt", 99); !errors.Is(err, ErrNotFound) {
		t.Errorf("Version(99) err = %v, want ErrNotFound", err)
	}
}

func TestCommitChunkLists(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	c := newContent("shared content")

	// A content without a stored list needs one.
	p := proposal(root.ID, "a", nil, c, owner.ID)
	p.Chunks = nil
	if _, err := e.db.Commit(ctx, p); !errors.Is(err, ErrMissingChunkList) {
		t.Fatalf("commit without chunk list: %v, want ErrMissingChunkList", err)
	}
	if _, err := e.db.Head(ctx, root.ID, "a"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("failed commit left a head: %v", err)
	}
	// Stored once, then reusable by any file without sending it again.
	mustCommit(t, e.db, proposal(root.ID, "a", nil, c, owner.ID))
	mustCommit(t, e.db, p.withPath("b"))
	// A second, different list for the same hash does not replace the first.
	other := proposal(root.ID, "c", nil, c, owner.ID)
	other.Chunks = []Chunk{{ID: cas.Sum([]byte("x")), Size: 7}, {ID: cas.Sum([]byte("y")), Size: uint32(c.size - 7)}}
	mustCommit(t, e.db, other)
	got, err := e.db.ChunkList(ctx, c.hash)
	if err != nil || !cmp.Equal(got, c.chunks) {
		t.Errorf("ChunkList = %v, %v; want the first list %v", got, err, c.chunks)
	}
	// Empty files and deletions need no list.
	empty := Proposal{Root: root.ID, Path: "empty", Hash: EmptyHash}
	v := mustCommit(t, e.db, empty)
	mustCommit(t, e.db, deletion(root.ID, "empty", v, owner.ID))
	if list, err := e.db.ChunkList(ctx, EmptyHash); err != nil || len(list) != 0 {
		t.Errorf("ChunkList(empty) = %v, %v", list, err)
	}
	if has, err := e.db.HasChunkList(ctx, c.hash); err != nil || !has {
		t.Errorf("HasChunkList(stored) = %v, %v", has, err)
	}
	if has, err := e.db.HasChunkList(ctx, cas.Sum([]byte("never"))); err != nil || has {
		t.Errorf("HasChunkList(never stored) = %v, %v", has, err)
	}
	if _, err := e.db.ChunkList(ctx, cas.Sum([]byte("never"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("ChunkList(never stored) err = %v", err)
	}
	// PutChunkList ahead of the commit works as well.
	d := newContent("uploaded first")
	if err := e.db.PutChunkList(ctx, d.hash, d.chunks); err != nil {
		t.Fatal(err)
	}
	pd := proposal(root.ID, "d", nil, d, owner.ID)
	pd.Chunks = nil
	mustCommit(t, e.db, pd)
}

func (p Proposal) withPath(path string) Proposal { p.Path = path; return p }

func TestCommitRejectsInvalidProposals(t *testing.T) {
	e := newEnv(t)
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	c := newContent("data")
	for _, tc := range []struct {
		name string
		edit func(*Proposal)
		want error
	}{
		{"empty path", func(p *Proposal) { p.Path = "" }, ErrInvalid},
		{"path with NUL", func(p *Proposal) { p.Path = "a\x00b" }, ErrInvalid},
		{"zero hash", func(p *Proposal) { p.Hash = cas.ID{} }, ErrInvalid},
		{"empty file with other hash", func(p *Proposal) { p.Size, p.Chunks = 0, nil }, ErrInvalid},
		{"deletion with hash", func(p *Proposal) { p.Deleted, p.Size, p.Chunks = true, 0, nil }, ErrInvalid},
		{"deletion with size", func(p *Proposal) { p.Deleted, p.Hash, p.Chunks = true, cas.ID{}, nil }, ErrInvalid},
		{"deletion with chunks", func(p *Proposal) { p.Deleted, p.Hash, p.Size = true, cas.ID{}, 0 }, ErrInvalid},
		{"chunk sizes do not add up", func(p *Proposal) { p.Size++ }, ErrInvalid},
		{"chunk of size 0", func(p *Proposal) { p.Chunks = append([]Chunk{{ID: cas.Sum(nil)}}, p.Chunks...) }, ErrInvalid},
		{"unknown root", func(p *Proposal) { p.Root = 999 }, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := proposal(root.ID, "f", nil, c, owner.ID)
			tc.edit(&p)
			if _, err := e.db.Commit(context.Background(), p); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	r, err := e.db.RootByID(context.Background(), root.ID)
	if err != nil || r.Seq != 0 {
		t.Errorf("root seq after rejected commits = %d, %v; want 0", r.Seq, err)
	}
}

func TestCommitCheckHook(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	errGone := errors.New("chunk gone")
	p := proposal(root.ID, "f", nil, newContent("x"), owner.ID)
	calls := 0
	p.Check = func(txn *badger.Txn) error {
		calls++
		// The hook sees the same transaction: the root record is readable.
		if _, err := txn.Get(rootKey(root.ID)); err != nil {
			return err
		}
		return errGone
	}
	if _, err := e.db.Commit(ctx, p); !errors.Is(err, errGone) {
		t.Fatalf("err = %v, want the hook's error", err)
	}
	if calls != 1 {
		t.Errorf("hook ran %d times, want 1", calls)
	}
	if _, err := e.db.Head(ctx, root.ID, "f"); !errors.Is(err, ErrNotFound) {
		t.Errorf("hook failure left a head: %v", err)
	}
	if has, _ := e.db.HasChunkList(ctx, newContent("x").hash); has {
		t.Error("hook failure left a chunk list")
	}
	// A CAS failure is reported before the hook runs.
	calls = 0
	p.BaseSeq = 5
	if _, err := e.db.Commit(ctx, p); !errors.Is(err, ErrHeadChanged) || calls != 0 {
		t.Errorf("err = %v after %d hook calls; want ErrHeadChanged and no call", err, calls)
	}
	p.BaseSeq = 0
	p.Check = func(*badger.Txn) error { return nil }
	mustCommit(t, e.db, p)
}

func TestCommitClearsConflict(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	v := mustCommit(t, e.db, proposal(root.ID, "f", nil, newContent("x"), owner.ID))
	if _, err := e.db.AddCandidate(ctx, root.ID, "f", Candidate{Kind: CandidateClient, Client: owner.ID, Hash: newContent("y").hash, Size: 1}); err != nil {
		t.Fatal(err)
	}
	p := proposal(root.ID, "f", &v, newContent("y"), owner.ID)
	p.ClearConflict = true
	mustCommit(t, e.db, p)
	if _, err := e.db.Conflict(ctx, root.ID, "f"); !errors.Is(err, ErrNotFound) {
		t.Errorf("conflict after resolving commit: %v", err)
	}
}

// TestConcurrentCommits races writers on one file. With one base, exactly
// one wins; then every writer rebases on the head its failure reports until
// it has landed its share. The root seq is the file's version count, with
// no gaps.
func TestConcurrentCommits(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "race", owner)
	const writers = 16
	perWriter := 6
	if testing.Short() {
		perWriter = 3
	}

	// Round 1: same base, new file.
	var wins, losses int
	var mu sync.Mutex
	var winner Version
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			v, err := e.db.Commit(ctx, proposal(root.ID, "hot", nil, newContent(fmt.Sprint("first ", w)), owner.ID))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
				winner = v
			case errors.Is(err, ErrHeadChanged):
				losses++
			default:
				t.Errorf("writer %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	if wins != 1 || losses != writers-1 {
		t.Fatalf("%d wins and %d losses on one base, want 1 and %d", wins, losses, writers-1)
	}

	// Round 2: everyone commits perWriter times, rebasing on conflict.
	seqs := make([][]uint64, writers)
	for w := range writers {
		wg.Go(func() {
			base := winner
			for i := 0; i < perWriter; {
				v, err := e.db.Commit(ctx, proposal(root.ID, "hot", &base, newContent(fmt.Sprintf("w%d i%d", w, i)), owner.ID))
				var hc *HeadChangedError
				switch {
				case err == nil:
					seqs[w] = append(seqs[w], v.Seq)
					base = v
					i++
				case errors.As(err, &hc):
					base = Version{Seq: hc.Head.Seq, Hash: hc.Head.Hash}
				default:
					t.Errorf("writer %d: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()

	total := 1 + writers*perWriter
	vs, err := e.db.Versions(ctx, root.ID, "hot")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != total {
		t.Fatalf("%d versions, want %d successes", len(vs), total)
	}
	for i, v := range vs {
		if v.Seq != uint64(i+1) {
			t.Fatalf("version %d has seq %d: gap or disorder", i, v.Seq)
		}
	}
	for w, s := range seqs {
		for i := 1; i < len(s); i++ {
			if s[i] <= s[i-1] {
				t.Errorf("writer %d saw seqs %v, not increasing", w, s)
			}
		}
	}
	r, err := e.db.RootByID(ctx, root.ID)
	if err != nil || r.Seq != uint64(total) {
		t.Errorf("root seq = %d, %v; want %d", r.Seq, err, total)
	}
	h, err := e.db.Head(ctx, root.ID, "hot")
	if err != nil || h.Seq != uint64(total) || h.Hash != vs[len(vs)-1].Hash {
		t.Errorf("head = %+v, %v; want the last version", h, err)
	}
	changes, err := e.db.Changes(ctx, root.ID, 0, 0)
	if err != nil || len(changes) != 1 || changes[0] != (Change{Seq: uint64(total), Path: "hot"}) {
		t.Errorf("feed = %v, %v; want one entry at %d", changes, err, total)
	}
}

// TestConcurrentCommitsManyFiles races writers on different files of one
// root: all must succeed (badger conflicts are retried inside) and seqs
// must be unique.
func TestConcurrentCommitsManyFiles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "race", owner)
	const writers, each = 8, 4
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := make(map[uint64]string)
	for w := range writers {
		wg.Go(func() {
			var base *Version
			for i := range each {
				v, err := e.db.Commit(ctx, proposal(root.ID, fmt.Sprint("file", w), base, newContent(fmt.Sprint(w, i)), owner.ID))
				if err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				base = &v
				mu.Lock()
				if other, dup := seen[v.Seq]; dup {
					t.Errorf("seq %d given to %s and file%d", v.Seq, other, w)
				}
				seen[v.Seq] = fmt.Sprint("file", w)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r, err := e.db.RootByID(ctx, root.ID)
	if err != nil || r.Seq != writers*each || len(seen) != writers*each {
		t.Errorf("root seq %d with %d distinct seqs, %v; want %d", r.Seq, len(seen), err, writers*each)
	}
}

func TestCommitHonoursContext(t *testing.T) {
	e := newEnv(t)
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.db.Commit(ctx, proposal(root.ID, "f", nil, newContent("x"), owner.ID)); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestFindVersionsByPrefix(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	a, b := newContent("alpha"), newContent("beta")
	v1 := mustCommit(t, e.db, proposal(root.ID, "f", nil, a, owner.ID))
	v2 := mustCommit(t, e.db, proposal(root.ID, "f", &v1, b, owner.ID))
	v3 := mustCommit(t, e.db, proposal(root.ID, "f", &v2, a, owner.ID)) // back to alpha
	mustCommit(t, e.db, deletion(root.ID, "f", v3, owner.ID))

	prefix := func(s string) cas.Prefix {
		p, err := cas.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := e.db.FindVersionsByPrefix(ctx, root.ID, "f", prefix(a.hash.String()[:9]))
	if err != nil || len(got) != 2 || got[0].Seq != v1.Seq || got[1].Seq != v3.Seq {
		t.Errorf("alpha prefix = %+v, %v; want versions %d and %d", got, err, v1.Seq, v3.Seq)
	}
	got, err = e.db.FindVersionsByPrefix(ctx, root.ID, "f", prefix(b.hash.String()))
	if err != nil || len(got) != 1 || got[0].Seq != v2.Seq {
		t.Errorf("beta full hash = %+v, %v", got, err)
	}
	if _, err := e.db.FindVersionsByPrefix(ctx, root.ID, "f", prefix("00000000")); !errors.Is(err, ErrNotFound) {
		t.Errorf("zero prefix (deletions have no hash) err = %v, want ErrNotFound", err)
	}
	if _, err := e.db.FindVersionsByPrefix(ctx, root.ID, "other", prefix(a.hash.String())); !errors.Is(err, ErrNotFound) {
		t.Errorf("other path err = %v, want ErrNotFound", err)
	}
}

// TestFindVersionsAmbiguous commits two contents whose hashes share their
// first 8 hex digits, so the prefix matches both.
func TestFindVersionsAmbiguous(t *testing.T) {
	x, y := collidingContents(t, 4)
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)
	v1 := mustCommit(t, e.db, proposal(root.ID, "f", nil, x, owner.ID))
	mustCommit(t, e.db, proposal(root.ID, "f", &v1, y, owner.ID))
	p, err := cas.ParsePrefix(x.hash.String()[:8])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.FindVersionsByPrefix(ctx, root.ID, "f", p); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("err = %v, want ErrAmbiguous", err)
	}
	longer, err := cas.ParsePrefix(x.hash.String()[:16])
	if err != nil {
		t.Fatal(err)
	}
	if got, err := e.db.FindVersionsByPrefix(ctx, root.ID, "f", longer); err != nil || len(got) != 1 || got[0].Hash != x.hash {
		t.Errorf("longer prefix = %+v, %v", got, err)
	}
}

// collidingContents finds two contents whose hashes share their first n
// bytes. For n = 4 the birthday bound needs about 2^16 hashes of short
// strings: deterministic and quick.
func collidingContents(t *testing.T, n int) (content, content) {
	t.Helper()
	seen := make(map[string]string)
	for i := 0; ; i++ {
		s := fmt.Sprint("content ", i)
		h := cas.Sum([]byte(s))
		key := string(h[:n])
		if other, ok := seen[key]; ok {
			return newContent(other), newContent(s)
		}
		seen[key] = s
	}
}

// TestCommitGroup holds a commit inside its Check hook so that the next
// proposals queue behind it and are committed together, then checks that
// each was judged on its own: in order, against the heads the earlier ones
// left, with failures that touch nothing else.
func TestCommitGroup(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "group", owner)
	q := e.db.commitQueue(root.ID)
	waitQueued := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; {
			q.mu.Lock()
			got := len(q.pending)
			q.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d proposals queued, want %d", got, n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	type result struct {
		v   Version
		err error
	}
	start := func(ctx context.Context, p Proposal) chan result {
		ch := make(chan result, 1)
		go func() {
			v, err := e.db.Commit(ctx, p)
			ch <- result{v, err}
		}()
		return ch
	}

	entered, release := make(chan struct{}), make(chan struct{})
	pa := proposal(root.ID, "a", nil, newContent("a"), owner.ID)
	pa.Check = func(*badger.Txn) error { close(entered); <-release; return nil }
	ra := start(ctx, pa)
	<-entered

	errRefused := errors.New("refused")
	rb := start(ctx, proposal(root.ID, "b", nil, newContent("b"), owner.ID))
	waitQueued(1)
	pc := proposal(root.ID, "c", nil, newContent("c"), owner.ID)
	pc.Check = func(*badger.Txn) error { return errRefused }
	rc := start(ctx, pc)
	waitQueued(2)
	rd := start(ctx, proposal(root.ID, "b", nil, newContent("b from d"), owner.ID))
	waitQueued(3)
	pe := proposal(root.ID, "e", nil, newContent("e"), owner.ID)
	pe.Check = func(*badger.Txn) error { panic("hook bug") }
	re := start(ctx, pe)
	waitQueued(4)
	cctx, cancel := context.WithCancel(ctx)
	rf := start(cctx, proposal(root.ID, "f", nil, newContent("f"), owner.ID))
	waitQueued(5)
	cancel()
	rg := start(ctx, proposal(root.ID, "g", nil, newContent("g"), owner.ID))
	waitQueued(6)
	close(release)

	if r := <-ra; r.err != nil || r.v.Seq != 1 {
		t.Errorf("a = %+v, %v; want seq 1", r.v, r.err)
	}
	b := <-rb
	if b.err != nil || b.v.Seq != 2 {
		t.Errorf("b = %+v, %v; want seq 2", b.v, b.err)
	}
	if r := <-rc; !errors.Is(r.err, errRefused) {
		t.Errorf("c err = %v, want the hook's error", r.err)
	}
	var hc *HeadChangedError
	if r := <-rd; !errors.As(r.err, &hc) || hc.Head.Seq != b.v.Seq {
		t.Errorf("d err = %v, want a head change to b's seq %d", r.err, b.v.Seq)
	}
	if r := <-re; r.err == nil || !strings.Contains(r.err.Error(), "hook bug") {
		t.Errorf("e err = %v, want the panic as an error", r.err)
	}
	if r := <-rf; !errors.Is(r.err, context.Canceled) {
		t.Errorf("f err = %v, want context.Canceled", r.err)
	}
	if r := <-rg; r.err != nil || r.v.Seq != 3 {
		t.Errorf("g = %+v, %v; want seq 3 right after b", r.v, r.err)
	}
	for _, path := range []string{"c", "e", "f"} {
		if _, err := e.db.Head(ctx, root.ID, path); !errors.Is(err, ErrNotFound) {
			t.Errorf("refused proposal %q left a head: %v", path, err)
		}
	}
	r, err := e.db.RootByID(ctx, root.ID)
	if err != nil || r.Seq != 3 {
		t.Errorf("root seq = %d, %v; want 3", r.Seq, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.leading || len(q.pending) != 0 {
		t.Errorf("queue left leading=%v with %d pending", q.leading, len(q.pending))
	}
}

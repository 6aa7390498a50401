package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// Set moves the clock (needcontent_test.go declares it) to t.
func (c *manualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var retentionEpoch = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

func newRetentionEnv(t *testing.T) (*env, *manualClock) {
	t.Helper()
	clock := &manualClock{t: retentionEpoch}
	opts := testOptions(filepath.Join(t.TempDir(), "data"))
	opts.Clock = clock.Now
	opts.RetentionInterval = -1
	return newEnvWith(t, opts), clock
}

// commitAt pushes the files one after another on p, each at its wall
// time, and returns the seqs.
func (e *env) commitAt(t *testing.T, clock *manualClock, sess *syncproto.Session, p string, at ...time.Time) []uint64 {
	t.Helper()
	ctx := context.Background()
	r, err := e.srv.db.RootByName(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	var base *syncpb.FileHead
	if h, err := e.srv.db.Head(ctx, r.ID, p); err == nil {
		base = fileHead(p, h)
	}
	var seqs []uint64
	for i, when := range at {
		clock.Set(when)
		base = e.mustPush(t, sess, "docs", p, base, newFile(t, fmt.Appendf(nil, "%s at %s (%d)", p, when, i)))
		seqs = append(seqs, base.GetSeq())
	}
	return seqs
}

func (e *env) seqsOf(t *testing.T, p string) []uint64 {
	t.Helper()
	ctx := context.Background()
	r, err := e.srv.db.RootByName(ctx, "docs")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := e.srv.db.Versions(ctx, r.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, len(vs))
	for i, v := range vs {
		out[i] = v.Seq
	}
	return out
}

func pick(seqs []uint64, idx ...int) []uint64 {
	out := make([]uint64, len(idx))
	for i, j := range idx {
		out[i] = seqs[j]
	}
	return out
}

func TestRetentionKeepLast(t *testing.T) {
	e, clock := newRetentionEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	minute := func(i int) time.Time { return retentionEpoch.Add(time.Duration(i) * time.Minute) }
	f := e.commitAt(t, clock, a, "f", minute(1), minute(2), minute(3), minute(4), minute(5))
	g := e.commitAt(t, clock, a, "g", minute(6))
	if err := e.srv.SetRootRetention(ctx, "docs", manifest.Retention{Kind: manifest.KeepLast, Value: 2}); err != nil {
		t.Fatal(err)
	}
	if got := e.seqsOf(t, "f"); !slices.Equal(got, f[3:]) {
		t.Errorf("f keeps %v, want %v", got, f[3:])
	}
	if got := e.seqsOf(t, "g"); !slices.Equal(got, g) {
		t.Errorf("g keeps %v, want %v", got, g)
	}
	// Each commit prunes the file it wrote.
	more := e.commitAt(t, clock, a, "f", minute(7))
	if got, want := e.seqsOf(t, "f"), []uint64{f[4], more[0]}; !slices.Equal(got, want) {
		t.Errorf("after a commit f keeps %v, want %v", got, want)
	}
	// A dropped version is gone for restore too; a kept one restores.
	if _, _, err := e.srv.RestoreVersion(ctx, "docs", "f", hashAt(t, e, "f", 0), uuid.Nil); err != nil {
		t.Errorf("restore of a kept version: %v", err)
	}
	if got := len(e.seqsOf(t, "f")); got != 2 {
		t.Errorf("after a restore f has %d versions, want 2", got)
	}
	r, _ := e.srv.db.RootByName(ctx, "docs")
	if r.Retention != (manifest.Retention{Kind: manifest.KeepLast, Value: 2}) {
		t.Errorf("stored policy %+v", r.Retention)
	}
}

// hashAt is the hash prefix of the i-th version of p, oldest first.
func hashAt(t *testing.T, e *env, p string, i int) string {
	t.Helper()
	r, _ := e.srv.db.RootByName(context.Background(), "docs")
	vs, err := e.srv.db.Versions(context.Background(), r.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	return vs[i].Hash.String()[:8]
}

func TestRetentionKeepWithinNeverDropsTheHead(t *testing.T) {
	e, clock := newRetentionEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	hour := func(h float64) time.Time { return retentionEpoch.Add(time.Duration(h * float64(time.Hour))) }
	f := e.commitAt(t, clock, a, "f", hour(0), hour(1), hour(2), hour(3))
	gone := e.commitAt(t, clock, a, "gone", hour(0.5))
	clock.Set(hour(1.5))
	del, err := e.srv.Propose(ctx, a, deleteRequest("docs", "gone", &syncpb.FileHead{Seq: gone[0], Hash: hashBytes(t, e, "gone")}), nil)
	if err != nil {
		t.Fatal(err)
	}

	clock.Set(hour(3.5))
	if err := e.srv.SetRootRetention(ctx, "docs", manifest.Retention{Kind: manifest.KeepWithin, Value: int64(2 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// Kept: at most 2 h old at 3.5 h, i.e. stamped at 1.5 h or later.
	if got := e.seqsOf(t, "f"); !slices.Equal(got, pick(f, 2, 3)) {
		t.Errorf("f keeps %v, want %v", got, pick(f, 2, 3))
	}
	if got := e.seqsOf(t, "gone"); !slices.Equal(got, []uint64{del.GetHead().GetSeq()}) {
		t.Errorf("gone keeps %v, want only its deletion", got)
	}

	// Much later, everything is old; the heads stay.
	clock.Set(hour(1000))
	rep, err := e.srv.PruneRetention(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if rep != (PruneReport{Roots: 1, Files: 2, Dropped: 1}) {
		t.Errorf("report %+v", rep)
	}
	if got := e.seqsOf(t, "f"); !slices.Equal(got, pick(f, 3)) {
		t.Errorf("f keeps %v, want its head %v", got, pick(f, 3))
	}
	heads, _, _ := e.heads(t, a, "docs", 0)
	if heads["f"].GetSeq() != f[3] || !heads["gone"].GetDeleted() {
		t.Errorf("heads changed: %v", heads)
	}
}

func hashBytes(t *testing.T, e *env, p string) []byte {
	t.Helper()
	r, _ := e.srv.db.RootByName(context.Background(), "docs")
	h, err := e.srv.db.Head(context.Background(), r.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	return h.Hash[:]
}

func TestRetentionStaggered(t *testing.T) {
	e, clock := newRetentionEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	now := retentionEpoch.Add(60 * 24 * time.Hour)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	const day = 24 * time.Hour
	f := e.commitAt(t, clock, a, "f",
		ago(10*day), ago(9*day+12*time.Hour), ago(9*day), // daily steps
		ago(2*time.Hour), ago(90*time.Minute), // hourly steps
		ago(10*time.Minute), ago(9*time.Minute+50*time.Second)) // 30 s steps; the last is the head
	clock.Set(now)
	if err := e.srv.SetRootRetention(ctx, "docs", manifest.Retention{Kind: manifest.Staggered}); err != nil {
		t.Fatal(err)
	}
	if got, want := e.seqsOf(t, "f"), pick(f, 0, 2, 3, 5, 6); !slices.Equal(got, want) {
		t.Errorf("staggered keeps %v, want %v", got, want)
	}
	// Running it again changes nothing.
	if rep, err := e.srv.PruneRetention(ctx, "docs"); err != nil || rep.Dropped != 0 {
		t.Errorf("second run: %+v, %v", rep, err)
	}
}

// TestRetentionSparesConflicts: candidates are not versions; whatever a
// policy drops, an unresolved conflict keeps its sides and their content.
func TestRetentionSparesConflicts(t *testing.T) {
	e, clock := newRetentionEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "a"), e.client(t, "b")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	old := newFile(t, randomData(70, 40<<10))
	base := e.mustPush(t, a, "docs", "f", nil, old)
	server := e.mustPush(t, a, "docs", "f", base, newFile(t, []byte("server side")))
	mine := newFile(t, randomData(71, 40<<10))
	if _, err := e.push(b, "docs", "f", base, mine); !errors.Is(err, syncproto.ErrConflict) {
		t.Fatal(err)
	}
	clock.Set(retentionEpoch.Add(time.Hour))
	e.mustPush(t, a, "docs", "f", server, newFile(t, []byte("edited on")))
	if err := e.srv.SetRootRetention(ctx, "docs", manifest.Retention{Kind: manifest.KeepLast, Value: 1}); err != nil {
		t.Fatal(err)
	}
	if got := len(e.seqsOf(t, "f")); got != 1 {
		t.Fatalf("f keeps %d versions, want 1", got)
	}
	cs, err := e.srv.Conflicts(ctx, "docs", "f")
	if err != nil || len(cs) != 1 || len(cs[0].Candidates) != 2 {
		t.Fatalf("conflict after pruning: %+v, %v", cs, err)
	}
	for _, cand := range cs[0].Candidates {
		if _, err := e.download(t, a, "docs", "f", cand.Hash[:]); err != nil {
			t.Errorf("side %s (%s) cannot be downloaded: %v", cand.Side, cand.Hash.Short(), err)
		}
	}
	if got, err := e.download(t, a, "docs", "f", mine.hash[:]); err != nil || !bytes.Equal(got, mine.data) {
		t.Errorf("client side content: %v", err)
	}
	// The dropped version is no longer reachable as one.
	if _, err := e.download(t, a, "docs", "f", old.hash[:]); !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("dropped version: %v, want ErrNotFound", err)
	}
}

func TestRetentionErrors(t *testing.T) {
	e, _ := newRetentionEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	for _, bad := range []manifest.Retention{{Kind: manifest.KeepLast}, {Kind: manifest.KeepWithin}, {Kind: manifest.Staggered, Value: 3}, {Kind: 99}} {
		if err := e.srv.SetRootRetention(ctx, "docs", bad); !errors.Is(err, syncproto.ErrBadRequest) {
			t.Errorf("policy %+v: %v, want ErrBadRequest", bad, err)
		}
	}
	if err := e.srv.SetRootRetention(ctx, "nope", manifest.Retention{}); !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("unknown root: %v", err)
	}
	if _, err := e.srv.PruneRetention(ctx, "nope"); !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("prune of an unknown root: %v", err)
	}
	// Keep-all roots are not even walked.
	if rep, err := e.srv.PruneRetention(ctx, ""); err != nil || rep != (PruneReport{}) {
		t.Errorf("prune of keep-all roots: %+v, %v", rep, err)
	}
}

// TestRetentionLoop: the background loop applies a policy stored without
// pruning, and stops with Close (the cleanup closes the server while the
// loop is running; the race detector watches).
func TestRetentionLoop(t *testing.T) {
	opts := testOptions(filepath.Join(t.TempDir(), "data"))
	opts.RetentionInterval = 5 * time.Millisecond
	e := newEnvWith(t, opts)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	e.history(t, a, "docs", "f", newFile(t, []byte("1")), newFile(t, []byte("2")), newFile(t, []byte("3")))
	r, _ := e.srv.db.RootByName(ctx, "docs")
	if err := e.srv.db.SetRetention(ctx, r.ID, manifest.Retention{Kind: manifest.KeepLast, Value: 1}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(e.seqsOf(t, "f")) != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the loop did not prune: %v", e.seqsOf(t, "f"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

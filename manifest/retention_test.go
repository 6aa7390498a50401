package manifest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// aged returns versions with seqs 1.. stamped at now minus each age, in
// the order given (oldest first).
func aged(now time.Time, ages ...time.Duration) []Version {
	vs := make([]Version, len(ages))
	for i, a := range ages {
		vs[i] = Version{Seq: uint64(i + 1), Hash: EmptyHash, WallTime: now.Add(-a)}
	}
	return vs
}

func TestRetained(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	const (
		sec    = time.Second
		minute = time.Minute
		hour   = time.Hour
		day    = 24 * time.Hour
	)
	tests := []struct {
		name     string
		r        Retention
		versions []Version
		want     []bool
	}{
		{"no versions", Retention{Kind: KeepLast, Value: 1}, nil, []bool{}},
		{"keep all", Retention{}, aged(now, 400*day, day, 0), []bool{true, true, true}},
		{"unknown kind keeps all", Retention{Kind: 200, Value: 1}, aged(now, day, hour), []bool{true, true}},

		{"keep last 1", Retention{Kind: KeepLast, Value: 1}, aged(now, 3*day, 2*day, day), []bool{false, false, true}},
		{"keep last 2", Retention{Kind: KeepLast, Value: 2}, aged(now, 3*day, 2*day, day), []bool{false, true, true}},
		{"keep last more than there are", Retention{Kind: KeepLast, Value: 10}, aged(now, 3*day, day), []bool{true, true}},

		{"keep within a day", Retention{Kind: KeepWithin, Value: int64(day)}, aged(now, 3*day, day+sec, day, hour),
			[]bool{false, false, true, true}},
		{"keep within never drops the head", Retention{Kind: KeepWithin, Value: int64(hour)}, aged(now, 3*day, 2*day),
			[]bool{false, true}},
		{"keep within keeps the future", Retention{Kind: KeepWithin, Value: int64(hour)}, aged(now, 2*hour, -hour, -2*hour),
			[]bool{false, true, true}},

		// Staggered, within the first hour: one per 30 s.
		{"staggered: 30 s steps", Retention{Kind: Staggered},
			aged(now, 10*minute, 10*minute-10*sec, 10*minute-30*sec, 10*minute-45*sec, 9*minute, 5*sec),
			[]bool{true, false, true, false, true, true}},
		// Within the first day: one per hour. The oldest of each step
		// stays; later ones within the step go.
		{"staggered: hourly steps", Retention{Kind: Staggered},
			aged(now, 10*hour, 9*hour+30*minute, 9*hour, 8*hour+59*minute, 7*hour+59*minute),
			[]bool{true, false, true, false, true}},
		// Within 30 days: one per day.
		{"staggered: daily steps", Retention{Kind: Staggered},
			aged(now, 20*day, 19*day+12*hour, 19*day, 18*day+hour, 10*day),
			[]bool{true, false, true, false, true}},
		// Beyond 30 days: one per week, forever.
		{"staggered: weekly steps", Retention{Kind: Staggered},
			aged(now, 400*day, 399*day, 393*day, 392*day, 100*day, 96*day, 95*day, 40*day),
			[]bool{true, false, true, false, true, false, false, true}},
		// Across intervals: the step is that of each version's age.
		{"staggered: mixed ages", Retention{Kind: Staggered},
			aged(now, 60*day, 59*day, 40*day, 2*day, 2*day-hour, 20*hour, 19*hour+30*minute, 50*minute, 49*minute+50*sec, 10*sec),
			[]bool{true, false, true, true, false, true, false, true, false, true}},
		{"staggered: the head survives its step", Retention{Kind: Staggered},
			aged(now, 10*sec, 5*sec, 1*sec),
			[]bool{true, false, true}},
		{"staggered: one version", Retention{Kind: Staggered}, aged(now, 500*day), []bool{true}},
		{"staggered: clock went backwards", Retention{Kind: Staggered},
			aged(now, 2*hour, 3*hour, hour),
			[]bool{true, false, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Retained(tt.r, tt.versions, now)
			if !slices.Equal(got, tt.want) {
				t.Errorf("Retained = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestRetainedStaggeredIsStable checks the property that makes staggered
// retention safe to run again and again: what it keeps today, it keeps
// tomorrow, unless a coarser step now covers it; and applying it to what
// it kept keeps all of that.
func TestRetainedStaggeredIsStable(t *testing.T) {
	start := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var vs []Version
	for i := range 2000 {
		// Irregular gaps from seconds to days.
		gap := time.Duration((i*7919)%9973) * time.Second * time.Duration(1+i%5)
		start = start.Add(gap)
		vs = append(vs, Version{Seq: uint64(i + 1), Hash: EmptyHash, WallTime: start})
	}
	now := start.Add(time.Minute)
	keep := Retained(Retention{Kind: Staggered}, vs, now)
	var kept []Version
	for i, k := range keep {
		if k {
			kept = append(kept, vs[i])
		}
	}
	if len(kept) == len(vs) || len(kept) < 10 {
		t.Fatalf("kept %d of %d", len(kept), len(vs))
	}
	again := Retained(Retention{Kind: Staggered}, kept, now)
	for i, k := range again {
		if !k {
			t.Errorf("a second pass drops version %d, which the first kept", kept[i].Seq)
		}
	}
}

func TestSetRetentionAndDropVersions(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "r", owner)

	for _, r := range []Retention{{Kind: KeepLast, Value: 3}, {Kind: KeepWithin, Value: int64(time.Hour)}, {Kind: Staggered}, {}} {
		if err := e.db.SetRetention(ctx, root.ID, r); err != nil {
			t.Fatalf("set %+v: %v", r, err)
		}
		got, err := e.db.RootByID(ctx, root.ID)
		if err != nil || got.Retention != r {
			t.Errorf("after setting %+v: %+v, %v", r, got.Retention, err)
		}
	}
	for _, bad := range []Retention{{Kind: KeepLast}, {Kind: KeepWithin, Value: -1}, {Kind: Staggered, Value: 1}, {Kind: 42}} {
		if err := e.db.SetRetention(ctx, root.ID, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("set %+v: %v, want ErrInvalid", bad, err)
		}
	}
	if err := e.db.SetRetention(ctx, 999, Retention{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("set on a missing root: %v, want ErrNotFound", err)
	}

	var vs []Version
	var prev *Version
	for _, s := range []string{"1", "2", "3", "4"} {
		c := newContent(s)
		v := mustCommit(t, e.db, proposal(root.ID, "f", prev, c, owner.ID))
		vs = append(vs, v)
		prev = &vs[len(vs)-1]
	}
	head := vs[3]
	// The head is never dropped; unknown seqs are skipped.
	n, err := e.db.DropVersions(ctx, root.ID, "f", []uint64{vs[0].Seq, vs[2].Seq, head.Seq, 999})
	if err != nil || n != 2 {
		t.Fatalf("DropVersions = %d, %v; want 2 dropped", n, err)
	}
	left, err := e.db.Versions(ctx, root.ID, "f")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 || left[0] != vs[1] || left[1] != head {
		t.Errorf("left %+v, want versions 2 and 4", left)
	}
	// Chunk lists stay for gc.
	if has, _ := e.db.HasChunkList(ctx, vs[0].Hash); !has {
		t.Error("dropping a version removed its chunk list")
	}
	if h, err := e.db.Head(ctx, root.ID, "f"); err != nil || h != head.Head() {
		t.Errorf("head %+v, %v", h, err)
	}
	// Dropping again is a no-op.
	if n, err := e.db.DropVersions(ctx, root.ID, "f", []uint64{vs[0].Seq}); err != nil || n != 0 {
		t.Errorf("second drop = %d, %v", n, err)
	}
	// Many seqs span several transactions.
	many := make([]uint64, 2500)
	for i := range many {
		many[i] = uint64(i + 1)
	}
	if n, err := e.db.DropVersions(ctx, root.ID, "f", many); err != nil || n != 1 {
		t.Errorf("drop of 2500 seqs = %d, %v; want 1", n, err)
	}
	if left, _ := e.db.Versions(ctx, root.ID, "f"); len(left) != 1 || left[0] != head {
		t.Errorf("left %+v, want the head only", left)
	}
	if _, err := e.db.DropVersions(ctx, root.ID, "", []uint64{1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty path: %v", err)
	}
}

func TestRetentionRoundTrip(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	r, err := e.db.CreateRoot(ctx, NewRoot{Name: "s", Owner: owner.ID, Password: "pw", Chunking: testChunking, Retention: Retention{Kind: Staggered}})
	if err != nil {
		t.Fatal(err)
	}
	e.reopen(t)
	got, err := e.db.RootByID(ctx, r.ID)
	if err != nil || got.Retention.Kind != Staggered || got.Retention.Kind.String() != "staggered" {
		t.Errorf("after reopen: %+v, %v", got.Retention, err)
	}
}

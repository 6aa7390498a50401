package server

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func TestHandlerListAndResolveConflicts(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	c := newConflicted(t, e, true)
	outsider := e.client(t, "outsider")

	resp, err := e.srv.ListConflicts(ctx, c.phone, &syncpb.ListConflictsRequest{Root: "docs"})
	if err != nil || len(resp.GetConflicts()) != 1 {
		t.Fatalf("ListConflicts: %v, %v", resp, err)
	}
	pc := resp.GetConflicts()[0]
	if pc.GetPath() != docPath || len(pc.GetCandidates()) != 3 {
		t.Fatalf("conflict %v", pc)
	}
	infos, _ := e.srv.Conflicts(ctx, "docs", docPath)
	for i, cand := range pc.GetCandidates() {
		info := infos[0].Candidates[i]
		wantSide := syncpb.ConflictCandidate_SIDE_CLIENT
		if info.Side == SideServer {
			wantSide = syncpb.ConflictCandidate_SIDE_SERVER
		}
		if cand.GetSide() != wantSide || cand.GetClientId() != info.Client.String() || cand.GetClientName() != info.ClientName ||
			!bytes.Equal(cand.GetHash(), info.Hash[:]) || cand.GetSize() != int64(info.Size) || cand.GetMode() != info.Mode ||
			cand.GetMtime() != info.MTime.UnixNano() || cand.GetBaseSeq() != info.BaseSeq || cand.GetCreated() != info.Created.UnixNano() ||
			cand.GetName() != info.Name || cand.GetDeleted() {
			t.Errorf("candidate %d: %v, want %+v", i, cand, info)
		}
	}
	if pc.GetCandidates()[0].GetSide() != syncpb.ConflictCandidate_SIDE_SERVER || pc.GetCandidates()[0].GetClientName() != "laptop" {
		t.Errorf("server side %v", pc.GetCandidates()[0])
	}
	if one, err := e.srv.ListConflicts(ctx, c.phone, &syncpb.ListConflictsRequest{Root: "docs", Path: "nothing/here"}); err != nil || len(one.GetConflicts()) != 0 {
		t.Errorf("conflicts of a clean path: %v, %v", one, err)
	}
	if _, err := e.srv.ListConflicts(ctx, outsider, &syncpb.ListConflictsRequest{Root: "docs"}); !errors.Is(err, syncproto.ErrForbidden) {
		t.Errorf("outsider: %v", err)
	}
	if _, err := e.srv.ListConflicts(ctx, c.phone, &syncpb.ListConflictsRequest{Root: "docs", Path: "a//b"}); !errors.Is(err, syncproto.ErrInvalidPath) {
		t.Errorf("hostile path: %v", err)
	}

	for _, bad := range []*syncpb.ResolveConflictRequest{
		{Root: "docs", Path: "../doc.txt", Keep: "server"},
		{Root: "docs", Path: docPath, Keep: "nobody"},
	} {
		if _, err := e.srv.ResolveConflict(ctx, c.tablet, bad); err == nil {
			t.Errorf("ResolveConflict(%v) succeeded", bad)
		}
	}
	if _, err := e.srv.ResolveConflict(ctx, outsider, &syncpb.ResolveConflictRequest{Root: "docs", Path: docPath, Keep: "server"}); !errors.Is(err, syncproto.ErrForbidden) {
		t.Errorf("outsider resolves: %v", err)
	}
	// "client" is the caller's side.
	cr, err := e.srv.ResolveConflict(ctx, c.tablet, &syncpb.ResolveConflictRequest{Root: "docs", Path: docPath, Keep: "client"})
	if err != nil {
		t.Fatal(err)
	}
	if cr.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED || !bytes.Equal(cr.GetHead().GetHash(), c.tabF.hash[:]) ||
		cr.GetHead().GetClientId() != clientOf(t, c.tablet).String() || cr.GetHead().GetPath() != docPath {
		t.Errorf("resolution answered %v", cr)
	}
	if left, _ := e.srv.ListConflicts(ctx, c.phone, &syncpb.ListConflictsRequest{Root: "docs"}); len(left.GetConflicts()) != 0 {
		t.Errorf("conflicts after resolution: %v", left)
	}
}

func TestHandlerHistoryAndRestore(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b := e.client(t, "alpha"), e.client(t, "beta")
	outsider := e.client(t, "outsider")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	v1, v2 := newFile(t, []byte("one")), newFile(t, []byte("two"))
	h1 := e.mustPush(t, a, "docs", "f", nil, v1)
	h2 := e.mustPush(t, b, "docs", "f", h1, v2)
	del, err := e.srv.Propose(ctx, a, deleteRequest("docs", "f", h2), nil)
	if err != nil {
		t.Fatal(err)
	}

	hr, err := e.srv.History(ctx, b, &syncpb.HistoryRequest{Root: "docs", Path: "f"})
	if err != nil || len(hr.GetVersions()) != 3 {
		t.Fatalf("History: %v, %v", hr, err)
	}
	first, second, third := hr.GetVersions()[0], hr.GetVersions()[1], hr.GetVersions()[2]
	if first.GetSeq() != h1.GetSeq() || !bytes.Equal(first.GetHash(), v1.hash[:]) || first.GetClientName() != "alpha" ||
		first.GetClientId() != clientOf(t, a).String() || first.GetSize() != 3 || first.GetMode() != 0o644 ||
		first.GetMtime() != time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano() || first.GetTime() == 0 || first.GetDeleted() {
		t.Errorf("first entry %v", first)
	}
	if second.GetClientName() != "beta" || !bytes.Equal(second.GetHash(), v2.hash[:]) {
		t.Errorf("second entry %v", second)
	}
	if !third.GetDeleted() || len(third.GetHash()) != 0 || third.GetSeq() != del.GetHead().GetSeq() {
		t.Errorf("deletion entry %v", third)
	}
	// limit keeps the newest, oldest first.
	lim, err := e.srv.History(ctx, b, &syncpb.HistoryRequest{Root: "docs", Path: "f", Limit: 2})
	if err != nil || len(lim.GetVersions()) != 2 || lim.GetVersions()[0].GetSeq() != h2.GetSeq() {
		t.Errorf("History limit 2: %v, %v", lim, err)
	}
	for _, tt := range []struct {
		sess *syncproto.Session
		req  *syncpb.HistoryRequest
		want error
	}{
		{outsider, &syncpb.HistoryRequest{Root: "docs", Path: "f"}, syncproto.ErrForbidden},
		{a, &syncpb.HistoryRequest{Root: "docs", Path: "/etc/passwd"}, syncproto.ErrInvalidPath},
		{a, &syncpb.HistoryRequest{Root: "docs", Path: "nope"}, syncproto.ErrNotFound},
		{a, &syncpb.HistoryRequest{Root: "nope", Path: "f"}, syncproto.ErrForbidden},
	} {
		if _, err := e.srv.History(ctx, tt.sess, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("History(%v): %v, want %v", tt.req, err, tt.want)
		}
	}

	// Restore by a client: a new head written by it, then converged.
	rr, err := e.srv.Restore(ctx, b, &syncpb.RestoreRequest{Root: "docs", Path: "f", HashPrefix: v1.hash.String()[:8]})
	if err != nil || rr.GetOutcome() != syncpb.CommitResponse_OUTCOME_COMMITTED || !bytes.Equal(rr.GetHead().GetHash(), v1.hash[:]) ||
		rr.GetHead().GetClientId() != clientOf(t, b).String() || rr.GetHead().GetSeq() <= del.GetHead().GetSeq() {
		t.Fatalf("Restore: %v, %v", rr, err)
	}
	again, err := e.srv.Restore(ctx, a, &syncpb.RestoreRequest{Root: "docs", Path: "f", HashPrefix: v1.hash.String()})
	if err != nil || again.GetOutcome() != syncpb.CommitResponse_OUTCOME_CONVERGED || again.GetHead().GetSeq() != rr.GetHead().GetSeq() {
		t.Errorf("Restore of the head's content: %v, %v", again, err)
	}
	for _, tt := range []struct {
		sess *syncproto.Session
		req  *syncpb.RestoreRequest
		want error
	}{
		{outsider, &syncpb.RestoreRequest{Root: "docs", Path: "f", HashPrefix: v2.hash.String()}, syncproto.ErrForbidden},
		{a, &syncpb.RestoreRequest{Root: "docs", Path: "f/..", HashPrefix: v2.hash.String()}, syncproto.ErrInvalidPath},
		{a, &syncpb.RestoreRequest{Root: "docs", Path: "f", HashPrefix: "12"}, syncproto.ErrBadRequest},
		{a, &syncpb.RestoreRequest{Root: "docs", Path: "f", HashPrefix: "0000000000"}, syncproto.ErrNotFound},
	} {
		if _, err := e.srv.Restore(ctx, tt.sess, tt.req); !errors.Is(err, tt.want) {
			t.Errorf("Restore(%v): %v, want %v", tt.req, err, tt.want)
		}
	}
}

func TestHandlerSetRetention(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a, b, outsider := e.client(t, "a"), e.client(t, "b"), e.client(t, "outsider")
	e.root(t, a, "docs")
	e.join(t, b, "docs")
	e.history(t, a, "docs", "f", newFile(t, []byte("1")), newFile(t, []byte("2")), newFile(t, []byte("3")))
	const (
		all     = syncpb.SetRetentionRequest_KIND_KEEP_ALL
		last    = syncpb.SetRetentionRequest_KIND_KEEP_LAST
		within  = syncpb.SetRetentionRequest_KIND_KEEP_WITHIN
		stagger = syncpb.SetRetentionRequest_KIND_STAGGERED
	)
	for _, bad := range []*syncpb.SetRetentionRequest{
		{Root: "docs", Kind: last, Value: 0},
		{Root: "docs", Kind: last, Value: -3},
		{Root: "docs", Kind: within, Value: 0},
		{Root: "docs", Kind: all, Value: 5},
		{Root: "docs", Kind: stagger, Value: 1},
		{Root: "docs", Kind: syncpb.SetRetentionRequest_KIND_UNSPECIFIED},
		{Root: "docs", Kind: 77},
	} {
		if err := e.srv.SetRetention(ctx, b, bad); !errors.Is(err, syncproto.ErrBadRequest) {
			t.Errorf("SetRetention(%v): %v, want ErrBadRequest", bad, err)
		}
	}
	if err := e.srv.SetRetention(ctx, outsider, &syncpb.SetRetentionRequest{Root: "docs", Kind: all}); !errors.Is(err, syncproto.ErrForbidden) {
		t.Errorf("outsider: %v", err)
	}
	// Any member may; it applies at once.
	if err := e.srv.SetRetention(ctx, b, &syncpb.SetRetentionRequest{Root: "docs", Kind: last, Value: 1}); err != nil {
		t.Fatal(err)
	}
	if got := e.seqsOf(t, "f"); len(got) != 1 {
		t.Errorf("after keep-last 1: %v", got)
	}
	for _, tt := range []struct {
		req  *syncpb.SetRetentionRequest
		want manifest.Retention
	}{
		{&syncpb.SetRetentionRequest{Root: "docs", Kind: within, Value: int64(time.Hour)}, manifest.Retention{Kind: manifest.KeepWithin, Value: int64(time.Hour)}},
		{&syncpb.SetRetentionRequest{Root: "docs", Kind: stagger}, manifest.Retention{Kind: manifest.Staggered}},
		{&syncpb.SetRetentionRequest{Root: "docs", Kind: all}, manifest.Retention{}},
	} {
		if err := e.srv.SetRetention(ctx, a, tt.req); err != nil {
			t.Fatalf("SetRetention(%v): %v", tt.req, err)
		}
		if r, _ := e.srv.db.RootByName(ctx, "docs"); r.Retention != tt.want {
			t.Errorf("after %v: %+v, want %+v", tt.req, r.Retention, tt.want)
		}
	}
}

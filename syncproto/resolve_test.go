package syncproto

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/syncproto/syncpb"
)

func TestConflictAndHistoryTransactions(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	a, outsider := s.client(t), s.client(t)
	mustRoot(ctx, t, a, "docs")

	first, _, err := upload(ctx, a, "docs", "f.txt", 0, storedChunk(t, []byte("one")))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := upload(ctx, a, "docs", "f.txt", first.GetHead().GetSeq(), storedChunk(t, []byte("two"))); err != nil {
		t.Fatal(err)
	}
	hist, err := a.History(ctx, "docs", "f.txt", 0)
	if err != nil || len(hist) != 2 || hist[0].GetSeq() >= hist[1].GetSeq() {
		t.Fatalf("History = %v, %v", hist, err)
	}
	if last, err := a.History(ctx, "docs", "f.txt", 1); err != nil || len(last) != 1 || last[0].GetSeq() != hist[1].GetSeq() {
		t.Fatalf("History limit 1 = %v, %v", last, err)
	}

	prefix := fmt.Sprintf("%x", hist[0].GetHash())[:8]
	head, committed, err := a.Restore(ctx, "docs", "f.txt", prefix)
	if err != nil || !committed || !proto.Equal(&syncpb.FileHead{Hash: head.GetHash()}, &syncpb.FileHead{Hash: hist[0].GetHash()}) {
		t.Fatalf("Restore = %v, %v, %v", head, committed, err)
	}
	if _, _, err := a.Restore(ctx, "docs", "f.txt", "00000000"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Restore of an unknown prefix: %v, want ErrNotFound", err)
	}

	want := &syncpb.Conflict{Path: "f.txt", Candidates: []*syncpb.ConflictCandidate{
		{Side: syncpb.ConflictCandidate_SIDE_SERVER, ClientId: "srv", Hash: hist[1].GetHash(), Size: 3, Name: "server-abcd1234.txt"},
		{Side: syncpb.ConflictCandidate_SIDE_CLIENT, ClientId: a.ClientID(), ClientName: "laptop", Hash: hist[0].GetHash(), Size: 3, Name: "laptop-1234abcd.txt"},
	}}
	h.addConflict("docs", want)
	got, err := a.ListConflicts(ctx, "docs", "")
	if err != nil || len(got) != 1 || !proto.Equal(got[0], want) {
		t.Fatalf("ListConflicts = %v, %v", got, err)
	}
	if got, err := a.ListConflicts(ctx, "docs", "other.txt"); err != nil || len(got) != 0 {
		t.Fatalf("ListConflicts of another path = %v, %v", got, err)
	}
	resolved, err := a.ResolveConflict(ctx, "docs", "f.txt", "client")
	if err != nil || resolved.GetClientId() != a.ClientID() {
		t.Fatalf("ResolveConflict = %v, %v", resolved, err)
	}
	if _, err := a.ResolveConflict(ctx, "docs", "f.txt", "client"); !errors.Is(err, ErrNotFound) {
		t.Errorf("resolving twice: %v, want ErrNotFound", err)
	}

	if err := a.SetRetention(ctx, "docs", syncpb.SetRetentionRequest_KIND_KEEP_LAST, 3); err != nil {
		t.Fatal(err)
	}
	if r := h.retentionOf("docs"); r.GetKind() != syncpb.SetRetentionRequest_KIND_KEEP_LAST || r.GetValue() != 3 {
		t.Errorf("retention = %v", r)
	}

	// Every new transaction needs a member.
	if _, err := outsider.History(ctx, "docs", "f.txt", 0); !errors.Is(err, ErrForbidden) {
		t.Errorf("outsider History: %v, want ErrForbidden", err)
	}
	if _, err := outsider.ListConflicts(ctx, "docs", ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("outsider ListConflicts: %v, want ErrForbidden", err)
	}
	if err := outsider.SetRetention(ctx, "docs", syncpb.SetRetentionRequest_KIND_KEEP_ALL, 0); !errors.Is(err, ErrForbidden) {
		t.Errorf("outsider SetRetention: %v, want ErrForbidden", err)
	}
}

package syncproto

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/syncproto/syncpb"
)

func TestShareTransactions(t *testing.T) {
	h := newMemHandler(testServerPassword)
	s := startSyncServer(t, h, Config{})
	ctx := testCtx(t)
	a, outsider := s.client(t), s.client(t)
	mustRoot(ctx, t, a, "docs")
	if _, _, err := upload(ctx, a, "docs", "a b&c.txt", 0, storedChunk(t, []byte("one"))); err != nil {
		t.Fatal(err)
	}

	created, err := a.CreateShare(ctx, &syncpb.CreateShareRequest{Root: "docs", Path: "a b&c.txt", MaxDownloads: 2})
	if err != nil {
		t.Fatal(err)
	}
	if created.GetShare().GetPath() != "a b&c.txt" || created.GetToken() == "" || created.GetPort() != 6443 {
		t.Errorf("CreateShare = %v", created)
	}
	if _, err := outsider.CreateShare(ctx, &syncpb.CreateShareRequest{Root: "docs", Path: "a b&c.txt"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("outsider CreateShare: %v, want ErrForbidden", err)
	}
	if _, err := a.CreateShare(ctx, &syncpb.CreateShareRequest{Root: "docs", Path: "missing"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("CreateShare of a missing file: %v, want ErrNotFound", err)
	}
	if _, err := a.CreateShare(ctx, &syncpb.CreateShareRequest{Root: "docs", Path: "a b&c.txt", ExpiresIn: -1}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("CreateShare with a negative expiry: %v, want ErrBadRequest", err)
	}

	list, err := a.ListShares(ctx)
	if err != nil || len(list) != 1 || !proto.Equal(list[0], created.GetShare()) {
		t.Fatalf("ListShares = %v, %v", list, err)
	}
	if list, err := outsider.ListShares(ctx); err != nil || len(list) != 0 {
		t.Errorf("outsider ListShares = %v, %v", list, err)
	}

	for _, bad := range [][2]string{{"", ""}, {"id", "token"}} {
		if _, err := a.StopShare(ctx, bad[0], bad[1]); !errors.Is(err, ErrBadRequest) {
			t.Errorf("StopShare(%q, %q): %v, want ErrBadRequest", bad[0], bad[1], err)
		}
	}
	if _, err := outsider.StopShare(ctx, created.GetShare().GetId(), ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("outsider StopShare: %v, want ErrForbidden", err)
	}
	stopped, err := a.StopShare(ctx, "", created.GetToken())
	if err != nil || stopped.GetId() != created.GetShare().GetId() {
		t.Fatalf("StopShare by token = %v, %v", stopped, err)
	}
	if _, err := a.StopShare(ctx, created.GetShare().GetId(), ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("StopShare of a stopped link: %v, want ErrNotFound", err)
	}
}

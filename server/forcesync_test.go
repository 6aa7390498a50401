package server

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// forceNotices returns the FORCE_SYNC notices about path.
func forceNotices(ns []*syncpb.Notice, path string) []*syncpb.Notice {
	var out []*syncpb.Notice
	for _, n := range ns {
		if n.GetKind() == syncpb.Notice_KIND_FORCE_SYNC && n.GetHead().GetPath() == path {
			out = append(out, n)
		}
	}
	return out
}

func TestForceSyncNotifiesEveryWatcher(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner, other := e.client(t, "owner"), e.client(t, "other")
	e.root(t, owner, "docs")
	e.join(t, other, "docs")
	v1 := newFile(t, randomData(1, 40<<10))
	v2 := newFile(t, randomData(2, 20<<10))
	h1 := e.mustPush(t, owner, "docs", "f.txt", nil, v1)
	h2 := e.mustPush(t, owner, "docs", "f.txt", h1, v2)
	gone := e.mustPush(t, owner, "docs", "gone.txt", nil, v1)
	del, err := e.srv.Propose(ctx, owner, deleteRequest("docs", "gone.txt", gone), nil)
	if err != nil {
		t.Fatal(err)
	}
	wOwner := e.watch(t, owner, &syncpb.WatchRequest{})
	wOther := e.watch(t, other, &syncpb.WatchRequest{})
	e.subscribed(t, "docs", 2)

	if err := e.srv.ForceSync(ctx, "docs", "f.txt"); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ForceSync(ctx, "docs", "gone.txt"); err != nil {
		t.Fatalf("force-sync of a deleted head: %v", err)
	}
	for name, w := range map[string]*watcher{"owner": wOwner, "other": wOther} {
		ns := w.waitFor(t, "force-sync notices", func(ns []*syncpb.Notice) bool {
			return len(forceNotices(ns, "f.txt")) > 0 && len(forceNotices(ns, "gone.txt")) > 0
		})
		n := forceNotices(ns, "f.txt")[0]
		if got := n.GetHead(); n.GetRoot() != "docs" || got.GetSeq() != h2.GetSeq() || !bytes.Equal(got.GetHash(), v2.hash[:]) ||
			got.GetSize() != int64(len(v2.data)) || got.GetDeleted() {
			t.Errorf("%s: notice %v, want the head at seq %d", name, n, h2.GetSeq())
		}
		if n.GetRootSeq() < h2.GetSeq() {
			t.Errorf("%s: notice root seq %d below the head's %d", name, n.GetRootSeq(), h2.GetSeq())
		}
		d := forceNotices(ns, "gone.txt")[0].GetHead()
		if !d.GetDeleted() || d.GetSeq() != del.GetHead().GetSeq() || len(d.GetHash()) != 0 {
			t.Errorf("%s: deleted head %v, want a deletion at seq %d", name, d, del.GetHead().GetSeq())
		}
	}
}

func TestForceSyncRefuses(t *testing.T) {
	e := newEnv(t)
	owner := e.client(t, "owner")
	e.root(t, owner, "docs")
	e.mustPush(t, owner, "docs", "f.txt", nil, newFile(t, randomData(3, 1000)))
	tests := []struct {
		name, root, path string
		want             error
	}{
		{"unknown path", "docs", "nope.txt", syncproto.ErrNotFound},
		{"unknown root", "nope", "f.txt", syncproto.ErrNotFound},
		{"hostile path", "docs", "../f.txt", syncproto.ErrInvalidPath},
		{"absolute path", "docs", "/etc/passwd", syncproto.ErrInvalidPath},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := e.srv.ForceSync(context.Background(), tt.root, tt.path); !errors.Is(err, tt.want) {
				t.Fatalf("ForceSync(%q, %q) = %v, want %v", tt.root, tt.path, err, tt.want)
			}
		})
	}
}

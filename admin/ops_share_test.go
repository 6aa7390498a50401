package admin

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/server"
)

func TestShareRequestRoundTrip(t *testing.T) {
	want := ShareRequest{ID: "0123456789ab"}
	got, err := roundTrip(t, "DELETE", OpStopShare.Path, want)
	if err != nil || got != want {
		t.Errorf("DELETE %+v: got %+v, %v", want, got, err)
	}
}

// The JSON keys of a link are the contract of quics show shares --json
// (and of qic share list --json, which mirrors them).
func TestShareInfoJSON(t *testing.T) {
	client := uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	head := server.ShareInfo{
		Share: manifest.Share{ID: manifest.ShareID{1, 2, 3, 4, 5, 6}, Root: 1, Path: "a b&c.txt", Client: client, Created: created, MaxDownloads: 3},
		State: manifest.ShareActive, RootName: "docs", ClientName: "laptop",
	}
	pinned := head
	pinned.Pin = &manifest.SharePin{Seq: 7, Hash: cas.Sum([]byte("x")), Size: 1}
	pinned.Expires, pinned.LastDownload, pinned.Downloads = created.Add(time.Hour), created.Add(time.Minute), 3
	pinned.State = manifest.ShareExhausted

	keys := func(info server.ShareInfo) map[string]any {
		b, err := json.Marshal(ShareInfoOf(info))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	wantHead := map[string]any{
		"id": "010203040506", "root": "docs", "path": "a b&c.txt", "client": client.String(), "client_name": "laptop",
		"created": "2025-03-01T12:00:00Z", "max_downloads": 3.0, "downloads": 0.0, "state": "active",
	}
	if d := cmp.Diff(wantHead, keys(head)); d != "" {
		t.Errorf("a link to the head (-want +got):\n%s", d)
	}
	wantPinned := map[string]any{
		"id": "010203040506", "root": "docs", "path": "a b&c.txt", "client": client.String(), "client_name": "laptop",
		"created": "2025-03-01T12:00:00Z", "expires": "2025-03-01T13:00:00Z", "max_downloads": 3.0, "downloads": 3.0,
		"last_download": "2025-03-01T12:01:00Z", "version": cas.Sum([]byte("x")).String(), "seq": 7.0, "size": 1.0, "state": "exhausted",
	}
	if d := cmp.Diff(wantPinned, keys(pinned)); d != "" {
		t.Errorf("a pinned link (-want +got):\n%s", d)
	}
}

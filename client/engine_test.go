package client

import (
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/syncproto"
)

func TestProposal(t *testing.T) {
	base, hash := cas.Sum([]byte("base")), cas.Sum([]byte("new"))
	tests := []struct {
		name        string
		rec         FileRecord
		wantBase    bool
		wantContent bool
	}{
		{"new file", FileRecord{Path: "a", Hash: hash, Stat: FileStat{Size: 3, Mode: 0o644, MTime: 7}, LastUpdate: 1}, false, true},
		{"edit", FileRecord{Path: "a", BaseSeq: 4, BaseHash: base, Hash: hash, Stat: FileStat{Size: 3, Mode: 0o600, MTime: 9}, LastUpdate: 2}, true, true},
		{"deletion", FileRecord{Path: "a", BaseSeq: 4, BaseHash: base, Deleted: true, LastUpdate: 3}, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := proposal("root", &tt.rec)
			if req.GetRoot() != "root" || req.GetPath() != tt.rec.Path || req.GetBaseSeq() != tt.rec.BaseSeq ||
				req.GetLastUpdate() != tt.rec.LastUpdate || req.GetDeleted() != tt.rec.Deleted {
				t.Fatalf("request %v from %+v", req, tt.rec)
			}
			if got := len(req.GetBaseHash()) > 0; got != tt.wantBase {
				t.Errorf("base hash sent = %v, want %v", got, tt.wantBase)
			}
			if tt.wantBase && cas.ID(req.GetBaseHash()) != base {
				t.Errorf("base hash %x", req.GetBaseHash())
			}
			hasContent := len(req.GetHash()) > 0
			if hasContent != tt.wantContent {
				t.Fatalf("content sent = %v, want %v", hasContent, tt.wantContent)
			}
			if hasContent && (cas.ID(req.GetHash()) != hash || req.GetSize() != tt.rec.Stat.Size ||
				req.GetMode() != tt.rec.Stat.Mode || req.GetMtime() != tt.rec.Stat.MTime) {
				t.Errorf("content fields %v from %+v", req, tt.rec)
			}
		})
	}
}

func TestReuseIndexReplaceFile(t *testing.T) {
	x := &ReuseIndex{locs: map[cas.ID][]location{}}
	a, b, c := cas.Sum([]byte("a")), cas.Sum([]byte("b")), cas.Sum([]byte("c"))
	x.replaceFile("f", nil, []syncproto.ChunkRef{{ID: a, Size: 10}, {ID: b, Size: 20}})
	x.replaceFile("g", nil, []syncproto.ChunkRef{{ID: b, Size: 20}})
	if p, off, ok := x.Locate(b); !ok || p != "f" || off != 10 {
		t.Fatalf("b at %q %d %v, want f 10", p, off, ok)
	}
	// f now holds c then b: a is gone from it, b moved.
	x.replaceFile("f", []syncproto.ChunkRef{{ID: a, Size: 10}, {ID: b, Size: 20}}, []syncproto.ChunkRef{{ID: c, Size: 5}, {ID: b, Size: 20}})
	if _, _, ok := x.Locate(a); ok {
		t.Error("a still located in f")
	}
	if p, off, ok := x.Locate(b); !ok || p != "g" || off != 0 {
		t.Errorf("b at %q %d %v, want g 0 first", p, off, ok)
	}
	if p, off, ok := x.Locate(c); !ok || p != "f" || off != 0 {
		t.Errorf("c at %q %d %v, want f 0", p, off, ok)
	}
	if x.Len() != 2 {
		t.Errorf("Len %d, want 2", x.Len())
	}
}

func TestStatsAdd(t *testing.T) {
	s := Stats{FilesUploaded: 1, ChunksSent: 2, BytesSent: 3, Conflicts: 1}
	s.Add(Stats{FilesUploaded: 2, ChunksSent: 5, BytesSent: 7, FilesDownloaded: 4})
	want := Stats{FilesUploaded: 3, ChunksSent: 7, BytesSent: 10, Conflicts: 1, FilesDownloaded: 4}
	if s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
}

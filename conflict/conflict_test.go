package conflict

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/quic-s/quics/cas"
)

var (
	hashA = cas.Sum([]byte("a"))
	hashB = cas.Sum([]byte("b"))
	hashC = cas.Sum([]byte("c"))
	empty = cas.Sum(nil)
)

func TestDecide(t *testing.T) {
	live := &Head{Seq: 7, Hash: hashA, Mode: 0o644}
	deleted := &Head{Seq: 9, Deleted: true}
	emptyHead := &Head{Seq: 4, Hash: empty, Mode: 0o644}
	tests := []struct {
		name string
		head *Head
		p    Proposal
		want Decision
	}{
		// No head: only a new file fast-forwards.
		{"new file", nil, Proposal{Hash: hashA}, FastForward},
		{"new empty file", nil, Proposal{Hash: empty}, FastForward},
		{"new file as a deletion", nil, Proposal{Deleted: true}, FastForward},
		{"no head, base seq the server never had", nil, Proposal{BaseSeq: 3, BaseHash: hashA, Hash: hashB}, Conflict},
		{"no head, base hash without seq", nil, Proposal{BaseHash: hashA, Hash: hashB}, Conflict},
		{"no head, base seq without hash", nil, Proposal{BaseSeq: 3, Hash: hashB}, Conflict},

		// Converged: same content, whatever the base.
		{"same content, base is head", live, Proposal{BaseSeq: 7, BaseHash: hashA, Hash: hashA, Mode: 0o644}, Converged},
		{"same content, stale base", live, Proposal{BaseSeq: 2, BaseHash: hashC, Hash: hashA, Mode: 0o644}, Converged},
		{"same content, new-file base", live, Proposal{Hash: hashA, Mode: 0o644}, Converged},
		{"both deleted, base is head", deleted, Proposal{BaseSeq: 9, Deleted: true}, Converged},
		{"both deleted, stale base", deleted, Proposal{BaseSeq: 3, BaseHash: hashA, Deleted: true}, Converged},
		{"both deleted, stray hash on the deletion", deleted, Proposal{BaseSeq: 1, Hash: hashA, Deleted: true}, Converged},
		{"same empty content", emptyHead, Proposal{Hash: empty, Mode: 0o644}, Converged},
		{"deletions ignore mode", deleted, Proposal{BaseSeq: 2, Deleted: true, Mode: 0o755}, Converged},
		{"mode only, stale base", live, Proposal{BaseSeq: 2, BaseHash: hashC, Hash: hashA, Mode: 0o755}, Converged},
		{"mode only, new-file base", live, Proposal{Hash: hashA, Mode: 0o600}, Converged},

		// Fast-forward: base names the head.
		{"edit on head", live, Proposal{BaseSeq: 7, BaseHash: hashA, Hash: hashB}, FastForward},
		{"delete head", live, Proposal{BaseSeq: 7, BaseHash: hashA, Deleted: true}, FastForward},
		{"recreate on deleted head", deleted, Proposal{BaseSeq: 9, Hash: hashB}, FastForward},
		{"truncate to empty", live, Proposal{BaseSeq: 7, BaseHash: hashA, Hash: empty}, FastForward},
		{"chmod on head", live, Proposal{BaseSeq: 7, BaseHash: hashA, Hash: hashA, Mode: 0o755}, FastForward},
		{"grow empty file", emptyHead, Proposal{BaseSeq: 4, BaseHash: empty, Hash: hashA}, FastForward},

		// Conflict: the head moved on, or the base is not the head.
		{"stale base seq", live, Proposal{BaseSeq: 6, BaseHash: hashA, Hash: hashB}, Conflict},
		{"newer base seq", live, Proposal{BaseSeq: 8, BaseHash: hashA, Hash: hashB}, Conflict},
		{"right seq, wrong base hash", live, Proposal{BaseSeq: 7, BaseHash: hashC, Hash: hashB}, Conflict},
		{"right seq, missing base hash", live, Proposal{BaseSeq: 7, Hash: hashB}, Conflict},
		{"new file where one exists", live, Proposal{Hash: hashB}, Conflict},
		{"delete with stale base", live, Proposal{BaseSeq: 3, BaseHash: hashC, Deleted: true}, Conflict},
		{"delete a file created elsewhere", live, Proposal{Deleted: true}, Conflict},
		{"edit a file deleted since", deleted, Proposal{BaseSeq: 7, BaseHash: hashA, Hash: hashB}, Conflict},
		{"new file where a deletion is", deleted, Proposal{Hash: hashB}, Conflict},
		{"deleted head, right seq but a hash", deleted, Proposal{BaseSeq: 9, BaseHash: hashA, Hash: hashB}, Conflict},

		// Superseded: the content is in history after the base, and the
		// head moved on from it.
		{"loser of a resolution proposes again", live, Proposal{BaseSeq: 3, BaseHash: hashC, Hash: hashB, LaterInHistory: true}, Superseded},
		{"deletion accepted and undone since", live, Proposal{BaseSeq: 3, BaseHash: hashC, Deleted: true, LaterInHistory: true}, Superseded},
		{"edit accepted, then the file deleted", deleted, Proposal{BaseSeq: 3, BaseHash: hashC, Hash: hashB, LaterInHistory: true}, Superseded},
		{"new-file base, content in history", live, Proposal{Hash: hashB, LaterInHistory: true}, Superseded},
		// Convergence and fast-forward come first, whatever history says.
		{"in history and equal to the head", live, Proposal{BaseSeq: 3, BaseHash: hashC, Hash: hashA, Mode: 0o644, LaterInHistory: true}, Converged},
		{"in history, mode only differs from the head", live, Proposal{BaseSeq: 3, BaseHash: hashC, Hash: hashA, Mode: 0o755, LaterInHistory: true}, Converged},
		{"base is the head", live, Proposal{BaseSeq: 7, BaseHash: hashA, Hash: hashB, LaterInHistory: true}, FastForward},
		{"no head: nothing to supersede", nil, Proposal{BaseSeq: 3, BaseHash: hashA, Hash: hashB, LaterInHistory: true}, Conflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.head, tt.p); got != tt.want {
				t.Errorf("Decide(%+v, %+v) = %v, want %v", tt.head, tt.p, got, tt.want)
			}
		})
	}
}

func TestDecisionString(t *testing.T) {
	for d, want := range map[Decision]string{
		FastForward: "fast-forward", Converged: "converged", Conflict: "conflict", Superseded: "superseded",
		0: "Decision(0)", 42: "Decision(42)",
	} {
		if got := d.String(); got != want {
			t.Errorf("Decision(%d).String() = %q, want %q", d, got, want)
		}
	}
}

func TestCandidateName(t *testing.T) {
	h8 := hashA.Short()
	tests := []struct {
		name string
		side string
		hash cas.ID
		orig string
		want string
	}{
		{"server side", ServerSide, hashA, "report.txt", "server-" + h8 + ".txt"},
		{"client side", "laptop", hashA, "report.txt", "laptop-" + h8 + ".txt"},
		{"nested path keeps only the base's extension", "laptop", hashA, "a.d/b/report.tar.gz", "laptop-" + h8 + ".gz"},
		{"no extension", "laptop", hashA, "Makefile", "laptop-" + h8},
		{"dot file has no extension", "laptop", hashA, ".bashrc", "laptop-" + h8},
		{"trailing dot", "laptop", hashA, "notes.", "laptop-" + h8},
		{"deletion", "laptop", cas.ID{}, "report.txt", "laptop-deleted.txt"},
		{"spaces and quote", "Jane's Mac", hashA, "x.md", "Jane_s_Mac-" + h8 + ".md"},
		{"slashes cannot make directories", "../../etc", hashA, "x", "_.._etc-" + h8},
		{"backslashes", `a\b`, hashA, "x", "a_b-" + h8},
		{"NUL and control", "a\x00b\nc", hashA, "x", "a_b_c-" + h8},
		{"unicode is one underscore per character", "café 日本", hashA, "x", "caf____-" + h8},
		{"only dots", "...", hashA, "x", "client-" + h8},
		{"empty", "", hashA, "x", "client-" + h8},
		{"leading dash", "-rf", hashA, "x", "rf-" + h8},
		{"invalid UTF-8", "a\xff\xfeb", hashA, "x", "a__b-" + h8},
		{"long name is cut", strings.Repeat("n", 300), hashA, "x.txt", strings.Repeat("n", 64) + "-" + h8 + ".txt"},
		{"long extension is dropped", "laptop", hashA, "x." + strings.Repeat("e", 40), "laptop-" + h8},
		{"unsafe extension is dropped", "laptop", hashA, "x.t t", "laptop-" + h8},
		{"unicode extension is dropped", "laptop", hashA, "x.日本", "laptop-" + h8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := CandidateName(tt.side, tt.hash, tt.orig)
			if got != tt.want {
				t.Errorf("CandidateName(%q, %s, %q) = %q, want %q", tt.side, tt.hash.Short(), tt.orig, got, tt.want)
			}
		})
	}
}

func TestVersionName(t *testing.T) {
	h8 := hashA.Short()
	tests := []struct {
		seq  uint64
		hash cas.ID
		orig string
		want string
	}{
		{12, hashA, "report.txt", "v12-" + h8 + ".txt"},
		{1, hashA, "dir/Makefile", "v1-" + h8},
		{18446744073709551615, hashA, "a.tar.gz", "v18446744073709551615-" + h8 + ".gz"},
		{3, cas.ID{}, "x.md", "v3-deleted.md"},
		{4, hashA, "x." + strings.Repeat("e", 40), "v4-" + h8},
	}
	for _, tt := range tests {
		if got := VersionName(tt.seq, tt.hash, tt.orig); got != tt.want {
			t.Errorf("VersionName(%d, %s, %q) = %q, want %q", tt.seq, tt.hash.Short(), tt.orig, got, tt.want)
		}
	}
}

// FuzzCandidateName checks the safety properties for any input: the name
// is one short, safe path segment.
func FuzzCandidateName(f *testing.F) {
	f.Add("laptop", []byte("content"), "dir/report.txt")
	f.Add("../..", []byte{}, "x.日本")
	f.Add(strings.Repeat("é", 100), []byte{0}, "."+strings.Repeat("x", 300))
	f.Fuzz(func(t *testing.T, side string, content []byte, orig string) {
		var h cas.ID
		if len(content) > 0 {
			h = cas.Sum(content)
		}
		name := CandidateName(side, h, orig)
		if name == "" || len(name) > 255 || !utf8.ValidString(name) {
			t.Fatalf("CandidateName(%q, %q) = %q: not a short UTF-8 name", side, orig, name)
		}
		if name[0] == '.' || name[0] == '-' {
			t.Fatalf("CandidateName(%q, %q) = %q starts with %q", side, orig, name, name[0])
		}
		for i := 0; i < len(name); i++ {
			if !safeByte(name[i]) {
				t.Fatalf("CandidateName(%q, %q) = %q has unsafe byte %#x", side, orig, name, name[i])
			}
		}
	})
}

func BenchmarkDecide(b *testing.B) {
	head := &Head{Seq: 7, Hash: hashA}
	p := Proposal{BaseSeq: 7, BaseHash: hashA, Hash: hashB}
	for b.Loop() {
		if Decide(head, p) != FastForward {
			b.Fatal("wrong decision")
		}
	}
}

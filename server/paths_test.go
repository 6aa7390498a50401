package server

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// hostilePaths are paths a malicious client might send to write outside
// its root, confuse the key schema or a file system.
var hostilePaths = []string{
	"",
	"/",
	"/etc/passwd",
	"//server/share/x",
	"..",
	".",
	"../x",
	"../../../../tmp/pwned",
	"a/../../x",
	"a/..",
	"a/../b",
	"./a",
	"a/./b",
	"a/.",
	"a//b",
	"a/",
	"a\\..\\..\\x",
	"..\\x",
	"\\\\server\\share",
	"C:\\Windows\\System32",
	"a\x00b",
	"\x00",
	"a/b\x00/../../x",
	"a\nb",
	"a\rb",
	"a\tb",
	"\x1b[31mred",
	"a\x7f",
	"a\xffb",
	"\xc0\xae\xc0\xae/x", // overlong "../"
	"\xed\xa0\x80",
	strings.Repeat("s", 256),
	"d/" + strings.Repeat("s", 256) + "/f",
	strings.Repeat("a/", 2048) + "b",
	"latest/../../../x",
	"../latest/x",
	"../../db/MANIFEST",
}

// TestHostilePathsRefused sends every hostile path through every request
// that takes one, and checks that nothing was written outside the data
// directory, nor anything into the root.
func TestHostilePathsRefused(t *testing.T) {
	if len(hostilePaths) < 30 {
		t.Fatalf("only %d hostile paths", len(hostilePaths))
	}
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "a")
	e.root(t, a, "docs")
	f := newFile(t, []byte("payload"))
	e.upload(t, a, "docs", f)
	for _, p := range hostilePaths {
		name := p
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			_, err := e.srv.Propose(ctx, a, request("docs", p, nil, f), f.refs)
			if !errors.Is(err, syncproto.ErrInvalidPath) {
				t.Fatalf("Propose(%q): err = %v, want ErrInvalidPath", p, err)
			}
			if w := syncproto.WireError(err); w.Code != syncproto.CodeInvalidPath || w.Message == "" {
				t.Errorf("travels as %v %q", w.Code, w.Message)
			}
			if _, err := e.srv.Propose(ctx, a, deleteRequest("docs", p, nil), nil); !errors.Is(err, syncproto.ErrInvalidPath) {
				t.Errorf("delete %q: err = %v", p, err)
			}
			if _, _, err := e.srv.ChunkList(ctx, a, &syncpb.ChunkListRequest{Root: "docs", Path: p, Hash: f.hash[:]}); !errors.Is(err, syncproto.ErrInvalidPath) {
				t.Errorf("ChunkList(%q): err = %v", p, err)
			}
			if _, err := e.srv.RegisterRoot(ctx, a, &syncpb.RegisterRootRequest{Name: p, RootPassword: "pw"}); !errors.Is(err, syncproto.ErrInvalidPath) {
				t.Errorf("RegisterRoot(%q): err = %v", p, err)
			}
		})
	}
	e.srv.views.wait()
	heads, seq, _ := e.heads(t, a, "docs", 0)
	if len(heads) != 0 || seq != 0 {
		t.Errorf("hostile proposals committed %v", heads)
	}
	// The temp dir holds the data dir and nothing else; the data dir only
	// what the server puts there.
	parent := filepath.Dir(e.dir)
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(e.dir) {
		t.Errorf("next to the data dir: %v", entries)
	}
	allowed := map[string]bool{DBDir: true, CASDir: true, TLSDir: true, SyncDir: true, LockFile: true}
	top, _ := os.ReadDir(e.dir)
	for _, en := range top {
		if !allowed[en.Name()] {
			t.Errorf("unexpected %s in the data dir", en.Name())
		}
	}
	_ = filepath.WalkDir(filepath.Join(e.dir, SyncDir), func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("view file %s written for a refused path", path)
		}
		return nil
	})
}

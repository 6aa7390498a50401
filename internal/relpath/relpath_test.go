package relpath

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	seg255 := strings.Repeat("a", MaxSegmentLen)
	long4096 := strings.Repeat(strings.Repeat("a", 200)+"/", 20) + strings.Repeat("b", 76)
	if len(long4096) != MaxPathLen {
		t.Fatalf("test path has %d bytes, want %d", len(long4096), MaxPathLen)
	}
	tests := []struct {
		name    string
		path    string
		problem string // substring of the error; "" means valid
	}{
		// hostile
		{"empty", "", "empty"},
		{"absolute", "/etc/passwd", "absolute"},
		{"root", "/", "absolute"},
		{"dotdot", "..", `".." segment`},
		{"dot", ".", `"." segment`},
		{"dotdot prefix", "../a", `".." segment`},
		{"dotdot climbs", "a/../../b", `".." segment`},
		{"dotdot trailing", "a/..", `".." segment`},
		{"dot prefix", "./a", `"." segment`},
		{"dot middle", "a/./b", `"." segment`},
		{"double slash", "a//b", "empty segment"},
		{"trailing slash", "a/", "empty segment"},
		{"only slashes", "//", "absolute"},
		{"unc", `\\server\share`, "backslash"},
		{"backslash dotdot", `a\..\b`, "backslash"},
		{"windows drive backslash", `C:\x`, "backslash"},
		{"backslash only", `\`, "backslash"},
		{"nul middle", "a\x00b", "control character 0x00"},
		{"nul end", "a\x00", "control character 0x00"},
		{"del", "a\x7fb", "control character 0x7f"},
		{"newline", "a\nb", "control character 0x0a"},
		{"carriage return", "a\rb", "control character 0x0d"},
		{"tab", "a\tb", "control character 0x09"},
		{"escape", "\x1b[31m", "control character 0x1b"},
		{"invalid utf8", "a\xffb", "UTF-8"},
		{"truncated utf8", "caf\xc3", "UTF-8"},
		{"overlong utf8 slash", "a\xc0\xafb", "UTF-8"},
		{"surrogate utf8", "\xed\xa0\x80", "UTF-8"},
		{"256-byte segment", "d/" + seg255 + "x", "segment of 256 bytes"},
		{"4097-byte path", long4096 + "c", "longer than 4096"},
		{"dotdot after long", seg255 + "/..", `".." segment`},
		// valid
		{"simple", "a", ""},
		{"nested", "dir/sub/file.txt", ""},
		{"three dots", "...", ""},
		{"dotdot prefix name", "a/..b", ""},
		{"dotdot suffix name", "b../a", ""},
		{"dot file", ".quics", ""},
		{"percent encoded dots", "%2e%2e/%2e%2e", ""},
		{"spaces", " a b /c ", ""},
		{"unicode", "résumé/日本語/😀.txt", ""},
		{"colon unix", "a:b", ""},
		{"drive-like", "C:/x", ""},
		{"drive-like alone", "C:", ""},
		{"255-byte segment", seg255, ""},
		{"4096-byte path", long4096, ""},
		{"tilde", "~/x", ""},
		{"dash", "-rf", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Check(tt.path)
			if tt.problem == "" {
				if err != nil {
					t.Fatalf("Check(%q) = %v, want nil", tt.path, err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("Check(%q) = %v, want ErrInvalidPath", tt.path, err)
			}
			if !strings.Contains(err.Error(), tt.problem) {
				t.Errorf("Check(%q) = %q, want it to mention %q", tt.path, err, tt.problem)
			}
		})
	}
}

func TestErrorQuotesPath(t *testing.T) {
	err := Check("a\x00b")
	if !strings.Contains(err.Error(), `"a\x00b"`) {
		t.Errorf("error %q does not quote the path", err)
	}
	long := strings.Repeat("x", MaxPathLen+1)
	err = Check(long)
	if len(err.Error()) > 300 {
		t.Errorf("error for a long path is %d bytes; want it shortened", len(err.Error()))
	}
	if !strings.Contains(err.Error(), "4097 bytes") {
		t.Errorf("error %q does not give the length", err)
	}
}

func TestJoin(t *testing.T) {
	base := t.TempDir()
	tests := []struct {
		base, path, want string
		ok               bool
	}{
		{base, "a/b", filepath.Join(base, "a", "b"), true},
		{base, "...", filepath.Join(base, "..."), true},
		{base, "C:/x", filepath.Join(base, "C:", "x"), true},
		{base + string(os.PathSeparator), "a", filepath.Join(base, "a"), true},
		{string(os.PathSeparator), "etc/passwd", filepath.Join(string(os.PathSeparator), "etc", "passwd"), true},
		{"rel/base", "x", filepath.Join("rel", "base", "x"), true},
		{base, "../x", "", false},
		{base, "/etc/passwd", "", false},
		{base, `a\..\..\x`, "", false},
		{base, "", "", false},
		{"", "a", "", false},
	}
	for _, tt := range tests {
		got, err := Join(tt.base, tt.path)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("Join(%q, %q) = %q, %v; want %q", tt.base, tt.path, got, err, tt.want)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidPath) {
			t.Errorf("Join(%q, %q) = %q, %v; want ErrInvalidPath", tt.base, tt.path, got, err)
		}
		if err != nil && tt.base != "" && strings.Contains(err.Error(), tt.base) {
			t.Errorf("Join error %q names the base directory", err)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"a", "a/b", "...", "a/..b", "../a", "a//b", "/a", `a\b`, "C:/x", "a\x00", "日本/語", ".", "a/./b"} {
		f.Add(s)
	}
	base := filepath.Join(string(os.PathSeparator), "srv", "root")
	f.Fuzz(func(t *testing.T, p string) {
		err := Check(p)
		if err != nil {
			if !errors.Is(err, ErrInvalidPath) {
				t.Fatalf("Check(%q) = %v, not ErrInvalidPath", p, err)
			}
			if _, jerr := Join(base, p); jerr == nil {
				t.Fatalf("Join accepted %q which Check refuses", p)
			}
			return
		}
		joined, err := Join(base, p)
		if err != nil {
			t.Fatalf("Join(%q) = %v after Check passed", p, err)
		}
		rel, err := filepath.Rel(base, joined)
		if err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, ".."+string(os.PathSeparator)) {
			t.Fatalf("Join(%q) = %q, outside %q (rel %q, %v)", p, joined, base, rel, err)
		}
		if got := filepath.ToSlash(strings.TrimPrefix(joined, base+string(os.PathSeparator))); got != p {
			t.Fatalf("Join(%q) = %q does not round-trip: %q", p, joined, got)
		}
	})
}

func BenchmarkCheck(b *testing.B) {
	p := "projects/quics/internal/relpath/some file name with spaces/résumé-2026.txt"
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if err := Check(p); err != nil {
			b.Fatal(err)
		}
	}
}

package client

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenRegularStatMatchesLstat(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "f")
	data := randomBytes(7, 5000)
	writeFile(t, dir, "f", data)
	if err := os.Chmod(name, 0o640); err != nil {
		t.Fatal(err)
	}
	f, st, err := openRegular(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := os.Lstat(name)
	if err != nil {
		t.Fatal(err)
	}
	// The scan compares a record's stat, taken from an open file, with
	// the stat of a later walk: both must read alike.
	if want := statOf(fi); st != want {
		t.Fatalf("openRegular stat %+v, Lstat %+v", st, want)
	}
	if again, err := f.stat(); err != nil || again != st {
		t.Fatalf("stat of the open file: %+v, %v; want %+v", again, err, st)
	}
}

func TestRegularFileReads(t *testing.T) {
	dir := t.TempDir()
	data := randomBytes(8, 3000)
	writeFile(t, dir, "f", data)
	f, _, err := openRegular(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(f)
	if err != nil || string(got) != string(data) {
		t.Fatalf("ReadAll: %d bytes, %v; want %d bytes", len(got), err, len(data))
	}
	tests := []struct {
		name    string
		off     int64
		n       int
		wantN   int
		wantEOF bool
	}{
		{"inside", 100, 200, 200, false},
		{"up to the end", 2000, 1000, 1000, false},
		{"past the end", 2900, 200, 100, true},
		{"beyond", 5000, 10, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			buf := make([]byte, tc.n)
			n, err := f.ReadAt(buf, tc.off)
			if n != tc.wantN || errors.Is(err, io.EOF) != tc.wantEOF || (!tc.wantEOF && err != nil) {
				t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d, EOF %v", tc.n, tc.off, n, err, tc.wantN, tc.wantEOF)
			}
			if end := tc.off + int64(n); n > 0 && string(buf[:n]) != string(data[tc.off:end]) {
				t.Fatalf("ReadAt at %d read other bytes", tc.off)
			}
		})
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
}

package e2e

import (
	"fmt"
	"testing"
)

// TestInProcessNoEchoOfOwnCommits: after a device pushed files, its next
// pass does not download the heads of its own commits again (the cursor
// moves over them), while another device still receives everything.
func TestInProcessNoEchoOfOwnCommits(t *testing.T) {
	ts := startServer(t)
	a, b := newDevice(t, ts, "a"), newDevice(t, ts, "b")
	a.addRoot("docs")
	b.joinRoot("docs")
	const files = 300
	for i := range files {
		a.write(fmt.Sprintf("dir%d/file-with-a-longish-name-%04d.txt", i%10, i), []byte(fmt.Sprintf("content %d\n", i)), 0o644)
	}
	if res := a.sync(); res.FilesUploaded != files {
		t.Fatalf("upload: %+v", res.Stats)
	}
	_, before := a.sess.WireStats()
	res := a.sync()
	_, after := a.sess.WireStats()
	if res.FilesDownloaded != 0 || res.FilesUploaded != 0 {
		t.Fatalf("a pass with nothing changed moved files: %+v", res.Stats)
	}
	// 300 heads are ~40 KiB; an empty answer and acknowledgements are a
	// few hundred bytes.
	if got := after - before; got > 10<<10 {
		t.Errorf("a pass with nothing changed received %d bytes: the heads of its own commits came back", got)
	}
	if res := b.sync(); res.FilesDownloaded != files {
		t.Fatalf("b received %d files, want %d", res.FilesDownloaded, files)
	}
	sameTree(t, a.dir, b.dir)
	// A change by b still reaches a after a's own commits were skipped.
	b.write("dir0/from-b.txt", []byte("b\n"), 0o644)
	b.sync()
	if res := a.sync(); res.FilesDownloaded != 1 {
		t.Fatalf("a after b's change: %+v", res.Stats)
	}
	sameTree(t, a.dir, b.dir)
}

package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/client"
)

// tempFiles lists the qic temporary files under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // a temporary renamed while we walk
			}
			return err
		}
		if client.IsTempName(d.Name()) {
			found = append(found, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// killWhen starts qic sync for q and kills it (SIGKILL) as soon as ready
// says so; it fails if the sync ends first.
func killWhen(t *testing.T, q *qicHome, what string, ready func() bool) {
	t.Helper()
	out, p := startProcessCmd(t, "qic", "--home", q.home, "sync")
	deadline := time.Now().Add(2 * time.Minute)
	for !ready() {
		select {
		case <-p.exited:
			t.Fatalf("qic sync ended before %s:\n%s", what, out)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 2 minutes", what)
		}
		time.Sleep(time.Millisecond)
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// onlyWholeFiles fails if a file under dir other than qic's temporaries is
// not exactly one of the allowed contents of its path.
func onlyWholeFiles(t *testing.T, dir string, allowed map[string][]cas.ID) {
	t.Helper()
	for path, e := range treeOf(t, dir) {
		if client.IsTempName(filepath.Base(path)) {
			continue
		}
		ok := false
		for _, id := range allowed[path] {
			ok = ok || e.Hash == id.String()
		}
		if !ok {
			t.Errorf("%s in %s is not a whole version of the file (hash %s)", path, dir, e.Hash)
		}
	}
}

func TestCrashClientKilledMidTransfer(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	addr, _, _ := startQuicsIn(t, dataDir, "--views=false")
	a, b := newQicHome(t, "a"), newQicHome(t, "b")
	a.must("register", "--server", addr, "--password", serverPassword, "--name", "a")
	b.must("register", "--server", addr, "--password", serverPassword, "--name", "b")
	a.must("root", "add", a.dir, "--root-password", rootPassword, "--name", "big")
	b.must("root", "join", "big", b.dir, "--root-password", rootPassword)

	const size = 24 << 20
	first := map[string][]byte{"one.bin": randomBytes(501, size), "sub/two.bin": randomBytes(502, size)}
	allowed := map[string][]cas.ID{}
	for name, data := range first {
		a.write(name, data, 0o644)
		allowed[name] = append(allowed[name], cas.Sum(data))
	}

	// Mid-upload: killed once the server has started storing chunks.
	before := packBytes(t, dataDir)
	killWhen(t, a, "upload bytes on the server", func() bool { return packBytes(t, dataDir) > before+2<<20 })
	if temps := tempFiles(t, a.dir); len(temps) != 0 {
		t.Errorf("an upload left files in the synced tree: %q", temps)
	}
	onlyWholeFiles(t, a.dir, allowed)
	// Whatever b sees of the server now is whole files.
	b.sync()
	onlyWholeFiles(t, b.dir, allowed)
	// The next sync finishes the upload.
	a.sync()
	b.sync()
	sameTree(t, a.dir, b.dir)

	// Mid-download: b is killed while it writes a temporary file.
	second := map[string][]byte{"one.bin": randomBytes(503, size), "sub/two.bin": randomBytes(504, size)}
	for name, data := range second {
		a.write(name, data, 0o644)
		allowed[name] = append(allowed[name], cas.Sum(data))
	}
	a.sync()
	killWhen(t, b, "a temporary file in b's tree", func() bool { return len(tempFiles(t, b.dir)) > 0 })
	onlyWholeFiles(t, b.dir, allowed)
	temps := tempFiles(t, b.dir)
	t.Logf("qic killed mid-download left %d temporary files: %q", len(temps), temps)
	for _, tmp := range temps {
		if !strings.HasPrefix(filepath.Base(tmp), client.TempPrefix) {
			t.Errorf("%s is not a qic temporary", tmp)
		}
	}
	// The next start removes them and converges.
	b.sync()
	if left := tempFiles(t, b.dir); len(left) != 0 {
		t.Errorf("temporary files survived the next sync: %q", left)
	}
	sameTree(t, a.dir, b.dir)
}

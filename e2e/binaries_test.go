package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/syncbuf"
)

// binDir holds quics and qic, built once by TestMain.
var binDir string

// serverRunAvailable is false while cmd/quics has no run command.
var serverRunAvailable bool

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "quics-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	build := exec.Command("go", "build", "-o", dir+string(filepath.Separator), "./cmd/...")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build binaries: %v\n%s", err, out)
		return 1
	}
	binDir = dir
	serverRunAvailable = exec.Command(filepath.Join(dir, "quics"), "run", "--help").Run() == nil
	return m.Run()
}

// needServer skips a binary test until the server command exists.
func needServer(t *testing.T) {
	t.Helper()
	if !serverRunAvailable {
		t.Skip("cmd/quics has no run command yet")
	}
}

// freeUDPAddr returns a loopback UDP address nobody listens on.
func freeUDPAddr(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	return addr
}

// startProcess starts a long-running binary, killed at cleanup.
func startProcess(t *testing.T, name string, args ...string) *syncbuf.Buffer {
	t.Helper()
	out, _ := startProcessCmd(t, name, args...)
	return out
}

// process is a running binary; exited closes when it has ended.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startProcessCmd is startProcess that also returns the process.
func startProcessCmd(t *testing.T, name string, args ...string) (*syncbuf.Buffer, *process) {
	t.Helper()
	out := &syncbuf.Buffer{}
	cmd := exec.Command(filepath.Join(binDir, name), args...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s %s output:\n%s", name, strings.Join(args, " "), out)
		}
	})
	return out, p
}

// startQuics runs the server on a free loopback port and waits until it
// says it listens.
func startQuics(t *testing.T) string {
	t.Helper()
	addr, _, _ := startQuicsIn(t, filepath.Join(t.TempDir(), "data"), "--views=false")
	return addr
}

// startQuicsIn runs the server on dataDir, its sync and admin ports free
// loopback ones, and waits until its admin API is published. It returns the
// sync address, the process's output and the process.
func startQuicsIn(t *testing.T, dataDir string, extra ...string) (string, *syncbuf.Buffer, *process) {
	t.Helper()
	needServer(t)
	addr := freeUDPAddr(t)
	args := append([]string{"run", "--data", dataDir, "--listen", addr, "--password", serverPassword,
		"--admin", "127.0.0.1:0", "--admin-h3", "127.0.0.1:0"}, extra...)
	out, cmd := startProcessCmd(t, "quics", args...)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), "admin API on") || !strings.Contains(out.String(), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("quics did not listen on %s within 15 s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return addr, out, cmd
}

// qicHome is one client home used through the qic binary.
type qicHome struct {
	t    *testing.T
	home string
	dir  string
}

func newQicHome(t *testing.T, name string) *qicHome {
	base := t.TempDir()
	q := &qicHome{t: t, home: filepath.Join(base, name+"-home"), dir: filepath.Join(base, name+"-tree")}
	if err := os.MkdirAll(q.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return q
}

// run runs qic with the home and returns stdout, stderr and the exit code.
func (q *qicHome) run(args ...string) (stdout, stderr string, code int) {
	q.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "qic"), append([]string{"--home", q.home}, args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		q.t.Fatalf("qic %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// must runs qic and fails the test unless it exits 0.
func (q *qicHome) must(args ...string) string {
	q.t.Helper()
	out, errOut, code := q.run(args...)
	if code != 0 {
		q.t.Fatalf("qic %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

// syncJSON is qic sync --json's output.
type syncJSON struct {
	FilesUploaded   int   `json:"files_uploaded"`
	FilesDownloaded int   `json:"files_downloaded"`
	FilesDeleted    int   `json:"files_deleted"`
	ChunksSent      int   `json:"chunks_sent"`
	ChunksSkipped   int   `json:"chunks_skipped"`
	ChunksReused    int   `json:"chunks_reused"`
	ChunksFetched   int   `json:"chunks_fetched"`
	BytesSent       int64 `json:"bytes_sent"`
	BytesReceived   int64 `json:"bytes_received"`
	Conflicts       int   `json:"conflicts"`
}

func (q *qicHome) sync() syncJSON {
	q.t.Helper()
	out := q.must("sync", "--json")
	var s syncJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		q.t.Fatalf("qic sync --json printed %q: %v", out, err)
	}
	return s
}

func (q *qicHome) write(rel string, data []byte, mode os.FileMode) {
	q.t.Helper()
	writeFile(q.t, filepath.Join(q.dir, filepath.FromSlash(rel)), data, mode)
}

// pair registers two homes with a fresh server, the first adding a root
// the second joins.
func pair(t *testing.T) (a, b *qicHome) {
	t.Helper()
	addr := startQuics(t)
	a, b = newQicHome(t, "a"), newQicHome(t, "b")
	a.must("register", "--server", addr, "--password", serverPassword, "--name", "a")
	b.must("register", "--server", addr, "--password", serverPassword, "--name", "b")
	a.must("root", "add", a.dir, "--root-password", rootPassword, "--name", "shared")
	b.must("root", "join", "shared", b.dir, "--root-password", rootPassword)
	return a, b
}

func TestBinariesMixedTreeEditsAndCatchUp(t *testing.T) {
	a, b := pair(t)
	mixed := &device{t: t, dir: a.dir}
	mixedTree(mixed)
	if s := a.sync(); s.FilesUploaded != 7 || s.ChunksSent == 0 || s.BytesSent == 0 {
		t.Fatalf("upload: %+v", s)
	}
	if s := b.sync(); s.FilesDownloaded != 7 || s.BytesReceived == 0 {
		t.Fatalf("download: %+v", s)
	}
	sameTree(t, a.dir, b.dir)

	// b stays offline through several rounds of edits, then catches up.
	a.write("readme.txt", []byte("round one\n"), 0o644)
	a.sync()
	a.write("big.bin", append(randomBytes(3, 1<<20), "tail"...), 0o644)
	a.write("a/b/c/d/deep.dat", randomBytes(2, 10<<10), 0o644)
	if err := os.Remove(filepath.Join(a.dir, "empty")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(a.dir, "bin/tool.sh"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(a.dir, "unicodé/ñame-日本.bin"), filepath.Join(a.dir, "renamed ü.bin")); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(a.dir, "readme.txt"))
	if err != nil {
		t.Fatal(err)
	}
	a.write("copies/readme copy.txt", data, 0o644)
	s := a.sync()
	if s.FilesDeleted != 2 || s.FilesUploaded != 5 {
		t.Fatalf("edits: %+v", s)
	}
	s = b.sync()
	if s.FilesDeleted != 2 || s.FilesDownloaded < 5 {
		t.Fatalf("catch up: %+v", s)
	}
	sameTree(t, a.dir, b.dir)
	if _, err := os.Stat(filepath.Join(b.dir, "unicodé")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("emptied directory left on b: %v", err)
	}
}

func TestBinariesLargeFileInsertAndDuplicate(t *testing.T) {
	a, b := pair(t)
	const size = 64 << 20
	data := randomBytes(11, size)
	a.write("large.bin", data, 0o644)
	if s := a.sync(); s.FilesUploaded != 1 || s.ChunksSent < size/(256<<10) {
		t.Fatalf("upload: %+v", s)
	}
	if s := b.sync(); s.FilesDownloaded != 1 {
		t.Fatalf("download: %+v", s)
	}
	edited := slices.Concat(data[:size/2], randomBytes(12, 100), data[size/2:])
	a.write("large.bin", edited, 0o644)
	s := a.sync()
	if s.ChunksSent == 0 || s.ChunksSent >= 5 {
		t.Fatalf("a 100-byte insert in 64 MiB sent %d chunks: %+v", s.ChunksSent, s)
	}
	t.Logf("100-byte insert in 64 MiB: %d chunks, %d bytes on the wire", s.ChunksSent, s.BytesSent)
	a.write("copy of large.bin", edited, 0o644)
	if s := a.sync(); s.ChunksSent != 0 || s.FilesUploaded != 1 {
		t.Fatalf("duplicate of a large file: %+v", s)
	}
	if s := b.sync(); s.FilesDownloaded != 2 || s.BytesReceived > 4<<20 {
		t.Fatalf("b: %+v", s)
	}
	sameTree(t, a.dir, b.dir)
}

func TestBinariesConflictExitCode(t *testing.T) {
	a, b := pair(t)
	a.write("notes.txt", []byte("base\n"), 0o644)
	a.sync()
	b.sync()
	a.write("notes.txt", []byte("edited on a\n"), 0o644)
	b.write("notes.txt", []byte("edited on b, offline\n"), 0o644)
	a.sync()
	_, errOut, code := b.run("sync")
	if code != 3 {
		t.Fatalf("conflicting sync: exit %d, want 3; stderr: %s", code, errOut)
	}
	if !strings.Contains(errOut, "notes.txt") {
		t.Fatalf("conflict not listed on stderr: %q", errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(b.dir, "notes.txt")); string(got) != "edited on b, offline\n" {
		t.Fatalf("b's edit was overwritten: %q", got)
	}
	var st struct {
		Roots []struct {
			Conflicts []string `json:"conflicts"`
			Pending   []string `json:"pending"`
		} `json:"roots"`
	}
	if err := json.Unmarshal([]byte(b.must("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Roots) != 1 || !slices.Equal(st.Roots[0].Conflicts, []string{"notes.txt"}) {
		t.Fatalf("status: %+v", st)
	}
}

func TestBinariesRefusals(t *testing.T) {
	addr := startQuics(t)
	c := newQicHome(t, "c")
	_, errOut, code := c.run("register", "--server", addr, "--password", "wrong")
	if code != 1 || !strings.Contains(errOut, "password") {
		t.Fatalf("wrong server password: exit %d, stderr %q", code, errOut)
	}
	c.must("register", "--server", addr, "--password", serverPassword)
	c.must("root", "add", c.dir, "--root-password", rootPassword, "--name", "r")
	d := newQicHome(t, "d")
	d.must("register", "--server", addr, "--password", serverPassword)
	_, errOut, code = d.run("root", "join", "r", d.dir, "--root-password", "wrong")
	if code != 1 || !strings.Contains(errOut, "password") {
		t.Fatalf("wrong root password: exit %d, stderr %q", code, errOut)
	}
	out := d.must("root", "list", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("a refused join left a root: %s", out)
	}
	_, errOut, code = newQicHome(t, "e").run("sync")
	if code != 1 || !strings.Contains(errOut, "not registered") {
		t.Fatalf("sync without registration: exit %d, stderr %q", code, errOut)
	}

	// Another server at the pinned address: its certificate is refused.
	other := startQuics(t)
	cfgPath := filepath.Join(c.home, "config.json")
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	moved := bytes.Replace(cfg, []byte(`"`+addr+`"`), []byte(`"`+other+`"`), 1)
	if bytes.Equal(moved, cfg) {
		t.Fatalf("config.json does not hold the server address %s:\n%s", addr, cfg)
	}
	if err := os.WriteFile(cfgPath, moved, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = c.run("sync")
	if code != 1 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("changed certificate: exit %d, stderr %q", code, errOut)
	}
}

func TestBinariesRunPropagation(t *testing.T) {
	a, b := pair(t)
	a.write("seed.txt", []byte("seed"), 0o644)
	a.sync()
	b.sync()
	startProcess(t, filepath.Join("qic"), "--home", a.home, "run")
	startProcess(t, filepath.Join("qic"), "--home", b.home, "run")
	time.Sleep(300 * time.Millisecond) // both watch streams up

	const edits = 20
	var lat []time.Duration
	for i := range edits {
		content := randomBytes(uint64(1000+i), 2000)
		want := cas.Sum(content)
		start := time.Now()
		a.write("live.txt", content, 0o644)
		deadline := start.Add(10 * time.Second)
		for {
			got, err := os.ReadFile(filepath.Join(b.dir, "live.txt"))
			if err == nil && cas.Sum(got) == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("edit %d did not reach b within 10 s", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("qic run propagation over %d edits: p50 %v, max %v", edits, lat[len(lat)/2], lat[len(lat)-1])
}

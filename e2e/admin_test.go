package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/quic-s/quics/admin"
	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/tlsutil"
)

// quicsCLI runs the quics binary with stdin and returns its output and exit
// code.
func quicsCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "quics"), args...)
	var out, errOut bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("quics %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

func mustQuics(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := quicsCLI(t, stdin, args...)
	if code != 0 {
		t.Fatalf("quics %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
	}
	return out
}

func showJSON[T any](t *testing.T, dataDir string, args ...string) T {
	t.Helper()
	out := mustQuics(t, "", append(append([]string{"show"}, args...), "--json", "--data", dataDir)...)
	var v T
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("quics show %v --json printed %q: %v", args, out, err)
	}
	return v
}

// adminHTTP is a raw HTTP client of a data dir's admin API, trusting the
// server's certificate by its fingerprint.
type adminHTTP struct {
	url, token string
	h1, h3     *http.Client
	h3URL      string
}

func newAdminHTTP(t *testing.T, dataDir, output string) *adminHTTP {
	t.Helper()
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dataDir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	block, _ := pem.Decode([]byte(read("tls/cert.pem")))
	if block == nil {
		t.Fatal("no certificate in tls/cert.pem")
	}
	fp := tlsutil.Fingerprint(block.Bytes)
	m := regexp.MustCompile(`admin API on (https://\S+) \(udp, HTTP/3\)`).FindStringSubmatch(output)
	if m == nil {
		t.Fatalf("no HTTP/3 admin address in the server output:\n%s", output)
	}
	h3 := &http3.Transport{TLSClientConfig: tlsutil.PinnedClientConfig(fp, http3.NextProtoH3)}
	t.Cleanup(func() { _ = h3.Close() })
	return &adminHTTP{
		url:   read(admin.AddrFile),
		token: read(admin.TokenFile),
		h1:    &http.Client{Transport: &http.Transport{TLSClientConfig: tlsutil.PinnedClientConfig(fp, "http/1.1")}, Timeout: time.Minute},
		h3:    &http.Client{Transport: h3, Timeout: time.Minute},
		h3URL: m[1],
	}
}

// get fetches path over HTTP/1.1 (or HTTP/3) with or without the token and
// returns the status and body.
func (a *adminHTTP) get(t *testing.T, overH3, withToken bool, path string) (int, string) {
	t.Helper()
	base, c := a.url, a.h1
	if overH3 {
		base, c = a.h3URL, a.h3
	}
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if withToken {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", base+path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if overH3 && resp.ProtoMajor != 3 {
		t.Fatalf("GET %s answered over %s", base+path, resp.Proto)
	}
	return resp.StatusCode, string(body)
}

func TestBinariesAdminAPI(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	addr, out, proc := startQuicsIn(t, dataDir, "--log-level", "debug", "--log-format", "json")
	api := newAdminHTTP(t, dataDir, out.String())

	a, b := newQicHome(t, "a"), newQicHome(t, "b")
	a.must("register", "--server", addr, "--password", serverPassword, "--name", "laptop")
	b.must("register", "--server", addr, "--password", serverPassword, "--name", "desktop")
	a.must("root", "add", a.dir, "--root-password", rootPassword, "--name", "docs")
	b.must("root", "join", "docs", b.dir, "--root-password", rootPassword)
	notes1, notes2 := []byte("first draft\n"), []byte("second draft, longer\n")
	photo := randomBytes(7, 300<<10)
	a.write("notes.txt", notes1, 0o644)
	a.write("pics/photo.bin", photo, 0o644)
	a.sync()
	a.write("notes.txt", notes2, 0o644)
	a.sync()
	if err := os.Remove(filepath.Join(a.dir, "pics/photo.bin")); err != nil {
		t.Fatal(err)
	}
	a.sync()
	b.sync()

	t.Run("token", func(t *testing.T) {
		for _, h3 := range []bool{false, true} {
			status, body := api.get(t, h3, false, "/v1/clients")
			if status != http.StatusUnauthorized || !strings.Contains(body, `"code": "unauthorized"`) {
				t.Errorf("h3=%v without token: %d %s", h3, status, body)
			}
			status, body = api.get(t, h3, true, "/v1/clients")
			if status != http.StatusOK || !strings.Contains(body, `"laptop"`) {
				t.Errorf("h3=%v with token: %d %s", h3, status, body)
			}
			if status, body := api.get(t, h3, false, "/healthz"); status != http.StatusOK || !strings.Contains(body, "ok") {
				t.Errorf("h3=%v healthz: %d %s", h3, status, body)
			}
		}
		req, _ := http.NewRequest(http.MethodGet, api.url+"/v1/clients", nil)
		req.Header.Set("Authorization", "Bearer "+api.token+"x")
		resp, err := api.h1.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("wrong token: HTTP %d", resp.StatusCode)
		}
		if st, err := os.Stat(filepath.Join(dataDir, admin.TokenFile)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("admin-token: %v, mode %v", err, st.Mode())
		}
		mustQuics(t, "", "health", "--data", dataDir)
	})

	t.Run("pprof", func(t *testing.T) {
		if status, _ := api.get(t, false, false, "/debug/pprof/heap"); status != http.StatusUnauthorized {
			t.Errorf("heap profile without the token: %d, want 401 (loopback is not enough)", status)
		}
		status, body := api.get(t, false, true, "/debug/pprof/heap?debug=1")
		if status != http.StatusOK || !strings.Contains(body, "HeapAlloc") {
			t.Errorf("heap profile with the token: %d %.200s", status, body)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		status, body := api.get(t, false, false, "/metrics")
		if status != http.StatusOK {
			t.Fatalf("metrics from loopback: %d %s", status, body)
		}
		for _, series := range []string{
			"quics_connected_clients", "quics_uploads_total", "quics_downloads_total",
			"quics_chunks_in_total", "quics_chunk_bytes_in_total", "quics_chunks_out_total", "quics_chunk_bytes_out_total",
			"quics_dedup_ratio", "quics_store_bytes", "quics_store_chunks", "quics_commit_duration_seconds_bucket",
			"quics_conflicts_open", "quics_gc_runs_total", "quics_gc_freed_bytes_total",
		} {
			if !regexp.MustCompile(`(?m)^` + series + `[ {]`).MatchString(body) {
				t.Errorf("metrics lack %s", series)
			}
		}
		if !strings.Contains(body, "quics_store_remote_bytes 0") {
			t.Error("metrics lack quics_store_remote_bytes 0 for a local store")
		}
		// Three commits from a: two versions of notes, the photo, its delete.
		if m := regexp.MustCompile(`(?m)^quics_uploads_total (\d+)`).FindStringSubmatch(body); m == nil || m[1] != "4" {
			t.Errorf("quics_uploads_total: %v", m)
		}
	})

	clients := showJSON[[]admin.ClientInfo](t, dataDir, "clients")
	roots := showJSON[[]admin.RootInfo](t, dataDir, "roots")
	files := showJSON[[]admin.FileInfo](t, dataDir, "files", "docs")
	hist := showJSON[[]admin.VersionInfo](t, dataDir, "history", "docs", "notes.txt")

	t.Run("show", func(t *testing.T) {
		if len(clients) != 2 || clients[0].Name != "desktop" || clients[1].Name != "laptop" ||
			clients[0].Roots[0] != "docs" || clients[1].LastSeen == nil {
			t.Errorf("clients: %+v", clients)
		}
		if len(roots) != 1 || roots[0].Name != "docs" || roots[0].Files != 1 || roots[0].Deleted != 1 ||
			roots[0].Bytes != uint64(len(notes2)) || roots[0].Versions != 4 || len(roots[0].Members) != 2 ||
			roots[0].OwnerName != "laptop" || roots[0].HistoryBytes != uint64(len(notes1)+len(notes2)+len(photo)) {
			t.Errorf("roots: %+v", roots)
		}
		if len(files) != 2 {
			t.Fatalf("files: %+v", files)
		}
		notes, pic := files[0], files[1]
		if notes.Path != "notes.txt" || notes.Hash != cas.Sum(notes2).String() || notes.Size != uint64(len(notes2)) || notes.Deleted ||
			pic.Path != "pics/photo.bin" || !pic.Deleted || pic.Seq <= notes.Seq || notes.ClientName != "laptop" {
			t.Errorf("files: %+v", files)
		}
		if len(hist) != 2 || hist[0].Hash != cas.Sum(notes1).String() || hist[1].Hash != cas.Sum(notes2).String() ||
			hist[0].Seq >= hist[1].Seq || hist[1].Size != uint64(len(notes2)) || hist[0].Client != clients[1].ID ||
			hist[1].Time.Before(hist[0].Time) || hist[0].Deleted {
			t.Errorf("history: %+v", hist)
		}
		table := mustQuics(t, "", "show", "files", "docs", "--data", dataDir)
		if !strings.Contains(table, "PATH") || !strings.Contains(table, "notes.txt") || !strings.Contains(table, "deleted") {
			t.Errorf("show files table:\n%s", table)
		}
		if _, errOut, code := quicsCLI(t, "", "show", "files", "nope", "--data", dataDir); code != 1 || !strings.Contains(errOut, "not found") {
			t.Errorf("show files of a missing root: exit %d, %s", code, errOut)
		}
		if _, _, code := quicsCLI(t, "", "show", "files", "--data", dataDir); code != 2 {
			t.Errorf("show files without a root: exit %d, want 2", code)
		}
	})

	newPassword := "a-new-server-password"
	t.Run("password", func(t *testing.T) {
		mustQuics(t, newPassword+"\n", "password", "set", "--data", dataDir)
		c := newQicHome(t, "c")
		if _, errOut, code := c.run("register", "--server", addr, "--password", serverPassword, "--name", "old-pw"); code == 0 {
			t.Fatal("the old password still registers")
		} else if !strings.Contains(errOut, "password") {
			t.Errorf("old password refusal: %s", errOut)
		}
		c.must("register", "--server", addr, "--password", newPassword, "--name", "new-pw")
		a.write("after.txt", []byte("still syncing\n"), 0o644)
		if s := a.sync(); s.FilesUploaded != 1 {
			t.Errorf("a registered device stopped syncing after the password change: %+v", s)
		}
	})

	t.Run("remove client", func(t *testing.T) {
		if _, errOut, code := quicsCLI(t, "no\n", "client", "remove", "desktop", "--data", dataDir); code != 1 || !strings.Contains(errOut, "aborted") {
			t.Fatalf("answering no: exit %d, %s", code, errOut)
		}
		if s := b.sync(); s.FilesDownloaded != 1 {
			t.Fatalf("b after an aborted removal: %+v", s)
		}
		mustQuics(t, "yes\n", "client", "remove", "desktop", "--data", dataDir)
		if _, errOut, code := b.run("sync", "--json"); code == 0 {
			t.Fatal("a removed client still syncs")
		} else if !strings.Contains(strings.ToLower(errOut), "unauthenticated") && !strings.Contains(errOut, "token") {
			t.Errorf("removed client's error: %s", errOut)
		}
	})

	online := map[string]string{}
	for _, args := range [][]string{{"roots"}, {"files", "docs"}, {"history", "docs", "notes.txt"}} {
		online[strings.Join(args, " ")] = mustQuics(t, "", append(append([]string{"show"}, args...), "--json", "--data", dataDir)...)
	}

	t.Run("stop and offline", func(t *testing.T) {
		if got := mustQuics(t, "", "stop", "--data", dataDir); !strings.Contains(got, "quics stopped") {
			t.Errorf("stop printed %q", got)
		}
		select {
		case <-proc.exited:
		case <-time.After(30 * time.Second):
			t.Fatal("the server process still runs after quics stop")
		}
		if _, err := os.Stat(filepath.Join(dataDir, admin.AddrFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("admin-addr after stop: %v", err)
		}
		for what, want := range online {
			got := mustQuics(t, "", append(append([]string{"show"}, strings.Fields(what)...), "--json", "--data", dataDir)...)
			if got != want {
				t.Errorf("show %s offline differs from online:\noffline %s\nonline  %s", what, got, want)
			}
		}
		if got := mustQuics(t, "", "stop", "--data", dataDir); !strings.Contains(got, "no quics server is running") {
			t.Errorf("stop without a server printed %q", got)
		}
		if _, _, code := quicsCLI(t, "", "health", "--data", dataDir); code != 1 {
			t.Errorf("health without a server: exit %d", code)
		}
		// Offline removal of a root, then the same data serves again.
		mustQuics(t, "", "root", "remove", "docs", "--yes", "--data", dataDir)
		if roots := showJSON[[]admin.RootInfo](t, dataDir, "roots"); len(roots) != 0 {
			t.Errorf("roots after removal: %+v", roots)
		}
	})

	t.Run("no secrets in logs", func(t *testing.T) {
		logs := out.String()
		secrets := map[string]string{
			"server password":     serverPassword,
			"new server password": newPassword,
			"root password":       rootPassword,
			"admin token":         api.token,
		}
		for _, h := range []*qicHome{a, b} {
			cfg, err := os.ReadFile(filepath.Join(h.home, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			var c struct {
				Token string `json:"token"`
			}
			if err := json.Unmarshal(cfg, &c); err != nil || c.Token == "" {
				t.Fatalf("client config %s: %v", cfg, err)
			}
			secrets["token of "+h.home] = c.Token
		}
		if !strings.Contains(logs, `"level":"DEBUG"`) {
			t.Fatalf("the server logged nothing at debug level:\n%s", logs)
		}
		for what, s := range secrets {
			if strings.Contains(logs, s) {
				t.Errorf("the server's output contains the %s", what)
			}
		}
	})
}

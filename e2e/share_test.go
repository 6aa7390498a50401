package e2e

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/quic-s/quics/internal/tlsutil"
)

// shareServer is a quics binary serving share links on 127.0.0.1, with
// HTTP clients that trust exactly its certificate.
type shareServer struct {
	addr, dataDir, base string
	h1, h3              *http.Client
}

func startShareServer(t *testing.T) *shareServer {
	t.Helper()
	dataDir := filepath.Join(t.TempDir(), "data")
	addr, out, _ := startQuicsIn(t, dataDir, "--views=false", "--share-listen", "127.0.0.1:0")
	re := regexp.MustCompile(`share links on 127\.0\.0\.1:(\d+) \(tcp and udp\): (https://127\.0\.0\.1:(\d+))/s/<token>`)
	deadline := time.Now().Add(15 * time.Second)
	var m []string
	for m = re.FindStringSubmatch(out.String()); m == nil || m[1] != m[3]; m = re.FindStringSubmatch(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("quics did not announce its share listener:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	pemBytes, err := os.ReadFile(filepath.Join(dataDir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		t.Fatal("no certificate in tls/cert.pem")
	}
	fp := tlsutil.Fingerprint(block.Bytes)
	h1 := &http.Transport{TLSClientConfig: tlsutil.PinnedClientConfig(fp, "http/1.1")}
	h3 := &http3.Transport{TLSClientConfig: tlsutil.PinnedClientConfig(fp, http3.NextProtoH3)}
	t.Cleanup(func() { h1.CloseIdleConnections(); _ = h3.Close() })
	return &shareServer{
		addr: addr, dataDir: dataDir, base: m[2],
		h1: &http.Client{Transport: h1, Timeout: time.Minute}, h3: &http.Client{Transport: h3, Timeout: time.Minute},
	}
}

type download struct {
	status int
	header http.Header
	body   []byte
}

func (s *shareServer) get(t *testing.T, c *http.Client, url string, header ...string) download {
	t.Helper()
	d, err := s.tryGet(c, url, header...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (s *shareServer) tryGet(c *http.Client, url string, header ...string) (download, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return download{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return download{}, fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return download{}, fmt.Errorf("GET %s: %w", url, err)
	}
	return download{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// qicShare is an element of qic share list --json (and of quics show
// shares --json: the same keys).
type qicShare struct {
	ID           string     `json:"id"`
	URL          string     `json:"url"`
	Root         string     `json:"root"`
	Path         string     `json:"path"`
	Client       string     `json:"client"`
	ClientName   string     `json:"client_name"`
	Created      time.Time  `json:"created"`
	Expires      *time.Time `json:"expires"`
	MaxDownloads uint64     `json:"max_downloads"`
	Downloads    uint64     `json:"downloads"`
	LastDownload *time.Time `json:"last_download"`
	Version      string     `json:"version"`
	Seq          uint64     `json:"seq"`
	Size         uint64     `json:"size"`
	State        string     `json:"state"`
}

func (q *qicHome) shares() []qicShare {
	q.t.Helper()
	out := q.must("share", "list", "--json")
	var list []qicShare
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		q.t.Fatalf("qic share list --json printed %q: %v", out, err)
	}
	return list
}

func shareByID(t *testing.T, list []qicShare, id string) qicShare {
	t.Helper()
	for _, s := range list {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("share %s not in %+v", id, list)
	return qicShare{}
}

func (q *qicHome) share(args ...string) qicShare {
	q.t.Helper()
	out := q.must(append([]string{"share", "--json"}, args...)...)
	var s qicShare
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		q.t.Fatalf("qic share --json printed %q: %v", out, err)
	}
	return s
}

func TestBinariesShareLinks(t *testing.T) {
	srv := startShareServer(t)
	a, b := newQicHome(t, "a"), newQicHome(t, "b")
	a.must("register", "--server", srv.addr, "--password", serverPassword, "--name", "a")
	b.must("register", "--server", srv.addr, "--password", serverPassword, "--name", "b")
	a.must("root", "add", a.dir, "--root-password", rootPassword, "--name", "docs")
	b.must("root", "join", "docs", b.dir, "--root-password", rootPassword)

	names := map[string][]byte{
		"notes/a b & c #1.txt":  []byte("spaces, an ampersand and a hash\n"),
		"ünïcødé 日本語.txt":       []byte("unicode\n"),
		"100% sure?=yes;x.json": []byte(`{"ok":true}`),
	}
	for rel, data := range names {
		a.write(rel, data, 0o644)
	}
	big := randomBytes(42, 700<<10)
	a.write("movie.bin", big, 0o644)
	a.sync()

	// The plain output is the URL alone; the link works --count times,
	// over HTTP/1.1 and HTTP/3, then answers 410.
	limited := strings.TrimSpace(a.must("share", a.path("notes/a b & c #1.txt"), "--count", "2"))
	if !strings.HasPrefix(limited, srv.base+"/s/") || strings.ContainsAny(limited, " &#") {
		t.Fatalf("link %q, want %s/s/<token>", limited, srv.base)
	}
	for i, c := range []*http.Client{srv.h1, srv.h3} {
		d := srv.get(t, c, limited)
		if d.status != http.StatusOK || !bytes.Equal(d.body, names["notes/a b & c #1.txt"]) {
			t.Fatalf("download %d: %d %q", i+1, d.status, d.body)
		}
	}
	if d := srv.get(t, srv.h1, limited); d.status != http.StatusGone {
		t.Errorf("third download: %d, want 410", d.status)
	}

	// Every name arrives as it is, whatever its characters.
	for rel, data := range names {
		s := a.share(a.path(rel), "--count", "0")
		d := srv.get(t, srv.h1, s.URL)
		_, params, err := mime.ParseMediaType(d.header.Get("Content-Disposition"))
		if d.status != http.StatusOK || !bytes.Equal(d.body, data) || err != nil || params["filename"] != filepath.Base(rel) {
			t.Errorf("%q: %d %q, Content-Disposition %q (%v)", rel, d.status, d.body, d.header.Get("Content-Disposition"), err)
		}
	}

	// Concurrent downloads never exceed the count; ranges work and count.
	const limit, tries = 3, 10
	movie := a.share(a.path("movie.bin"), "--count", fmt.Sprint(limit), "--expires", "1h")
	if movie.Expires == nil || movie.Expires.Sub(movie.Created) > time.Hour || movie.Expires.Sub(movie.Created) < 59*time.Minute {
		t.Errorf("--expires 1h: created %v, expires %v", movie.Created, movie.Expires)
	}
	var wg sync.WaitGroup
	statuses := make(chan int, tries)
	for i := range tries {
		wg.Go(func() {
			c := srv.h1
			if i%2 == 1 {
				c = srv.h3
			}
			d, err := srv.tryGet(c, movie.URL, "Range", "bytes=100000-299999")
			switch {
			case err != nil:
				t.Error(err)
			case d.status == http.StatusPartialContent && !bytes.Equal(d.body, big[100000:300000]):
				t.Errorf("a range download got other bytes")
			}
			statuses <- d.status
		})
	}
	wg.Wait()
	close(statuses)
	counts := map[int]int{}
	for st := range statuses {
		counts[st]++
	}
	if counts[http.StatusPartialContent] != limit || counts[http.StatusGone] != tries-limit {
		t.Errorf("statuses %v, want %d × 206 and %d × 410", counts, limit, tries-limit)
	}

	// A pinned version survives retention and gc while the head moves on.
	a.write("report.txt", []byte("first draft\n"), 0o644)
	a.sync()
	v1 := a.history("report.txt")[0].Hash
	head := a.share(a.path("report.txt"), "--count", "0")
	pinned := a.share(a.path("report.txt"), "--version", v1[:10], "--count", "0")
	if pinned.Version != v1 || pinned.Seq == 0 || head.Version != "" {
		t.Fatalf("pinned link %+v, head link %+v", pinned, head)
	}
	a.write("report.txt", []byte("final version\n"), 0o644)
	a.sync()
	mustQuics(t, "", "root", "set-retention", "docs", "--keep-last", "1", "--data", srv.dataDir)
	if h := a.history("report.txt"); len(h) != 1 {
		t.Fatalf("retention kept %d versions", len(h))
	}
	mustQuics(t, "", "gc", "--margin", "0", "--data", srv.dataDir)
	if d := srv.get(t, srv.h3, pinned.URL); d.status != http.StatusOK || string(d.body) != "first draft\n" {
		t.Errorf("pinned link after gc: %d %q", d.status, d.body)
	}
	if d := srv.get(t, srv.h1, head.URL); d.status != http.StatusOK || string(d.body) != "final version\n" {
		t.Errorf("head link: %d %q", d.status, d.body)
	}

	// Listings: the member's own links, and the admin's view of all, with
	// the same keys.
	mine := a.shares()
	if len(mine) != 7 {
		t.Fatalf("qic share list shows %d links, want 7", len(mine))
	}
	first := mine[0]
	if first.Downloads != 2 || first.MaxDownloads != 2 || first.State != "exhausted" || first.Path != "notes/a b & c #1.txt" ||
		first.Root != "docs" || first.ClientName != "a" || first.LastDownload == nil || first.URL != "" {
		t.Errorf("the first link listed: %+v", first)
	}
	if got := shareByID(t, mine, movie.ID); got.Downloads != limit || got.State != "exhausted" {
		t.Errorf("the movie link listed: %+v", got)
	}
	if got := shareByID(t, mine, pinned.ID); got.Version != v1 || got.State != "active" {
		t.Errorf("the pinned link listed: %+v", got)
	}
	if other := b.shares(); len(other) != 0 {
		t.Errorf("b lists %d links of a's", len(other))
	}
	all := showJSON[[]qicShare](t, srv.dataDir, "shares")
	if len(all) != len(mine) {
		t.Fatalf("quics show shares lists %d links, want %d", len(all), len(mine))
	}
	for i := range all {
		if all[i].ID != mine[i].ID || all[i].Downloads != mine[i].Downloads || all[i].State != mine[i].State || all[i].Version != mine[i].Version {
			t.Errorf("admin and member listings differ:\n%+v\n%+v", all[i], mine[i])
		}
	}
	keys := func(out string) []string {
		var raw []map[string]any
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			t.Fatal(err)
		}
		var ks []string
		for _, m := range raw {
			for k := range m {
				if !slices.Contains(ks, k) {
					ks = append(ks, k)
				}
			}
		}
		slices.Sort(ks)
		return ks
	}
	memberKeys := keys(a.must("share", "list", "--json"))
	adminKeys := keys(mustQuics(t, "", "show", "shares", "--json", "--data", srv.dataDir))
	if !slices.Equal(memberKeys, adminKeys) {
		t.Errorf("qic share list --json keys %v, quics show shares --json keys %v", memberKeys, adminKeys)
	}
	if table := mustQuics(t, "", "show", "shares", "--data", srv.dataDir); !strings.Contains(table, pinned.ID) || !strings.Contains(table, "exhausted") {
		t.Errorf("quics show shares:\n%s", table)
	}

	// Only the creator or the admin stops a link.
	if _, errOut, code := b.run("share", "stop", head.ID); code == 0 || !strings.Contains(errOut, "forbidden") {
		t.Errorf("b stopping a's link: exit %d, %s", code, errOut)
	}
	if d := srv.get(t, srv.h1, head.URL); d.status != http.StatusOK {
		t.Errorf("after a refused stop: %d", d.status)
	}
	a.must("share", "stop", head.URL)
	mustQuics(t, "", "share", "stop", pinned.ID, "--data", srv.dataDir)
	for _, url := range []string{head.URL, pinned.URL} {
		if d := srv.get(t, srv.h1, url); d.status != http.StatusNotFound {
			t.Errorf("a stopped link: %d", d.status)
		}
	}
	if n := len(a.shares()); n != 5 {
		t.Errorf("%d links left, want 5", n)
	}

	// A file the server does not have is refused with a hint.
	if _, errOut, code := a.run("share", a.path("never-synced.txt")); code == 0 || !strings.Contains(errOut, "qic sync") {
		t.Errorf("sharing an unsynced file: exit %d, %s", code, errOut)
	}
}

package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/gc"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// shareEnv is a server with a running share listener on 127.0.0.1, its
// clock under the test's control, a member with a root "docs", and HTTP
// clients that trust exactly the server's certificate.
type shareEnv struct {
	*env
	clock  *manualClock
	l      *ShareListener
	member *syncproto.Session
	h1, h3 *http.Client
}

func newShareEnv(t *testing.T) *shareEnv {
	t.Helper()
	clock := &manualClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	opts := testOptions(filepath.Join(t.TempDir(), "data"))
	opts.Clock = clock.Now
	opts.RetentionInterval = -1
	e := &shareEnv{env: newEnvWith(t, opts), clock: clock}
	ctx, cancel := context.WithCancel(context.Background())
	l, err := e.srv.ListenShares(ctx, ShareListenOptions{Addr: "127.0.0.1:0"})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	e.l = l
	done := make(chan error, 1)
	go func() { done <- l.Serve(ctx) }()
	h1 := &http.Transport{TLSClientConfig: tlsutil.PinnedClientConfig(e.srv.Fingerprint(), "http/1.1")}
	h3 := &http3.Transport{TLSClientConfig: tlsutil.PinnedClientConfig(e.srv.Fingerprint(), http3.NextProtoH3)}
	e.h1, e.h3 = &http.Client{Transport: h1, Timeout: 30 * time.Second}, &http.Client{Transport: h3, Timeout: 30 * time.Second}
	t.Cleanup(func() {
		h1.CloseIdleConnections()
		_ = h3.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("share listener: %v", err)
		}
	})
	e.member = e.client(t, "laptop")
	e.root(t, e.member, "docs")
	return e
}

// share creates a link as the member and returns its URL and id.
func (e *shareEnv) share(t *testing.T, req *syncpb.CreateShareRequest) (string, string) {
	t.Helper()
	if req.Root == "" {
		req.Root = "docs"
	}
	resp, err := e.srv.CreateShare(context.Background(), e.member, req)
	if err != nil {
		t.Fatalf("create share of %q: %v", req.GetPath(), err)
	}
	want := e.l.BaseURL() + "/s/" + resp.GetToken()
	if resp.GetUrl() != want || int(resp.GetPort()) != e.l.Port() {
		t.Fatalf("link %q port %d, want %q port %d", resp.GetUrl(), resp.GetPort(), want, e.l.Port())
	}
	return resp.GetUrl(), resp.GetShare().GetId()
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (e *shareEnv) do(t *testing.T, c *http.Client, method, url string, header ...string) answer {
	t.Helper()
	a, err := e.try(c, method, url, header...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// try is do for goroutines other than the test's.
func (e *shareEnv) try(c *http.Client, method, url string, header ...string) (answer, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return answer{}, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, fmt.Errorf("%s %s: read body: %w", method, url, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func (e *shareEnv) listed(t *testing.T, id string) *syncpb.ShareInfo {
	t.Helper()
	resp, err := e.srv.ListShares(context.Background(), e.member, &syncpb.ListSharesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range resp.GetShares() {
		if sh.GetId() == id {
			return sh
		}
	}
	t.Fatalf("share %s not listed", id)
	return nil
}

func TestShareLinkWorksNTimes(t *testing.T) {
	e := newShareEnv(t)
	f := newFile(t, []byte("hello, world\n"))
	e.mustPush(t, e.member, "docs", "notes/hello.txt", nil, f)
	url, id := e.share(t, &syncpb.CreateShareRequest{Path: "notes/hello.txt", MaxDownloads: 2})

	if a := e.do(t, e.h1, "HEAD", url); a.status != http.StatusOK || a.header.Get("Content-Length") != "13" {
		t.Fatalf("HEAD: %d %v", a.status, a.header)
	}
	for i, c := range []*http.Client{e.h1, e.h3} {
		a := e.do(t, c, "GET", url)
		if a.status != http.StatusOK || !bytes.Equal(a.body, f.data) {
			t.Fatalf("download %d: %d %q", i+1, a.status, a.body)
		}
		if ct := a.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
		if a.header.Get("Cache-Control") != "no-store" || a.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers %v", a.header)
		}
	}
	if sh := e.listed(t, id); sh.GetDownloads() != 2 || sh.GetState() != string(manifest.ShareExhausted) || sh.GetLastDownload() == 0 {
		t.Errorf("listed after two downloads: %v", sh)
	}
	for _, method := range []string{"GET", "HEAD"} {
		a := e.do(t, e.h1, method, url)
		if a.status != http.StatusGone {
			t.Errorf("%s of a used-up link: %d", method, a.status)
		}
		if method == "GET" && string(a.body) != "Gone\n" {
			t.Errorf("body of a used-up link %q: no detail wanted", a.body)
		}
	}
}

func TestShareLinkLimitHoldsUnderConcurrentDownloads(t *testing.T) {
	e := newShareEnv(t)
	f := newFile(t, randomData(7, 600<<10))
	e.mustPush(t, e.member, "docs", "big.bin", nil, f)
	const limit, tries = 4, 16
	url, id := e.share(t, &syncpb.CreateShareRequest{Path: "big.bin", MaxDownloads: limit})

	var wg sync.WaitGroup
	answers := make(chan answer, tries)
	errs := make(chan error, tries)
	for i := range tries {
		c := e.h1
		if i%2 == 1 {
			c = e.h3
		}
		wg.Go(func() {
			a, err := e.try(c, "GET", url)
			if err != nil {
				errs <- err
				return
			}
			answers <- a
		})
	}
	wg.Wait()
	close(answers)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ok := 0
	for a := range answers {
		switch a.status {
		case http.StatusOK:
			ok++
			if !bytes.Equal(a.body, f.data) {
				t.Errorf("a download got %d bytes that differ from the file", len(a.body))
			}
		case http.StatusGone:
		default:
			t.Errorf("status %d", a.status)
		}
	}
	if ok != limit {
		t.Errorf("%d downloads served, want exactly %d", ok, limit)
	}
	if sh := e.listed(t, id); sh.GetDownloads() != limit {
		t.Errorf("%d downloads counted, want %d", sh.GetDownloads(), limit)
	}
	if n := e.srv.pins.Len(); n != 0 {
		t.Errorf("%d chunks still pinned after the downloads", n)
	}
}

func TestShareLinkFileNames(t *testing.T) {
	e := newShareEnv(t)
	for _, tc := range []struct {
		path, ctype string
		data        []byte
	}{
		{"dir/a b & c #1.txt", "text/plain; charset=utf-8", []byte("spaces, ampersand, hash")},
		{"ünïcødé 日本語.pdf", "application/pdf", []byte("%PDF-1.4 not really")},
		{`quo"te\'s%20.json`, "application/json", []byte(`{"a":1}`)},
		{"semi;colon=x?.html", "text/html; charset=utf-8", []byte("<p>not rendered</p>")},
		{"no-extension", "image/png", append([]byte("\x89PNG\r\n\x1a\n"), make([]byte, 64)...)},
	} {
		if strings.Contains(tc.path, `\`) {
			tc.path = strings.ReplaceAll(tc.path, `\`, "_") // sync paths have no backslash
		}
		f := newFile(t, tc.data)
		e.mustPush(t, e.member, "docs", tc.path, nil, f)
		url, _ := e.share(t, &syncpb.CreateShareRequest{Path: tc.path})
		a := e.do(t, e.h1, "GET", url)
		if a.status != http.StatusOK || !bytes.Equal(a.body, tc.data) {
			t.Errorf("%q: %d %q", tc.path, a.status, a.body)
			continue
		}
		disp, params, err := mime.ParseMediaType(a.header.Get("Content-Disposition"))
		want := tc.path[strings.LastIndex(tc.path, "/")+1:]
		if err != nil || disp != "attachment" || params["filename"] != want {
			t.Errorf("%q: Content-Disposition %q parses to %q %q (%v), want filename %q",
				tc.path, a.header.Get("Content-Disposition"), disp, params["filename"], err, want)
		}
		if ct := a.header.Get("Content-Type"); ct != tc.ctype {
			t.Errorf("%q: Content-Type %q, want %q", tc.path, ct, tc.ctype)
		}
		if a.header.Get("ETag") != `"`+f.hash.String()+`"` {
			t.Errorf("%q: ETag %q", tc.path, a.header.Get("ETag"))
		}
	}
	// Not plain ASCII: an ASCII fallback for old clients, then the exact
	// name.
	if got := contentDisposition("é.txt"); got != `attachment; filename=_.txt; filename*=utf-8''%C3%A9.txt` {
		t.Errorf("contentDisposition = %q", got)
	}
}

func TestShareLinkRanges(t *testing.T) {
	e := newShareEnv(t)
	f := newFile(t, randomData(9, 900<<10))
	if len(f.refs) < 3 {
		t.Fatalf("want several chunks, got %d", len(f.refs))
	}
	e.mustPush(t, e.member, "docs", "movie.bin", nil, f)
	url, id := e.share(t, &syncpb.CreateShareRequest{Path: "movie.bin"})
	size := len(f.data)

	// A range across chunk boundaries, an open one, a suffix.
	first := int(f.refs[0].Size)
	for _, tc := range []struct {
		rng      string
		from, to int // inclusive
	}{
		{fmt.Sprintf("bytes=%d-%d", first-10, first+int(f.refs[1].Size)+10), first - 10, first + int(f.refs[1].Size) + 10},
		{fmt.Sprintf("bytes=%d-", size-1000), size - 1000, size - 1},
		{"bytes=-5", size - 5, size - 1},
		{"bytes=0-0", 0, 0},
	} {
		for _, c := range []*http.Client{e.h1, e.h3} {
			a := e.do(t, c, "GET", url, "Range", tc.rng)
			want := fmt.Sprintf("bytes %d-%d/%d", tc.from, tc.to, size)
			if a.status != http.StatusPartialContent || a.header.Get("Content-Range") != want || !bytes.Equal(a.body, f.data[tc.from:tc.to+1]) {
				t.Errorf("Range %s: %d %q, %d bytes; want 206 %q", tc.rng, a.status, a.header.Get("Content-Range"), len(a.body), want)
			}
		}
	}

	// Two ranges come back as multipart/byteranges.
	a := e.do(t, e.h1, "GET", url, "Range", "bytes=0-9,500000-500009")
	mt, params, err := mime.ParseMediaType(a.header.Get("Content-Type"))
	if a.status != http.StatusPartialContent || err != nil || mt != "multipart/byteranges" {
		t.Fatalf("two ranges: %d %q %v", a.status, a.header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(a.body), params["boundary"])
	for _, from := range []int{0, 500000} {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(part)
		if !bytes.Equal(got, f.data[from:from+10]) {
			t.Errorf("part at %d: %x", from, got)
		}
	}

	// Resuming with If-Range: the same content gets the rest, another
	// one the whole file.
	etag := a.header.Get("ETag")
	if a := e.do(t, e.h1, "GET", url, "Range", "bytes=100-", "If-Range", etag); a.status != http.StatusPartialContent || !bytes.Equal(a.body, f.data[100:]) {
		t.Errorf("If-Range with the current ETag: %d, %d bytes", a.status, len(a.body))
	}
	if a := e.do(t, e.h1, "GET", url, "Range", "bytes=100-", "If-Range", `"other"`); a.status != http.StatusOK || !bytes.Equal(a.body, f.data) {
		t.Errorf("If-Range with another ETag: %d, %d bytes", a.status, len(a.body))
	}
	// Every GET counted: 4 ranges twice, the multipart one, two resumes.
	if sh := e.listed(t, id); sh.GetDownloads() != 11 || sh.GetMaxDownloads() != 0 {
		t.Errorf("downloads %d of %d, want 11 of unlimited", sh.GetDownloads(), sh.GetMaxDownloads())
	}
}

func TestShareLinkExpires(t *testing.T) {
	e := newShareEnv(t)
	f := newFile(t, []byte("soon gone"))
	e.mustPush(t, e.member, "docs", "a.txt", nil, f)
	url, id := e.share(t, &syncpb.CreateShareRequest{Path: "a.txt", ExpiresIn: int64(time.Hour)})
	if sh := e.listed(t, id); sh.GetExpires() != e.clock.Now().Add(time.Hour).UnixNano() {
		t.Errorf("expires %d, want an hour from now on the server's clock", sh.GetExpires())
	}
	e.clock.advance(time.Hour - time.Second)
	if a := e.do(t, e.h1, "GET", url); a.status != http.StatusOK {
		t.Fatalf("a second before expiry: %d", a.status)
	}
	e.clock.advance(time.Second)
	if a := e.do(t, e.h1, "GET", url); a.status != http.StatusGone {
		t.Errorf("at expiry: %d", a.status)
	}
	if sh := e.listed(t, id); sh.GetState() != string(manifest.ShareExpired) {
		t.Errorf("state %q", sh.GetState())
	}
	if _, err := e.srv.CreateShare(context.Background(), e.member, &syncpb.CreateShareRequest{Root: "docs", Path: "a.txt", ExpiresIn: int64(MaxShareLifetime + 1)}); !errors.Is(err, syncproto.ErrBadRequest) {
		t.Errorf("an expiry past the bound: %v, want ErrBadRequest", err)
	}
}

func TestShareLinkStop(t *testing.T) {
	e := newShareEnv(t)
	ctx := context.Background()
	other := e.client(t, "phone")
	e.join(t, other, "docs")
	e.mustPush(t, e.member, "docs", "a.txt", nil, newFile(t, []byte("a")))
	byID, id := e.share(t, &syncpb.CreateShareRequest{Path: "a.txt"})
	byToken, _ := e.share(t, &syncpb.CreateShareRequest{Path: "a.txt"})
	byAdmin, adminID := e.share(t, &syncpb.CreateShareRequest{Path: "a.txt"})

	if _, err := e.srv.StopShare(ctx, other, &syncpb.StopShareRequest{Id: id}); !errors.Is(err, syncproto.ErrForbidden) {
		t.Errorf("another member stops the link: %v, want ErrForbidden", err)
	}
	if a := e.do(t, e.h1, "GET", byID); a.status != http.StatusOK {
		t.Fatalf("after a refused stop: %d", a.status)
	}
	if sh, err := e.srv.StopShare(ctx, e.member, &syncpb.StopShareRequest{Id: strings.ToUpper(id)}); err != nil || sh.GetShare().GetId() != id || sh.GetShare().GetDownloads() != 1 {
		t.Fatalf("stop by id: %v, %v", sh, err)
	}
	token := byToken[strings.LastIndex(byToken, "/")+1:]
	if _, err := e.srv.StopShare(ctx, e.member, &syncpb.StopShareRequest{Token: token}); err != nil {
		t.Fatalf("stop by token: %v", err)
	}
	if _, err := e.srv.RemoveShare(ctx, adminID); err != nil {
		t.Fatalf("the admin stops a member's link: %v", err)
	}
	for _, url := range []string{byID, byToken, byAdmin} {
		if a := e.do(t, e.h1, "GET", url); a.status != http.StatusNotFound || string(a.body) != "Not Found\n" {
			t.Errorf("a stopped link: %d %q", a.status, a.body)
		}
	}
	if _, err := e.srv.StopShare(ctx, e.member, &syncpb.StopShareRequest{Id: id}); !errors.Is(err, syncproto.ErrNotFound) {
		t.Errorf("stopping twice: %v, want ErrNotFound", err)
	}
	if _, err := e.srv.RemoveShare(ctx, "not-an-id"); !errors.Is(err, syncproto.ErrBadRequest) {
		t.Errorf("admin stop of a bad id: %v, want ErrBadRequest", err)
	}
	if list, err := e.srv.Shares(ctx); err != nil || len(list) != 0 {
		t.Errorf("shares left: %v, %v", list, err)
	}
}

func TestShareLinkRefusals(t *testing.T) {
	e := newShareEnv(t)
	ctx := context.Background()
	outsider := e.client(t, "stranger")
	e.root(t, outsider, "other")
	e.mustPush(t, e.member, "docs", "a.txt", nil, newFile(t, []byte("a")))
	gone := e.mustPush(t, e.member, "docs", "gone.txt", nil, newFile(t, []byte("g")))
	if _, err := e.srv.Propose(ctx, e.member, deleteRequest("docs", "gone.txt", gone), nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		sess *syncproto.Session
		req  *syncpb.CreateShareRequest
		want error
	}{
		{"non-member", outsider, &syncpb.CreateShareRequest{Root: "docs", Path: "a.txt"}, syncproto.ErrForbidden},
		{"unknown root", e.member, &syncpb.CreateShareRequest{Root: "nope", Path: "a.txt"}, syncproto.ErrForbidden},
		{"unknown file", e.member, &syncpb.CreateShareRequest{Root: "docs", Path: "b.txt"}, syncproto.ErrNotFound},
		{"deleted file", e.member, &syncpb.CreateShareRequest{Root: "docs", Path: "gone.txt"}, syncproto.ErrNotFound},
		{"bad path", e.member, &syncpb.CreateShareRequest{Root: "docs", Path: "../a.txt"}, syncproto.ErrInvalidPath},
		{"unknown version", e.member, &syncpb.CreateShareRequest{Root: "docs", Path: "a.txt", HashPrefix: "00000000"}, syncproto.ErrNotFound},
		{"bad hash prefix", e.member, &syncpb.CreateShareRequest{Root: "docs", Path: "a.txt", HashPrefix: "xyz"}, syncproto.ErrBadRequest},
	} {
		if _, err := e.srv.CreateShare(ctx, tc.sess, tc.req); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// Without a listener nobody could download a link: none is made.
	if err := e.l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.CreateShare(ctx, e.member, &syncpb.CreateShareRequest{Root: "docs", Path: "a.txt"}); !errors.Is(err, syncproto.ErrUnavailable) {
		t.Errorf("without a share listener: %v, want ErrUnavailable", err)
	}
}

// The listener answers links and nothing else, the same bare 404 for
// everything it does not serve.
func TestShareListenerServesOnlyLinks(t *testing.T) {
	e := newShareEnv(t)
	e.mustPush(t, e.member, "docs", "a.txt", nil, newFile(t, []byte("a")))
	url, _ := e.share(t, &syncpb.CreateShareRequest{Path: "a.txt"})
	base := e.l.BaseURL()
	unknown := base + "/s/" + strings.Repeat("A", 43)
	for _, u := range []string{base + "/", base + "/v1/version", base + "/metrics", base + "/healthz", base + "/s/",
		base + "/s/short", unknown, url + "/x", base + "/S/" + url[len(base)+3:]} {
		for _, c := range []*http.Client{e.h1, e.h3} {
			if a := e.do(t, c, "GET", u); a.status != http.StatusNotFound || string(a.body) != "Not Found\n" {
				t.Errorf("GET %s: %d %q", u, a.status, a.body)
			}
		}
	}
	if a := e.do(t, e.h1, "POST", url); a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d %v", a.status, a.header)
	}
	if a := e.do(t, e.h1, "GET", url); a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Alt-Svc"), "h3=") {
		t.Errorf("the link after the refusals: %d, Alt-Svc %q", a.status, a.header.Get("Alt-Svc"))
	}
}

// A link stops when its creator leaves the root, or the root goes.
func TestShareLinkRevoked(t *testing.T) {
	e := newShareEnv(t)
	ctx := context.Background()
	other := e.client(t, "phone")
	e.join(t, other, "docs")
	e.mustPush(t, e.member, "docs", "a.txt", nil, newFile(t, []byte("a")))
	url, id := e.share(t, &syncpb.CreateShareRequest{Path: "a.txt"})
	resp, err := e.srv.CreateShare(ctx, other, &syncpb.CreateShareRequest{Root: "docs", Path: "a.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.srv.LeaveRoot(ctx, e.member, &syncpb.LeaveRootRequest{Name: "docs"}); err != nil {
		t.Fatal(err)
	}
	if a := e.do(t, e.h1, "GET", url); a.status != http.StatusGone {
		t.Errorf("after its creator left: %d", a.status)
	}
	if sh := e.listed(t, id); sh.GetState() != string(manifest.ShareRevoked) {
		t.Errorf("state %q", sh.GetState())
	}
	if a := e.do(t, e.h1, "GET", resp.GetUrl()); a.status != http.StatusOK {
		t.Errorf("another member's link: %d", a.status)
	}
	if err := e.srv.RemoveRoot(ctx, manifest.RootID(e.rootID(t, "docs"))); err != nil {
		t.Fatal(err)
	}
	if a := e.do(t, e.h1, "GET", resp.GetUrl()); a.status != http.StatusGone {
		t.Errorf("after the root was removed: %d", a.status)
	}
	list, err := e.srv.Shares(ctx)
	if err != nil || len(list) != 2 || list[0].RootName != "" || list[0].State != manifest.ShareRevoked {
		t.Errorf("admin listing: %+v, %v", list, err)
	}
}

// A link follows the head; a pinned one keeps serving its version, whose
// chunks survive garbage collection after retention dropped it, until the
// link stops.
func TestShareLinkPinnedVersionSurvivesGC(t *testing.T) {
	e := newShareEnv(t)
	ctx := context.Background()
	if err := e.srv.SetRootRetention(ctx, "docs", manifest.Retention{Kind: manifest.KeepLast, Value: 1}); err != nil {
		t.Fatal(err)
	}
	v1 := newFile(t, randomData(11, 300<<10))
	h1 := e.mustPush(t, e.member, "docs", "report.pdf", nil, v1)
	headURL, _ := e.share(t, &syncpb.CreateShareRequest{Path: "report.pdf"})
	pinURL, pinID := e.share(t, &syncpb.CreateShareRequest{Path: "report.pdf", HashPrefix: v1.hash.String()[:8]})
	if sh := e.listed(t, pinID); sh.GetPinnedSeq() != h1.GetSeq() || !bytes.Equal(sh.GetPinnedHash(), v1.hash[:]) {
		t.Fatalf("pinned link %v", sh)
	}

	v2 := newFile(t, randomData(12, 300<<10))
	e.mustPush(t, e.member, "docs", "report.pdf", h1, v2)
	if vs, err := e.srv.db.Versions(ctx, manifest.RootID(e.rootID(t, "docs")), "report.pdf"); err != nil || len(vs) != 1 {
		t.Fatalf("retention kept %d versions (%v), want 1", len(vs), err)
	}
	rep, err := e.srv.GC(ctx, gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ChunksDeleted != 0 {
		t.Errorf("gc deleted %d chunks while the link pins them", rep.ChunksDeleted)
	}
	if a := e.do(t, e.h1, "GET", pinURL); a.status != http.StatusOK || !bytes.Equal(a.body, v1.data) {
		t.Errorf("pinned link after gc: %d, %d bytes", a.status, len(a.body))
	}
	if a := e.do(t, e.h3, "GET", headURL); a.status != http.StatusOK || !bytes.Equal(a.body, v2.data) {
		t.Errorf("head link: %d, %d bytes", a.status, len(a.body))
	}

	// Stopped, the link no longer keeps the version.
	if _, err := e.srv.StopShare(ctx, e.member, &syncpb.StopShareRequest{Id: pinID}); err != nil {
		t.Fatal(err)
	}
	rep, err = e.srv.GC(ctx, gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.ChunksDeleted != uint64(len(v1.chunks)) {
		t.Errorf("gc after the link stopped deleted %d chunks, want %d", rep.ChunksDeleted, len(v1.chunks))
	}
	have, err := e.srv.store.Has(ctx, v1.ids())
	if err != nil {
		t.Fatal(err)
	}
	for i, ok := range have {
		if ok {
			t.Errorf("chunk %s of the unpinned version is still there", v1.ids()[i].Short())
		}
	}
}

// The chunk reader seeks to any offset, across chunks.
func TestContentReaderSeeks(t *testing.T) {
	e := newEnv(t)
	sess := e.client(t, "laptop")
	e.root(t, sess, "docs")
	f := newFile(t, randomData(5, 700<<10))
	e.mustPush(t, sess, "docs", "f", nil, f)
	chunks, err := e.srv.db.ChunkList(context.Background(), f.hash)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := newContentReader(context.Background(), e.srv.store, chunks, uint64(len(f.data)))
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int64{int64(len(f.data)) - 1, 0, int64(chunks[0].Size), int64(chunks[0].Size) - 1, 123456} {
		if got, err := rd.Seek(off, io.SeekStart); err != nil || got != off {
			t.Fatalf("seek %d: %d, %v", off, got, err)
		}
		buf := make([]byte, 3000)
		n, err := io.ReadFull(rd, buf)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatal(err)
		}
		if !bytes.Equal(buf[:n], f.data[off:min(off+3000, int64(len(f.data)))]) {
			t.Errorf("read at %d differs", off)
		}
	}
	if end, err := rd.Seek(0, io.SeekEnd); err != nil || end != int64(len(f.data)) {
		t.Errorf("seek to end: %d, %v", end, err)
	}
	if n, err := rd.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("read at the end: %d, %v", n, err)
	}
	if _, err := rd.Seek(-1, io.SeekStart); err == nil {
		t.Error("a negative seek succeeded")
	}
	if _, err := newContentReader(context.Background(), e.srv.store, chunks, uint64(len(f.data))+1); !errors.Is(err, cas.ErrCorrupt) {
		t.Errorf("a chunk list of the wrong size: %v", err)
	}
}

// Where links point: the base URL given (a proxy's), else the bound
// address. (A wildcard bind leaves the URL to the client, which builds it
// from the host it dials and the port; tests bind loopback only, so that
// case is not exercised here.)
func TestShareListenerBaseURL(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	member := e.client(t, "laptop")
	e.root(t, member, "docs")
	e.mustPush(t, member, "docs", "a.txt", nil, newFile(t, []byte("a")))
	for _, tc := range []struct {
		addr, base string
		want       func(port int) string // the URL prefix; "" for none
	}{
		{"127.0.0.1:0", "https://files.example/quics/", func(int) string { return "https://files.example/quics/s/" }},
		{"127.0.0.1:0", "", func(port int) string { return fmt.Sprintf("https://127.0.0.1:%d/s/", port) }},
		{"localhost:0", "", func(port int) string { return fmt.Sprintf("https://localhost:%d/s/", port) }},
	} {
		l, err := e.srv.ListenShares(ctx, ShareListenOptions{Addr: tc.addr, BaseURL: tc.base})
		if err != nil {
			t.Fatalf("%s %q: %v", tc.addr, tc.base, err)
		}
		resp, err := e.srv.CreateShare(ctx, member, &syncpb.CreateShareRequest{Root: "docs", Path: "a.txt"})
		if err != nil {
			t.Fatal(err)
		}
		prefix := tc.want(l.Port())
		if int(resp.GetPort()) != l.Port() || (prefix == "" && resp.GetUrl() != "") || (prefix != "" && resp.GetUrl() != prefix+resp.GetToken()) {
			t.Errorf("%s %q: url %q port %d, want prefix %q port %d", tc.addr, tc.base, resp.GetUrl(), resp.GetPort(), prefix, l.Port())
		}
		if tcp, udp := l.Addr().String(), l.H3Addr().String(); tcp != udp {
			t.Errorf("%s: TCP on %s, UDP on %s; want one address", tc.addr, tcp, udp)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range []string{"ftp://x", "https://", "https://x/?q=1", "https://x/#f", "https://u:p@x", "://"} {
		if l, err := e.srv.ListenShares(ctx, ShareListenOptions{Addr: "127.0.0.1:0", BaseURL: bad}); err == nil {
			_ = l.Close()
			t.Errorf("base URL %q accepted", bad)
		}
	}
}

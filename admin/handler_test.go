package admin

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
)

// roundTrip sends req the way the client does and binds it the way the
// server does, through a real ServeMux so path values are set.
func roundTrip[Req any](t *testing.T, method, path string, req Req) (Req, error) {
	t.Helper()
	target, body, err := requestTarget(method, path, req)
	if err != nil {
		return *new(Req), err
	}
	var got Req
	var bindErr error
	mux := http.NewServeMux()
	mux.HandleFunc(method+" "+path, func(_ http.ResponseWriter, r *http.Request) {
		bindErr = bindRequest(r, path, &got)
	})
	var rd *strings.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	} else {
		rd = strings.NewReader("")
	}
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(method, target, rd))
	if rec.Code != http.StatusOK {
		t.Fatalf("%s %s: the pattern did not match (HTTP %d)", method, target, rec.Code)
	}
	return got, bindErr
}

func TestRequestsRoundTrip(t *testing.T) {
	files := []FileRequest{
		{Root: "docs", Path: "notes.txt"},
		{Root: "my root", Path: "a/b/c d.txt"},
		{Root: "日本", Path: "ü/%2F?&=#.bin"},
		{Root: "r", Path: ""},
	}
	for _, want := range files {
		got, err := roundTrip(t, "GET", OpHistory.Path, want)
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GET round trip (-want +got):\n%s", diff)
		}
	}
	for _, want := range []ClientRequest{{Client: "laptop"}, {Client: "a/b"}, {Client: "0f4c2a5e-9d1b-4c1e-8b7a-1234567890ab"}} {
		got, err := roundTrip(t, "DELETE", OpRemoveClient.Path, want)
		if err != nil || got != want {
			t.Errorf("DELETE %+v: got %+v, %v", want, got, err)
		}
	}
	pw := PasswordRequest{Password: "p@ss word \"quoted\""}
	if got, err := roundTrip(t, "PUT", OpSetPassword.Path, pw); err != nil || got != pw {
		t.Errorf("PUT body: got %+v, %v", got, err)
	}
	if _, _, err := requestTarget("GET", OpListFiles.Path, RootRequest{}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("an empty path field: %v", err)
	}
}

func TestBindRequestRefusesUnknownAndRepeated(t *testing.T) {
	for _, target := range []string{
		"/v1/roots/docs/history?path=a&path=b",
		"/v1/roots/docs/history?pth=a",
		"/v1/roots/docs/history?root=other",
	} {
		var got FileRequest
		mux := http.NewServeMux()
		var err error
		mux.HandleFunc("GET "+OpHistory.Path, func(_ http.ResponseWriter, r *http.Request) { err = bindRequest(r, OpHistory.Path, &got) })
		mux.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", target, nil))
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: %v", target, err)
		}
	}
	big := strings.Repeat("x", MaxRequestBody+1)
	r := httptest.NewRequest("PUT", "/v1/password", strings.NewReader(`{"password":"`+big+`"}`))
	var pw PasswordRequest
	if err := bindRequest(r, OpSetPassword.Path, &pw); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized body: %v", err)
	}
	for _, body := range []string{`{"password":1}`, `{"password":"a"}{}`, `{"other":"a"}`, `[`} {
		r := httptest.NewRequest("PUT", "/v1/password", strings.NewReader(body))
		if err := bindRequest(r, OpSetPassword.Path, &pw); !errors.Is(err, ErrBadRequest) {
			t.Errorf("body %s: %v", body, err)
		}
	}
}

func TestErrorCodesRoundTrip(t *testing.T) {
	tests := []struct {
		err    error
		want   error
		status int
	}{
		{fmt.Errorf("root %q: %w", "x", manifest.ErrNotFound), ErrNotFound, 404},
		{fmt.Errorf("wrap: %w", syncproto.ErrBadRequest), ErrBadRequest, 400},
		{fmt.Errorf("wrap: %w", manifest.ErrExists), ErrExists, 409},
		{fmt.Errorf("%w: token", ErrUnauthorized), ErrUnauthorized, 401},
		{errors.New("disk on fire"), ErrInternal, 500},
	}
	for _, tt := range tests {
		d, status := toDetail(tt.err)
		if status != tt.status || d.Message != tt.err.Error() {
			t.Errorf("%v: status %d, detail %+v", tt.err, status, d)
		}
		back := fromDetail(d, status)
		if !errors.Is(back, tt.want) || back.Error() != tt.err.Error() {
			t.Errorf("%v came back as %v", tt.err, back)
		}
	}
	if err := fromDetail(ErrorDetail{Code: "from_the_future", Message: "m"}, 418); !errors.Is(err, ErrInternal) || !strings.Contains(err.Error(), "418") {
		t.Errorf("unknown code: %v", err)
	}
}

func FuzzBindRequest(f *testing.F) {
	for _, seed := range []struct{ query, body string }{
		{"path=a/b.txt", ""},
		{"path=%00", `{"root":"x"}`},
		{"a=1&a=2", "{"},
	} {
		f.Add(seed.query, seed.body)
	}
	f.Fuzz(func(t *testing.T, query, body string) {
		r := httptest.NewRequest("POST", "/v1/roots/r/history", strings.NewReader(body))
		r.URL.RawQuery = query
		r.SetPathValue("root", "r")
		var req FileRequest
		err := bindRequest(r, "/v1/roots/{root}/history", &req)
		if err != nil && !errors.Is(err, ErrBadRequest) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("error without a code: %v", err)
		}
		if err == nil && req.Root != "r" {
			t.Fatalf("the path's root was overridden: %+v", req)
		}
	})
}

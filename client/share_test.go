package client

import (
	"errors"
	"strings"
	"testing"

	"github.com/quic-s/quics/syncproto/syncpb"
)

const testShareToken = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdE"

func TestShareLink(t *testing.T) {
	for _, tc := range []struct {
		addr string
		resp *syncpb.CreateShareResponse
		want string
	}{
		{"files.example:6122", &syncpb.CreateShareResponse{Url: "https://dl.example/s/x", Token: testShareToken, Port: 8443}, "https://dl.example/s/x"},
		{"files.example:6122", &syncpb.CreateShareResponse{Token: testShareToken, Port: 8443}, "https://files.example:8443/s/" + testShareToken},
		{"[2001:db8::1]:6122", &syncpb.CreateShareResponse{Token: testShareToken, Port: 8443}, "https://[2001:db8::1]:8443/s/" + testShareToken},
		{"bare-host", &syncpb.CreateShareResponse{Token: testShareToken, Port: 443}, "https://bare-host:443/s/" + testShareToken},
	} {
		got, err := ShareLink(tc.addr, tc.resp)
		if err != nil || got != tc.want {
			t.Errorf("ShareLink(%q, %v) = %q, %v; want %q", tc.addr, tc.resp, got, err, tc.want)
		}
	}
	for _, bad := range []*syncpb.CreateShareResponse{{Token: testShareToken}, {Port: 443}, {Token: "short", Port: 443}, {Token: testShareToken, Port: 70000}} {
		if got, err := ShareLink("h:1", bad); err == nil {
			t.Errorf("ShareLink(%v) = %q, want an error", bad, got)
		}
	}
}

func TestParseShareRef(t *testing.T) {
	for _, tc := range []struct{ ref, id, token string }{
		{"0123456789ab", "0123456789ab", ""},
		{" 0123456789AB\n", "0123456789ab", ""},
		{testShareToken, "", testShareToken},
		{"https://files.example:8443/s/" + testShareToken, "", testShareToken},
		{"https://proxy.example/quics/s/" + testShareToken + "/?x=1#frag", "", testShareToken},
	} {
		id, token, err := ParseShareRef(tc.ref)
		if err != nil || id != tc.id || token != tc.token {
			t.Errorf("ParseShareRef(%q) = %q, %q, %v; want %q, %q", tc.ref, id, token, err, tc.id, tc.token)
		}
	}
	for _, bad := range []string{"", "0123456789a", "0123456789abc", "zz23456789ab", "https://h/s/short", "https://h/x/" + testShareToken,
		"/s/" + testShareToken + "!", strings.Repeat("a", 44)} {
		if id, token, err := ParseShareRef(bad); !errors.Is(err, ErrBadShareRef) {
			t.Errorf("ParseShareRef(%q) = %q, %q, %v; want ErrBadShareRef", bad, id, token, err)
		}
	}
}

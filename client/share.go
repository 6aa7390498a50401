package client

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/quic-s/quics/syncproto/syncpb"
)

// Share links: the server makes them (qic share); these helpers turn its
// answer into the URL to hand out, and what a person types back into the
// link's id or token.

// ErrBadShareRef means a string names no share link: neither an id nor a
// link's URL or token.
var ErrBadShareRef = errors.New("client: not a share link id or URL")

// Lengths of a share link id (hex) and token (unpadded base64url of 32
// bytes), as the server makes them.
const (
	shareIDLen    = 12
	shareTokenLen = 43
)

// ShareLink returns the URL of the link the server created: its own when
// it knows its public address, else https://<host>:<port>/s/<token> with
// the host of serverAddr, which this client reaches the server by.
func ShareLink(serverAddr string, resp *syncpb.CreateShareResponse) (string, error) {
	if u := resp.GetUrl(); u != "" {
		return u, nil
	}
	if !validShareToken(resp.GetToken()) || resp.GetPort() == 0 || resp.GetPort() > 65535 {
		return "", fmt.Errorf("client: the server's share answer has neither a URL nor a token and port")
	}
	host, _, err := net.SplitHostPort(serverAddr)
	if err != nil {
		host = serverAddr
	}
	if host == "" {
		host = "localhost"
	}
	return "https://" + net.JoinHostPort(host, strconv.Itoa(int(resp.GetPort()))) + "/s/" + resp.GetToken(), nil
}

// ParseShareRef reads a share link's id (12 hex digits), or its URL or bare
// token. Exactly one of id and token is returned set.
func ParseShareRef(ref string) (id, token string, err error) {
	ref = strings.TrimSpace(ref)
	if len(ref) == shareIDLen && isHex(ref) {
		return strings.ToLower(ref), "", nil
	}
	if validShareToken(ref) {
		return "", ref, nil
	}
	if u, err := url.Parse(ref); err == nil && u.Host != "" {
		if i := strings.LastIndex(u.Path, "/s/"); i >= 0 {
			if t := strings.TrimSuffix(u.Path[i+len("/s/"):], "/"); validShareToken(t) {
				return "", t, nil
			}
		}
	}
	return "", "", fmt.Errorf("%w: %.80q (want the id qic share list shows, or the link)", ErrBadShareRef, ref)
}

func validShareToken(s string) bool {
	if len(s) != shareTokenLen {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

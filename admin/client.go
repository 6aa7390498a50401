package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/server"
)

// MaxResponseBody bounds what the client reads of an answer; a listing of
// a root with a million files fits.
const MaxResponseBody = 1 << 30

// Conn is how an admin command reaches the server: over the running
// server's API, or directly on a data directory that no server holds.
type Conn struct {
	// Exactly one of remote and local is set.
	remote *remoteConn
	local  *Backend
}

type remoteConn struct {
	// url is the base of request URLs; where names the API in errors
	// (the same URL, or unix:PATH for the socket).
	url   string
	where string
	token string
	http  *http.Client
}

// ConnectOptions configure Connect.
type ConnectOptions struct {
	DataDir string
	// Logger receives the reports of a server opened offline (repairs on
	// open); nil discards them.
	Logger *slog.Logger
}

// ErrNoData means the data directory holds no quics server.
var ErrNoData = errors.New("no quics data")

// Connect finds the server of a data directory. If a process holds the
// directory's lock, its API is used with the token of DATA/admin-token: on
// the Unix socket it published in DATA/admin-socket when that answers,
// else at the URL of DATA/admin-addr over TLS pinned to DATA/tls/cert.pem.
// Otherwise the directory is opened here, which keeps a server from
// starting on it until Close.
func Connect(ctx context.Context, opts ConnectOptions) (*Conn, error) {
	for attempt := 0; ; attempt++ {
		inUse, err := server.DataDirInUse(opts.DataDir)
		if err != nil {
			return nil, fmt.Errorf("admin: %w", err)
		}
		if inUse {
			return dialRemote(ctx, opts.DataDir)
		}
		c, err := openLocal(ctx, opts)
		// A server that started between the probe and the open is
		// reached through its API on the next round.
		if errors.Is(err, server.ErrDataDirInUse) && attempt == 0 {
			continue
		}
		return c, err
	}
}

func openLocal(ctx context.Context, opts ConnectOptions) (*Conn, error) {
	if _, err := os.Stat(filepath.Join(opts.DataDir, server.DBDir)); err != nil {
		return nil, fmt.Errorf("%w in %s (start the server once with `quics run --data %s`): %w",
			ErrNoData, opts.DataDir, opts.DataDir, err)
	}
	srv, err := server.Open(ctx, server.Options{DataDir: opts.DataDir, Logger: opts.Logger})
	if err != nil {
		return nil, fmt.Errorf("admin: open %s: %w", opts.DataDir, err)
	}
	return &Conn{local: &Backend{Server: srv, DataDir: opts.DataDir}}, nil
}

// dialRemote prefers the server's Unix socket, which spares both sides TLS;
// the TCP API is the way in when the socket is off, was skipped (a path too
// long) or does not answer.
func dialRemote(ctx context.Context, dataDir string) (*Conn, error) {
	sock := publishedSocket(dataDir)
	addr, addrErr := readSmallFile(filepath.Join(dataDir, AddrFile))
	if sock == "" && addrErr != nil {
		return nil, fmt.Errorf("%w: a quics server holds %s but publishes no admin API (was it started with --admin \"\" and --admin-socket \"\"?): %w",
			ErrUnavailable, dataDir, addrErr)
	}
	token, err := readToken(filepath.Join(dataDir, TokenFile))
	if err != nil {
		return nil, err
	}
	if sock != "" {
		if socketAnswers(ctx, sock) {
			return NewSocket(sock, token), nil
		}
		if addrErr != nil {
			return nil, fmt.Errorf("%w: the admin socket unix:%s of the server holding %s does not answer, and it publishes no TCP API",
				ErrUnavailable, sock, dataDir)
		}
	}
	fp, err := certFingerprint(filepath.Join(dataDir, server.TLSDir, "cert.pem"))
	if err != nil {
		return nil, err
	}
	return NewRemote(strings.TrimSpace(string(addr)), token, fp), nil
}

// NewRemote returns a Conn to the API at url (https://host:port), trusting
// exactly the certificate whose SHA-256 fingerprint is given.
func NewRemote(url, token, fingerprint string) *Conn {
	tlsConf := tlsutil.PinnedClientConfig(fingerprint, "http/1.1")
	tr := &http.Transport{
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 10 * time.Minute,
		MaxIdleConns:          2,
		IdleConnTimeout:       30 * time.Second,
	}
	return &Conn{remote: &remoteConn{url: url, where: url, token: token, http: &http.Client{Transport: tr}}}
}

func certFingerprint(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("admin: server certificate: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", fmt.Errorf("admin: %s holds no PEM certificate", path)
	}
	return tlsutil.Fingerprint(block.Bytes), nil
}

// Online reports whether c talks to a running server.
func (c *Conn) Online() bool { return c.remote != nil }

// Close releases an offline data directory.
func (c *Conn) Close() error {
	if c.local != nil {
		return c.local.Server.Close()
	}
	c.remote.http.CloseIdleConnections()
	return nil
}

// Call runs op with req, through the API or on the data directory. Either
// way the answer is decoded from its JSON form, so both give the same
// result and the same errors.
func Call[Req, Resp any](ctx context.Context, c *Conn, op Op[Req, Resp], req Req) (Resp, error) {
	var resp Resp
	if c.local != nil {
		out, err := op.Run(ctx, c.local, req)
		if err != nil {
			d, status := toDetail(err)
			return resp, fromDetail(d, status)
		}
		b, err := json.Marshal(out)
		if err != nil {
			return resp, fmt.Errorf("admin: encode answer: %w", err)
		}
		if err := json.Unmarshal(b, &resp); err != nil {
			return resp, fmt.Errorf("admin: decode answer: %w", err)
		}
		return resp, nil
	}
	err := c.remote.do(ctx, op.Method, op.Path, req, &resp)
	return resp, err
}

func (rc *remoteConn) do(ctx context.Context, method, path string, req, resp any) error {
	target, body, err := requestTarget(method, path, req)
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, rc.url+target, rd)
	if err != nil {
		return fmt.Errorf("admin: %s %s: %w", method, target, err)
	}
	hreq.Header.Set("Authorization", "Bearer "+rc.token)
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	hresp, err := rc.http.Do(hreq)
	if err != nil {
		return fmt.Errorf("%w: admin API at %s: %w", ErrUnavailable, rc.where, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hresp.Body, MaxResponseBody+1))
	if err != nil {
		return fmt.Errorf("%w: read answer of %s %s: %w", ErrUnavailable, method, target, err)
	}
	if len(data) > MaxResponseBody {
		return fmt.Errorf("admin: answer of %s %s is over %d bytes", method, target, MaxResponseBody)
	}
	if hresp.StatusCode != http.StatusOK {
		return decodeError(data, hresp.StatusCode, method, target)
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("admin: decode answer of %s %s: %w", method, target, err)
	}
	return nil
}

// Health asks the running server's /healthz, which needs no token.
func (c *Conn) Health(ctx context.Context) error {
	if c.remote == nil {
		return fmt.Errorf("%w: no server is running", ErrUnavailable)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, c.remote.url+"/healthz", nil)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	hresp, err := c.remote.http.Do(hreq)
	if err != nil {
		return fmt.Errorf("%w: admin API at %s: %w", ErrUnavailable, c.remote.where, err)
	}
	defer hresp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(hresp.Body, 4096))
	if hresp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: /healthz answered HTTP %d", ErrUnavailable, hresp.StatusCode)
	}
	return nil
}

// decodeError reads an error answer's body.
func decodeError(data []byte, status int, method, target string) error {
	var eb ErrorBody
	if err := json.Unmarshal(data, &eb); err != nil || eb.Error.Code == "" {
		return fmt.Errorf("%w: %s %s: HTTP %d: %.200s", ErrInternal, method, target, status, data)
	}
	return fromDetail(eb.Error, status)
}

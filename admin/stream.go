package admin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Content is a file version about to be streamed: what it is, and how to
// write its bytes.
type Content struct {
	Hash  string
	Size  uint64
	Mode  uint32
	Write func(ctx context.Context, w io.Writer) error
}

// Headers of a content answer.
const (
	headerHash = "X-Quics-Hash"
	headerMode = "X-Quics-Mode"
)

// StreamOp is an endpoint whose answer is raw bytes rather than JSON. Open
// runs first, so that a missing or ambiguous version is still a JSON error;
// the bytes follow.
type StreamOp[Req any] struct {
	Method string
	Path   string
	Open   func(ctx context.Context, b *Backend, req Req) (Content, error)
}

func (op StreamOp[Req]) pattern() string { return op.Method + " " + op.Path }

func (op StreamOp[Req]) serve(b *Backend, w http.ResponseWriter, r *http.Request) {
	var req Req
	if err := bindRequest(r, op.Path, &req); err != nil {
		writeError(w, err)
		return
	}
	c, err := op.Open(r.Context(), b, req)
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.FormatUint(c.Size, 10))
	w.Header().Set(headerHash, c.Hash)
	w.Header().Set(headerMode, strconv.FormatUint(uint64(c.Mode), 8))
	w.WriteHeader(http.StatusOK)
	if err := c.Write(r.Context(), w); err != nil {
		// The status is sent: cutting the connection is the only way to
		// tell the client the bytes are incomplete.
		panic(http.ErrAbortHandler)
	}
}

// Fetch runs op and writes the content to w. The caller verifies the bytes
// against the returned Hash: a transfer cut short cannot pass.
func Fetch[Req any](ctx context.Context, c *Conn, op StreamOp[Req], req Req, w io.Writer) (Content, error) {
	if c.local != nil {
		content, err := op.Open(ctx, c.local, req)
		if err != nil {
			d, status := toDetail(err)
			return Content{}, fromDetail(d, status)
		}
		if err := content.Write(ctx, w); err != nil {
			return Content{}, fmt.Errorf("admin: write content: %w", err)
		}
		content.Write = nil
		return content, nil
	}
	return c.remote.fetch(ctx, op.Method, op.Path, req, w)
}

func (rc *remoteConn) fetch(ctx context.Context, method, path string, req any, w io.Writer) (Content, error) {
	target, _, err := requestTarget(method, path, req)
	if err != nil {
		return Content{}, err
	}
	hreq, err := http.NewRequestWithContext(ctx, method, rc.url+target, nil)
	if err != nil {
		return Content{}, fmt.Errorf("admin: %s %s: %w", method, target, err)
	}
	hreq.Header.Set("Authorization", "Bearer "+rc.token)
	hresp, err := rc.http.Do(hreq)
	if err != nil {
		return Content{}, fmt.Errorf("%w: admin API at %s: %w", ErrUnavailable, rc.where, err)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		return Content{}, rc.errorFrom(hresp, method, target)
	}
	c := Content{Hash: hresp.Header.Get(headerHash)}
	if c.Size, err = strconv.ParseUint(hresp.Header.Get("Content-Length"), 10, 64); err != nil {
		return Content{}, fmt.Errorf("admin: %s %s: no content length", method, target)
	}
	if mode, err := strconv.ParseUint(hresp.Header.Get(headerMode), 8, 32); err == nil {
		c.Mode = uint32(mode)
	}
	n, err := io.Copy(w, hresp.Body)
	switch {
	case err != nil:
		return Content{}, fmt.Errorf("%w: content of %s: %w", ErrUnavailable, target, err)
	case uint64(n) != c.Size:
		return Content{}, fmt.Errorf("%w: content of %s: got %d of %d bytes", ErrUnavailable, target, n, c.Size)
	}
	return c, nil
}

// errorFrom decodes an error answer.
func (rc *remoteConn) errorFrom(hresp *http.Response, method, target string) error {
	data, err := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: read answer of %s %s: %w", ErrUnavailable, method, target, err)
	}
	return decodeError(data, hresp.StatusCode, method, target)
}

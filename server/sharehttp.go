package server

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/manifest"
)

// The public share listener: HTTPS over HTTP/1.1 (and HTTP/2) on TCP and
// HTTP/3 on UDP, on one address, with the server's certificate. It serves
// GET and HEAD of /s/<token> and nothing else: no admin endpoint, no
// listing, and the same bare 404 for every path it does not know.

// DefaultShareDownloads is how many downloads the share listener serves
// at once when ShareListenOptions.MaxConcurrent is 0; more are answered
// 503 with Retry-After.
const DefaultShareDownloads = 64

// ShareListenOptions configure ListenShares.
type ShareListenOptions struct {
	// Addr is host:port, bound for TCP and for UDP; port 0 picks one free
	// for both.
	Addr string
	// BaseURL is the public prefix of the links, such as
	// https://files.example.com when a reverse proxy forwards to Addr. ""
	// derives https://host:port from the bound address; when its host is
	// a wildcard, the server cannot know its public name and each client
	// builds the link from the host it dials.
	BaseURL string
	// MaxConcurrent bounds the downloads served at once; 0 means
	// DefaultShareDownloads.
	MaxConcurrent int
}

// shareEndpoint is where links are served, for CreateShare to tell.
type shareEndpoint struct {
	baseURL string // "" when unknown: clients use the host they dial
	port    int
}

// url is the link of token, "" when the public address is unknown.
func (e *shareEndpoint) url(token string) string {
	if e.baseURL == "" {
		return ""
	}
	return strings.TrimRight(e.baseURL, "/") + "/s/" + token
}

// ShareListener is the share listener bound to its address.
type ShareListener struct {
	s       *Server
	ep      *shareEndpoint
	tcp     net.Listener
	udp     net.PacketConn
	handler http.Handler
}

// ListenShares binds the share listener and, from then until it is closed
// or its Serve returns, lets members create share links.
func (s *Server) ListenShares(ctx context.Context, opts ShareListenOptions) (*ShareListener, error) {
	if opts.BaseURL != "" {
		if err := checkBaseURL(opts.BaseURL); err != nil {
			return nil, err
		}
	}
	tcp, udp, err := listenTCPAndUDP(ctx, opts.Addr)
	if err != nil {
		return nil, err
	}
	port := tcp.Addr().(*net.TCPAddr).Port
	ep := &shareEndpoint{baseURL: opts.BaseURL, port: port}
	altSvc := ""
	if opts.BaseURL == "" {
		if host, _, err := net.SplitHostPort(opts.Addr); err == nil && !isWildcard(host) {
			ep.baseURL = "https://" + net.JoinHostPort(host, strconv.Itoa(port))
		}
		// Browsers that came over TCP learn that HTTP/3 is on the same
		// port. Behind a proxy the port is the proxy's business.
		altSvc = fmt.Sprintf(`h3=":%d"; ma=86400`, port)
	}
	slots := opts.MaxConcurrent
	if slots <= 0 {
		slots = DefaultShareDownloads
	}
	l := &ShareListener{s: s, ep: ep, tcp: tcp, udp: udp,
		handler: &shareHandler{s: s, slots: make(chan struct{}, slots), altSvc: altSvc}}
	s.shareAt.Store(ep)
	return l, nil
}

func checkBaseURL(base string) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("server: share base URL %q: want http(s)://host[:port][/path] without query or fragment", base)
	}
	return nil
}

func isWildcard(host string) bool {
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// listenTCPAndUDP binds addr for both; with port 0 the UDP socket takes
// the port the TCP one got, trying again if that one is taken for UDP.
func listenTCPAndUDP(ctx context.Context, addr string) (net.Listener, net.PacketConn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("server: share listener address %q: %w", addr, err)
	}
	var lc net.ListenConfig
	for attempt := 1; ; attempt++ {
		tcp, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("server: share listener: %w", err)
		}
		bound := strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port)
		udp, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, bound))
		if err == nil {
			return tcp, udp, nil
		}
		_ = tcp.Close()
		if port != "0" || attempt == 8 {
			return nil, nil, fmt.Errorf("server: share listener: %w", err)
		}
	}
}

// Addr is the bound TCP address (HTTPS over HTTP/1.1 and HTTP/2).
func (l *ShareListener) Addr() net.Addr { return l.tcp.Addr() }

// H3Addr is the bound UDP address (HTTP/3).
func (l *ShareListener) H3Addr() net.Addr { return l.udp.LocalAddr() }

// BaseURL is the prefix of the links, "" when clients build it from the
// host they dial and Port.
func (l *ShareListener) BaseURL() string { return l.ep.baseURL }

// Port is the bound port, the same for TCP and UDP.
func (l *ShareListener) Port() int { return l.ep.port }

// Serve serves links until ctx ends, then shuts down, letting downloads in
// flight finish for a few seconds. Creating links stops working when it
// returns.
func (l *ShareListener) Serve(ctx context.Context) error {
	defer l.s.shareAt.CompareAndSwap(l.ep, nil)
	logger := l.s.log
	tlsConf := l.s.TLSConfig()
	tlsConf.NextProtos = []string{"h2", "http/1.1"}
	h1 := &http.Server{
		Handler:           l.handler,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	h3 := &http3.Server{
		Handler:        l.handler,
		TLSConfig:      http3.ConfigureTLSConfig(l.s.TLSConfig()),
		MaxHeaderBytes: 16 << 10,
		IdleTimeout:    2 * time.Minute,
		Logger:         logger,
	}
	errs := make(chan error, 2)
	go func() { errs <- h1.Serve(tls.NewListener(l.tcp, tlsConf)) }()
	go func() { errs <- h3.Serve(l.udp) }()
	running := 2
	var first error
	select {
	case <-ctx.Done():
	case err := <-errs:
		running--
		if !closedServer(err) {
			first = fmt.Errorf("server: share listener: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := h1.Shutdown(sctx); err != nil {
		_ = h1.Close()
	}
	if err := h3.Shutdown(sctx); err != nil {
		_ = h3.Close()
	}
	_ = l.udp.Close()
	for ; running > 0; running-- {
		if err := <-errs; !closedServer(err) && first == nil {
			first = fmt.Errorf("server: share listener: %w", err)
		}
	}
	return first
}

// closedServer reports whether a Serve error only says the server was
// shut down or its socket closed (Close, or the end of the other half).
func closedServer(err error) bool {
	return err == nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed)
}

// Close releases the addresses of a listener that will not Serve; a
// Serve in progress then returns.
func (l *ShareListener) Close() error {
	l.s.shareAt.CompareAndSwap(l.ep, nil)
	// A running Serve closes the UDP socket itself as soon as the TCP
	// half ends, maybe before the second Close here: already closed is
	// closed.
	var errs []error
	for _, c := range []io.Closer{l.tcp, l.udp} {
		if err := c.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// shareHandler answers the public requests.
type shareHandler struct {
	s      *Server
	slots  chan struct{}
	altSvc string
}

func (h *shareHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	// A cache between the server and the recipient must not hand the file
	// out again past the link's limit.
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "no-referrer")
	if h.altSvc != "" && r.ProtoMajor < 3 {
		hdr.Set("Alt-Svc", h.altSvc)
	}
	token, ok := strings.CutPrefix(r.URL.Path, "/s/")
	if !ok || !validShareToken(token) {
		plainStatus(w, http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		plainStatus(w, http.StatusMethodNotAllowed)
		return
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		hdr.Set("Retry-After", "5")
		plainStatus(w, http.StatusServiceUnavailable)
		return
	}
	h.s.serveShare(w, r, token)
}

// validShareToken accepts what secret.NewToken makes: its bytes in
// unpadded base64url, nothing else.
func validShareToken(token string) bool {
	if len(token) != base64.RawURLEncoding.EncodedLen(secret.TokenBytes) {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(token)
	return err == nil
}

// plainStatus answers with a status and its bare text: no detail about the
// link, whatever went wrong.
func plainStatus(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, http.StatusText(status)+"\n")
}

// serveShare serves one GET or HEAD of a link. A GET counts as a download
// before the first byte goes out: a download that fails half-way has used
// its count, and so has any GET that is answered, a range request or a
// conditional one included. HEAD counts nothing.
func (s *Server) serveShare(w http.ResponseWriter, r *http.Request, token string) {
	ctx := r.Context()
	pins := s.pins.NewSet()
	defer pins.ReleaseAll()
	c, err := s.openShare(ctx, manifest.HashShareToken(token), r.Method == http.MethodGet, pins)
	if err != nil {
		status := shareStatus(err)
		if status == http.StatusInternalServerError {
			s.log.Error("server: share link", "err", err)
		} else {
			s.log.Debug("server: share link refused", "status", status, "err", err)
		}
		plainStatus(w, status)
		return
	}
	rd, err := newContentReader(ctx, s.store, c.Chunks, c.Size)
	if err != nil {
		s.log.Error("server: share link", "share", c.Share.ID.String(), "err", err)
		plainStatus(w, http.StatusInternalServerError)
		return
	}
	name := path.Base(c.Share.Path)
	ctype := mime.TypeByExtension(path.Ext(name))
	if ctype == "" {
		// Sniffed here rather than by ServeContent, which would put a
		// read error's text in its answer.
		var head [512]byte
		n, err := io.ReadFull(rd, head[:])
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			s.log.Error("server: share link", "share", c.Share.ID.String(), "err", err)
			plainStatus(w, http.StatusInternalServerError)
			return
		}
		ctype = http.DetectContentType(head[:n])
		_, _ = rd.Seek(0, io.SeekStart)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ctype)
	hdr.Set("Content-Disposition", contentDisposition(name))
	hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	// The content hash: a resumed download (If-Range) gets the rest of the
	// same content, or the whole new one if the head moved.
	hdr.Set("ETag", `"`+c.Hash.String()+`"`)
	http.ServeContent(w, r, name, c.MTime, rd)
	if rd.err != nil && ctx.Err() == nil {
		s.log.Error("server: share link download cut short", "share", c.Share.ID.String(), "err", rd.err)
	}
	if r.Method == http.MethodGet {
		s.log.Info("server: share link downloaded", "share", c.Share.ID.String(), "downloads", c.Share.Downloads,
			"max_downloads", c.Share.MaxDownloads, "range", r.Header.Get("Range") != "", "remote", r.RemoteAddr)
	}
}

// openShareAttempts bounds how often a download starts over because the
// head moved between finding the content and counting the download.
const openShareAttempts = 3

// openShare finds what the link serves and, for a download, pins its
// chunks and then counts it. Pinning before counting, as HaveChunks pins
// before it looks, keeps a collection from taking the chunks while they
// stream, even if the count used the link up or the head moves on.
func (s *Server) openShare(ctx context.Context, token manifest.TokenHash, download bool, pins *PinSet) (manifest.ShareContent, error) {
	for attempt := 1; ; attempt++ {
		now := s.now()
		c, err := s.db.ResolveShare(ctx, token, now)
		if err != nil || !download {
			return c, err
		}
		ids := make([]cas.ID, len(c.Chunks))
		for i, ch := range c.Chunks {
			ids[i] = ch.ID
		}
		pins.Add(ids...)
		counted, err := s.db.CountShareDownload(ctx, token, now, c.Hash)
		if errors.Is(err, manifest.ErrShareMoved) && attempt < openShareAttempts {
			pins.ReleaseAll()
			continue
		}
		return counted, err
	}
}

// shareStatus is the HTTP status of a failed link lookup.
func shareStatus(err error) int {
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, manifest.ErrShareGone):
		return http.StatusGone
	case errors.Is(err, manifest.ErrShareMoved), errors.Is(err, manifest.ErrContention),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// contentDisposition names the download: RFC 2231/5987 encoding for what
// is not plain ASCII (mime.FormatMediaType), after a plain ASCII
// fallback for clients that only read filename.
func contentDisposition(name string) string {
	full := mime.FormatMediaType("attachment", map[string]string{"filename": name})
	ascii := true
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			ascii = false
			break
		}
	}
	if ascii && full != "" {
		return full
	}
	fallback := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '_'
		}
		return r
	}, name)
	plain := mime.FormatMediaType("attachment", map[string]string{"filename": fallback})
	encoded, ok := strings.CutPrefix(full, "attachment; ")
	switch {
	case plain == "":
		return "attachment"
	case !ok:
		return plain
	}
	return plain + "; " + encoded
}

// contentReader reads a content through its chunk list, one chunk at a
// time from the store, which checks each chunk against its ID. It is the
// io.ReadSeeker http.ServeContent needs for ranges: a seek finds the chunk
// that holds the offset.
type contentReader struct {
	ctx    context.Context
	store  *cas.Store
	chunks []manifest.Chunk
	starts []int64 // starts[i] is the offset of chunks[i]
	size   int64
	pos    int64
	cur    int // index of the chunk in data; -1 for none
	data   []byte
	err    error // the first read error, for the log
}

func newContentReader(ctx context.Context, store *cas.Store, chunks []manifest.Chunk, size uint64) (*contentReader, error) {
	starts := make([]int64, len(chunks))
	var off int64
	for i, c := range chunks {
		starts[i] = off
		off += int64(c.Size)
	}
	if off != int64(size) {
		return nil, fmt.Errorf("server: chunk list adds up to %d bytes, the content has %d: %w", off, size, cas.ErrCorrupt)
	}
	return &contentReader{ctx: ctx, store: store, chunks: chunks, starts: starts, size: off, cur: -1}, nil
}

func (r *contentReader) Read(p []byte) (int, error) {
	if r.pos >= r.size {
		return 0, io.EOF
	}
	i := sort.Search(len(r.starts), func(i int) bool { return r.starts[i] > r.pos }) - 1
	if i != r.cur {
		c := r.chunks[i]
		data, err := r.store.Get(r.ctx, c.ID)
		if err == nil && len(data) != int(c.Size) {
			err = fmt.Errorf("chunk %s has %d bytes, the list says %d: %w", c.ID, len(data), c.Size, cas.ErrCorrupt)
		}
		if err != nil {
			if r.err == nil {
				r.err = fmt.Errorf("server: chunk %d (%s): %w", i, c.ID, err)
			}
			return 0, r.err
		}
		r.data, r.cur = data, i
	}
	n := copy(p, r.data[r.pos-r.starts[i]:])
	r.pos += int64(n)
	return n, nil
}

func (r *contentReader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.size + offset
	default:
		return r.pos, fmt.Errorf("server: content seek: bad whence %d", whence)
	}
	if abs < 0 {
		return r.pos, fmt.Errorf("server: content seek to %d", abs)
	}
	r.pos = abs
	return abs, nil
}

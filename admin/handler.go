package admin

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MaxRequestBody bounds a request body; every request the API takes is a
// few fields.
const MaxRequestBody = 1 << 20

// endpoint is an Op seen by the HTTP layer, whatever its types.
type endpoint interface {
	pattern() string
	serve(b *Backend, w http.ResponseWriter, r *http.Request)
}

func (op Op[Req, Resp]) pattern() string { return op.Method + " " + op.Path }

func (op Op[Req, Resp]) serve(b *Backend, w http.ResponseWriter, r *http.Request) {
	var req Req
	if err := bindRequest(r, op.Path, &req); err != nil {
		writeError(w, err)
		return
	}
	resp, err := op.Run(r.Context(), b, req)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// HandlerOptions configure NewHandler.
type HandlerOptions struct {
	// Token is the bearer token every endpoint but /healthz requires.
	Token string
	// Metrics is served at /metrics; nil serves none.
	Metrics prometheus.Gatherer
	Logger  *slog.Logger
}

// NewHandler returns the admin API over b.
func NewHandler(b *Backend, opts HandlerOptions) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	if opts.Metrics != nil {
		metrics := promhttp.HandlerFor(opts.Metrics, promhttp.HandlerOpts{ErrorLog: slogPrinter{log}})
		// Prometheus on the same host scrapes without a token; from
		// anywhere else it needs one.
		mux.Handle("GET /metrics", authorize(opts.Token, true, metrics))
	}
	// Go's profiler, for memory and CPU investigations on a live server;
	// token only: profiles reveal paths and timing.
	mux.Handle("GET /debug/pprof/", authorize(opts.Token, false, http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", authorize(opts.Token, false, http.HandlerFunc(pprof.Profile)))
	mux.Handle("GET /debug/pprof/trace", authorize(opts.Token, false, http.HandlerFunc(pprof.Trace)))
	for _, e := range endpoints {
		mux.Handle(e.pattern(), authorize(opts.Token, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.serve(b, w, r)
		})))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, fmt.Errorf("%w: no endpoint %s %s", ErrNotFound, r.Method, r.URL.Path))
	})
	return logRequests(log, mux)
}

// authorize requires the bearer token, or (when loopbackOK) a request from
// a loopback address.
func authorize(token string, loopbackOK bool, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if token != "" && subtle.ConstantTimeCompare(got, want) == 1 {
			next.ServeHTTP(w, r)
			return
		}
		if loopbackOK && isLoopback(r.RemoteAddr) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="quics"`)
		writeError(w, fmt.Errorf("%w: this endpoint needs the token of DATA/%s as \"Authorization: Bearer <token>\"", ErrUnauthorized, TokenFile))
	})
}

func isLoopback(remote string) bool {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bindRequest fills req from the path's wildcards, the query string and,
// for methods with a body, the JSON body. Unknown fields are refused so a
// typo is an error, not a silently ignored filter.
func bindRequest(r *http.Request, path string, req any) error {
	fields := map[string]string{}
	for _, name := range wildcards(path) {
		fields[name] = r.PathValue(name)
	}
	for k, v := range r.URL.Query() {
		if len(v) != 1 {
			return fmt.Errorf("%w: query parameter %q given %d times", ErrBadRequest, k, len(v))
		}
		if _, dup := fields[k]; dup {
			return fmt.Errorf("%w: %q is part of the path", ErrBadRequest, k)
		}
		fields[k] = v[0]
	}
	if r.Body != nil && r.Method != http.MethodGet && r.Method != http.MethodDelete {
		body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, MaxRequestBody))
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			return fmt.Errorf("%w: body over %d bytes", ErrTooLarge, MaxRequestBody)
		case err != nil:
			return fmt.Errorf("%w: read body: %w", ErrBadRequest, err)
		}
		if len(bytes.TrimSpace(body)) > 0 {
			if err := decodeStrict(body, req); err != nil {
				return fmt.Errorf("%w: body: %w", ErrBadRequest, err)
			}
		}
	}
	if len(fields) == 0 {
		return nil
	}
	// The path and query fields are strings; a JSON round trip puts them
	// into the request's fields of the same JSON names.
	encoded, err := json.Marshal(fields)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err := decodeStrict(encoded, req); err != nil {
		return fmt.Errorf("%w: path or query: %w", ErrBadRequest, err)
	}
	return nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// wildcards returns the {names} of a pattern path.
func wildcards(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.TrimSuffix(seg[1:len(seg)-1], "..."))
		}
	}
	return out
}

// requestTarget is the client's half of bindRequest: the path with its
// wildcards filled from req, plus the query (GET, DELETE) or the JSON body
// (the other methods) holding the remaining fields.
func requestTarget(method, path string, req any) (target string, body []byte, err error) {
	encoded, err := json.Marshal(req)
	if err != nil {
		return "", nil, fmt.Errorf("encode request: %w", err)
	}
	fields := map[string]any{}
	if err := json.Unmarshal(encoded, &fields); err != nil {
		return "", nil, fmt.Errorf("encode request: %w", err)
	}
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		if !strings.HasPrefix(seg, "{") || !strings.HasSuffix(seg, "}") {
			continue
		}
		name := seg[1 : len(seg)-1]
		v, ok := fields[name].(string)
		if !ok || v == "" {
			return "", nil, fmt.Errorf("%w: %s is required", ErrBadRequest, name)
		}
		segs[i] = url.PathEscape(v)
		delete(fields, name)
	}
	target = strings.Join(segs, "/")
	if method == http.MethodGet || method == http.MethodDelete {
		q := url.Values{}
		for k, v := range fields {
			s, ok := v.(string)
			if !ok {
				return "", nil, fmt.Errorf("encode request: field %s is not a string", k)
			}
			if s != "" {
				q.Set(k, s)
			}
		}
		if len(q) > 0 {
			target += "?" + q.Encode()
		}
		return target, nil, nil
	}
	if len(fields) == 0 {
		return target, nil, nil
	}
	body, err = json.Marshal(fields)
	if err != nil {
		return "", nil, fmt.Errorf("encode request: %w", err)
	}
	return target, body, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	// The status is sent; a client that went away cannot be told more.
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, err error) {
	d, status := toDetail(err)
	writeJSON(w, status, ErrorBody{Error: d})
}

// logRequests logs each request's method, path and status at debug level:
// never its headers or body, which carry the token and passwords.
func logRequests(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		log.LogAttrs(r.Context(), slog.LevelDebug, "admin: request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.status), slog.String("proto", r.Proto),
			slog.Duration("took", time.Since(start)))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// slogPrinter routes promhttp's error log to slog.
type slogPrinter struct{ l *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.l.Warn("admin: metrics: " + fmt.Sprint(v...)) }

package admin

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/quic-s/quics/internal/atomicfile"
	"github.com/quic-s/quics/internal/secret"
)

// Default addresses: loopback only. The API can remove clients and roots;
// exposing it beyond the host is the operator's explicit choice.
const (
	DefaultAddr   = "127.0.0.1:6120"
	DefaultH3Addr = "127.0.0.1:6121"
)

// Files in the data directory through which admin commands find the running
// server.
const (
	// TokenFile holds the bearer token (0600), created on the first run.
	TokenFile = "admin-token"
	// AddrFile holds the URL of the running server's HTTP/1.1 API; it is
	// removed when the server stops.
	AddrFile = "admin-addr"
)

// LoadOrCreateToken returns the admin token of dataDir, creating it on
// first use.
func LoadOrCreateToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, TokenFile)
	tok, err := readToken(path)
	if err == nil {
		return tok, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok, err = secret.NewToken()
	if err != nil {
		return "", fmt.Errorf("admin: %w", err)
	}
	if err := atomicfile.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("admin: write %s: %w", path, err)
	}
	return tok, nil
}

func readToken(path string) (string, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin: %s is empty", path)
	}
	return tok, nil
}

// readSmallFile reads a file of the data dir that holds a line or two.
func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admin: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("admin: read %s: %w", path, err)
	}
	return b, nil
}

// ServeOptions configure Listen.
type ServeOptions struct {
	// Addr is the TCP address of the HTTP/1.1 API, H3Addr the UDP address
	// of the HTTP/3 one; "" turns that one off.
	Addr, H3Addr string
	// Socket is the path of a Unix socket serving the API as plain
	// HTTP/1.1 to admin commands on this host (see SocketFile); "" turns
	// it off. A path too long for a socket address is skipped with a
	// warning, not an error.
	Socket string
	// TLS carries the certificate (the server's own).
	TLS     *tls.Config
	Handler http.Handler
	Logger  *slog.Logger
}

// Listener is the admin API bound to its addresses.
type Listener struct {
	opts   ServeOptions
	tcp    net.Listener
	udp    net.PacketConn
	sock   *net.UnixListener
	http1  *http.Server
	http3  *http3.Server
	local  *http.Server // over sock
	logger *slog.Logger
}

// Listen binds the admin API's addresses.
func Listen(ctx context.Context, opts ServeOptions) (*Listener, error) {
	l := &Listener{opts: opts, logger: opts.Logger}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	if opts.Addr != "" {
		tcp, err := lc.Listen(ctx, "tcp", opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("admin: listen on %s: %w", opts.Addr, err)
		}
		l.tcp = tcp
	}
	if opts.H3Addr != "" {
		udp, err := lc.ListenPacket(ctx, "udp", opts.H3Addr)
		if err != nil {
			if l.tcp != nil {
				_ = l.tcp.Close()
			}
			return nil, fmt.Errorf("admin: listen on %s/udp: %w", opts.H3Addr, err)
		}
		l.udp = udp
	}
	if opts.Socket != "" {
		sock, err := listenSocket(ctx, opts.Socket, l.logger)
		if err != nil {
			return nil, errors.Join(err, l.Close())
		}
		l.sock = sock
	}
	return l, nil
}

// Addr is the bound HTTP/1.1 address, nil when off.
func (l *Listener) Addr() net.Addr {
	if l.tcp == nil {
		return nil
	}
	return l.tcp.Addr()
}

// H3Addr is the bound HTTP/3 address, nil when off.
func (l *Listener) H3Addr() net.Addr {
	if l.udp == nil {
		return nil
	}
	return l.udp.LocalAddr()
}

// URL is where a local admin command reaches the HTTP/1.1 API: the bound
// address, with a wildcard host replaced by loopback.
func (l *Listener) URL() string {
	if l.tcp == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(l.tcp.Addr().String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "https://" + net.JoinHostPort(host, port)
}

// Serve serves until ctx ends, then shuts down, letting requests in flight
// finish for a few seconds.
func (l *Listener) Serve(ctx context.Context) error {
	errs := make(chan error, 3)
	running := 0
	// The TCP and the socket servers differ only in TLS.
	newHTTP1 := func() *http.Server {
		return &http.Server{
			Handler:           l.opts.Handler,
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       time.Minute,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(l.logger.Handler(), slog.LevelDebug),
			BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		}
	}
	if l.tcp != nil {
		tlsConf := l.opts.TLS.Clone()
		tlsConf.NextProtos = []string{"h2", "http/1.1"}
		l.http1 = newHTTP1()
		l.http1.TLSConfig = tlsConf
		running++
		go func() { errs <- l.http1.Serve(tls.NewListener(l.tcp, tlsConf)) }()
	}
	if l.sock != nil {
		l.local = newHTTP1()
		running++
		go func() { errs <- l.local.Serve(l.sock) }()
	}
	if l.udp != nil {
		l.http3 = &http3.Server{
			Handler:        l.opts.Handler,
			TLSConfig:      http3.ConfigureTLSConfig(l.opts.TLS.Clone()),
			MaxHeaderBytes: 64 << 10,
			IdleTimeout:    2 * time.Minute,
			Logger:         l.logger,
		}
		running++
		go func() { errs <- l.http3.Serve(l.udp) }()
	}
	var first error
	select {
	case <-ctx.Done():
	case err := <-errs:
		running--
		first = fmt.Errorf("admin: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	for _, hs := range []*http.Server{l.http1, l.local} {
		if hs == nil {
			continue
		}
		if err := hs.Shutdown(sctx); err != nil {
			_ = hs.Close()
		}
	}
	if l.http3 != nil {
		if err := l.http3.Shutdown(sctx); err != nil {
			_ = l.http3.Close()
		}
		_ = l.udp.Close()
	}
	for ; running > 0; running-- {
		if err := <-errs; err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) && first == nil {
			first = fmt.Errorf("admin: %w", err)
		}
	}
	return first
}

// Publish tells admin commands how to reach l through dataDir: the URL of
// its TCP API (AddrFile) and the path of its socket (SocketAddrFile). What
// l does not serve is withdrawn: a file from an earlier run must not send
// commands elsewhere.
func (l *Listener) Publish(dataDir string) error {
	var errs []error
	for name, where := range map[string]string{AddrFile: l.URL(), SocketAddrFile: l.SocketPath()} {
		if where == "" {
			errs = append(errs, withdraw(dataDir, name))
		} else {
			errs = append(errs, publish(dataDir, name, where))
		}
	}
	return errors.Join(errs...)
}

// Withdraw removes what Publish wrote, when the server stops or serves no
// admin API.
func Withdraw(dataDir string) error {
	return errors.Join(withdraw(dataDir, AddrFile), withdraw(dataDir, SocketAddrFile))
}

// publish writes a line that tells admin commands where the server is.
func publish(dataDir, name, line string) error {
	path := filepath.Join(dataDir, name)
	if err := atomicfile.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
		return fmt.Errorf("admin: write %s: %w", path, err)
	}
	return nil
}

// withdraw removes what publish wrote.
func withdraw(dataDir, name string) error {
	err := os.Remove(filepath.Join(dataDir, name))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// Close releases the addresses of a Listener that will not Serve.
func (l *Listener) Close() error {
	var errs []error
	if l.tcp != nil {
		errs = append(errs, l.tcp.Close())
	}
	if l.udp != nil {
		errs = append(errs, l.udp.Close())
	}
	if l.sock != nil {
		errs = append(errs, l.sock.Close())
	}
	return errors.Join(errs...)
}

package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// The admin API's Unix socket: plain HTTP/1.1 for the admin commands that
// run on the server's own host. Whoever can connect to it can already read
// DATA/admin-token, so TLS would add nothing but the cost of encrypting
// every byte twice over loopback (a 256 MiB restore spends much of its time
// there); the file's mode (0600, inside the 0700 data directory) is the
// fence, and the handler still asks for the token, so one code path decides
// who gets in.
const (
	// SocketFile is the socket's name in the data directory when the
	// operator does not move it.
	SocketFile = "admin.sock"
	// SocketAddrFile holds the path of the socket the running server
	// serves, wherever the operator put it; it is removed when the server
	// stops.
	SocketAddrFile = "admin-socket"
)

// socketURL is the base of request URLs over the socket: the transport
// ignores the host, but URLs need one.
const socketURL = "http://quics-admin"

// maxSocketPath is the longest path a Unix socket address holds, its
// terminating NUL left out (107 bytes on Linux, 103 on the BSDs).
var maxSocketPath = len(syscall.RawSockaddrUnix{}.Path) - 1

// listenSocket binds path for the admin API. A path too long for a socket
// address is not fatal: the server runs without the socket (nil listener)
// and admin commands use TCP.
func listenSocket(ctx context.Context, path string, log *slog.Logger) (*net.UnixListener, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("admin: socket %s: %w", path, err)
	}
	if len(abs) > maxSocketPath {
		log.Warn("admin: socket path too long, serving the admin API without it (admin commands use TCP)",
			"path", abs, "bytes", len(abs), "max", maxSocketPath)
		return nil, nil
	}
	if err := clearStaleSocket(ctx, abs); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	nl, err := lc.Listen(ctx, "unix", abs)
	if err != nil {
		return nil, fmt.Errorf("admin: listen on unix:%s: %w", abs, err)
	}
	ul := nl.(*net.UnixListener)
	// Closing the listener unlinks the file: a stopped server leaves no
	// socket behind.
	ul.SetUnlinkOnClose(true)
	// Connecting needs write permission on the socket: under the usual
	// umask (022) nobody else has it even before this chmod, and the
	// handler asks for the token anyway.
	if err := os.Chmod(abs, 0o600); err != nil {
		return nil, errors.Join(fmt.Errorf("admin: socket %s: %w", abs, err), ul.Close())
	}
	return ul, nil
}

// clearStaleSocket removes a socket left at path by a process that is gone.
// Anything else at path is refused: a file that is not a socket is not ours
// to delete, and a socket that answers belongs to a live process.
func clearStaleSocket(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin: socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("admin: %s exists and is not a socket (%s); move it away or choose another --admin-socket", path, fi.Mode().Type())
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(dctx, "unix", path)
	if err == nil {
		_ = conn.Close()
		return fmt.Errorf("admin: another process serves the socket %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("admin: socket %s is in the way and its owner is unknown: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("admin: remove stale socket: %w", err)
	}
	return nil
}

// SocketPath is the path of the bound Unix socket, "" when there is none.
func (l *Listener) SocketPath() string {
	if l.sock == nil {
		return ""
	}
	return l.sock.Addr().String()
}

// NewSocket returns a Conn to the API on the Unix socket at path: plain
// HTTP/1.1, with the token still sent on every request.
func NewSocket(path, token string) *Conn {
	tr := unixTransport(path)
	tr.ResponseHeaderTimeout = 10 * time.Minute
	tr.MaxIdleConns = 2
	tr.IdleConnTimeout = 30 * time.Second
	return &Conn{remote: &remoteConn{url: socketURL, where: "unix:" + path, token: token, http: &http.Client{Transport: tr}}}
}

// unixTransport carries HTTP over the Unix socket at path, whatever host a
// request names.
func unixTransport(path string) *http.Transport {
	return &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
}

// publishedSocket is the socket path the running server published in
// dataDir, "" when it serves none.
func publishedSocket(dataDir string) string {
	b, err := readSmallFile(filepath.Join(dataDir, SocketAddrFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// socketAnswers reports whether something accepts connections on path: a
// socket file a killed server left behind refuses them.
func socketAnswers(ctx context.Context, path string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return false
	}
	_ = conn.Close()
	return true
}

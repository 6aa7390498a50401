package syncproto

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/quic-go/quic-go"
)

// ALPN is the TLS application protocol of quics; a connection that does not
// negotiate it is refused.
const ALPN = "quics/1"

// DefaultPort is the server's UDP port.
const DefaultPort = 6122

// Config sets the limits of a listener or dialed connection. Zero fields
// take the defaults in DefaultConfig.
type Config struct {
	// HandshakeTimeout bounds the QUIC and TLS handshake.
	HandshakeTimeout time.Duration
	// MaxIdleTimeout closes a connection that received nothing for this
	// long (the smaller of both peers' values applies).
	MaxIdleTimeout time.Duration
	// KeepAlivePeriod sends a ping when idle, so a quiet but healthy
	// connection (a watch stream) stays open through NATs.
	KeepAlivePeriod time.Duration
	// MaxIncomingStreams caps the concurrent transactions a peer may open.
	MaxIncomingStreams int64
	// MaxStreamReceiveWindow and MaxConnectionReceiveWindow cap the bytes
	// buffered for a stream and for a connection.
	MaxStreamReceiveWindow     uint64
	MaxConnectionReceiveWindow uint64
	// ReadTimeout and WriteTimeout bound each frame read or written on a
	// stream; a peer that stalls mid-frame is cut off.
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// MaxFramePayload is the initial frame limit of every stream.
	MaxFramePayload int
	// PathMTUDiscovery lets the connection probe for packets larger than
	// quic-go's 1280-byte start (RFC 8899). Each side then sends a few
	// probes of up to 1452 bytes soon after the handshake, about 11 KB
	// for both: more than a small one-shot sync moves in all, against
	// about 12 % fewer packets on a bulk transfer. Off by default; a
	// long-lived connection moving much data may turn it on.
	PathMTUDiscovery bool
	// PostQuantumKeyExchange makes Dial offer the hybrid X25519MLKEM768
	// key exchange (protection of recorded traffic against a future
	// quantum computer). Its key share makes the ClientHello and the
	// server's answer too large for one datagram each, about 2.3 KB more
	// per handshake; without it Dial offers X25519 alone. The server
	// accepts either.
	PostQuantumKeyExchange bool
	// Logger receives Serve's reports (handler panics). Nil means
	// slog.Default().
	Logger *slog.Logger
	// Wire, when set, also receives the byte counts of every connection
	// Dial makes with this Config (each connection counts its own as well,
	// see Conn.WireStats), so one counter can total a whole session of
	// several connections.
	Wire *WireCounter
}

// DefaultConfig holds the values used for zero Config fields.
var DefaultConfig = Config{
	HandshakeTimeout:           10 * time.Second,
	MaxIdleTimeout:             60 * time.Second,
	KeepAlivePeriod:            20 * time.Second,
	MaxIncomingStreams:         64,
	MaxStreamReceiveWindow:     8 << 20,
	MaxConnectionReceiveWindow: 32 << 20,
	ReadTimeout:                30 * time.Second,
	WriteTimeout:               30 * time.Second,
	MaxFramePayload:            DefaultMaxFramePayload,
}

func (c Config) withDefaults() Config {
	d := DefaultConfig
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = d.HandshakeTimeout
	}
	if c.MaxIdleTimeout <= 0 {
		c.MaxIdleTimeout = d.MaxIdleTimeout
	}
	if c.KeepAlivePeriod <= 0 {
		c.KeepAlivePeriod = d.KeepAlivePeriod
	}
	if c.MaxIncomingStreams <= 0 {
		c.MaxIncomingStreams = d.MaxIncomingStreams
	}
	if c.MaxStreamReceiveWindow == 0 {
		c.MaxStreamReceiveWindow = d.MaxStreamReceiveWindow
	}
	if c.MaxConnectionReceiveWindow == 0 {
		c.MaxConnectionReceiveWindow = d.MaxConnectionReceiveWindow
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = d.ReadTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.MaxFramePayload <= 0 {
		c.MaxFramePayload = d.MaxFramePayload
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

const initialWindow = 512 << 10

func (c Config) quic() *quic.Config {
	return &quic.Config{
		HandshakeIdleTimeout:    c.HandshakeTimeout,
		MaxIdleTimeout:          c.MaxIdleTimeout,
		KeepAlivePeriod:         c.KeepAlivePeriod,
		MaxIncomingStreams:      c.MaxIncomingStreams,
		MaxIncomingUniStreams:   -1, // the protocol uses bidirectional streams only
		DisablePathMTUDiscovery: !c.PathMTUDiscovery,
		// Windows start small and grow up to the maxima as the
		// application keeps up, so idle connections hold little memory.
		InitialStreamReceiveWindow:     min(initialWindow, c.MaxStreamReceiveWindow),
		MaxStreamReceiveWindow:         c.MaxStreamReceiveWindow,
		InitialConnectionReceiveWindow: min(initialWindow, c.MaxConnectionReceiveWindow),
		MaxConnectionReceiveWindow:     c.MaxConnectionReceiveWindow,
	}
}

// tlsConfig clones tc and pins it to TLS 1.3 and the quics ALPN, whatever
// the caller set.
func tlsConfig(tc *tls.Config) *tls.Config {
	tc = tc.Clone()
	tc.MinVersion = tls.VersionTLS13
	tc.NextProtos = []string{ALPN}
	return tc
}

// Listener accepts QUIC connections that negotiated ALPN.
type Listener struct {
	ql   *quic.Listener
	pc   net.PacketConn
	conf Config
}

// Listen opens a UDP socket on addr ("host:port"; port 0 picks one) and
// accepts QUIC connections on it. tlsConf must hold the server certificate;
// its TLS version and ALPN are overridden.
func Listen(ctx context.Context, addr string, tlsConf *tls.Config, cfg Config) (*Listener, error) {
	if tlsConf == nil || (len(tlsConf.Certificates) == 0 && tlsConf.GetCertificate == nil && tlsConf.GetConfigForClient == nil) {
		return nil, errors.New("syncproto: listen: TLS config has no certificate")
	}
	cfg = cfg.withDefaults()
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("syncproto: listen on %s: %w", addr, err)
	}
	tc := tlsConfig(tlsConf)
	// Dial keeps no session cache, so a ticket would never be used: it
	// would only add about 170 bytes to every connection's handshake.
	tc.SessionTicketsDisabled = true
	ql, err := quic.Listen(pc, tc, cfg.quic())
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("syncproto: listen on %s: %w", addr, err)
	}
	return &Listener{ql: ql, pc: pc, conf: cfg}, nil
}

// Accept waits for the next connection whose handshake completed.
func (l *Listener) Accept(ctx context.Context) (*Conn, error) {
	for {
		qc, err := l.ql.Accept(ctx)
		if err != nil {
			return nil, fmt.Errorf("syncproto: accept: %w", err)
		}
		// crypto/tls already refuses a QUIC handshake without a common
		// protocol; this guards against a future configuration mistake.
		if p := qc.ConnectionState().TLS.NegotiatedProtocol; p != ALPN {
			_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeUnsupported), "application protocol must be "+ALPN)
			continue
		}
		return &Conn{qc: qc, conf: l.conf}, nil
	}
}

// Addr returns the local UDP address.
func (l *Listener) Addr() net.Addr { return l.ql.Addr() }

// Close stops accepting, closes every accepted connection and the socket.
func (l *Listener) Close() error {
	err := l.ql.Close()
	if cerr := l.pc.Close(); err == nil && cerr != nil && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	return err
}

// Dial connects to a quics server at addr ("host:port", or "host" for
// DefaultPort). tlsConf is usually tlsutil.PinnedClientConfig; its TLS
// version and ALPN are overridden. The local socket binds the loopback
// address when the server is on loopback, else the unspecified address of
// the server's family; it is closed with the connection. The socket counts
// the bytes it carries: see Conn.WireStats and Config.Wire.
func Dial(ctx context.Context, addr string, tlsConf *tls.Config, cfg Config) (*Conn, error) {
	if tlsConf == nil {
		return nil, errors.New("syncproto: dial: nil TLS config")
	}
	cfg = cfg.withDefaults()
	raddr, err := resolve(ctx, addr)
	if err != nil {
		return nil, err
	}
	local := netip.IPv6Unspecified()
	network := "udp6"
	if raddr.Addr().Is4() {
		local, network = netip.IPv4Unspecified(), "udp4"
	}
	if raddr.Addr().IsLoopback() {
		local = raddr.Addr()
	}
	udp, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0)))
	if err != nil {
		return nil, fmt.Errorf("syncproto: dial %s: local socket: %w", addr, err)
	}
	wire := &WireCounter{}
	tr := &quic.Transport{Conn: newCountingConn(udp, wire, cfg.Wire)}
	release := func() {
		_ = tr.Close()
		_ = udp.Close()
	}
	tc := tlsConfig(tlsConf)
	if !cfg.PostQuantumKeyExchange {
		// One classical key share keeps each handshake flight in one
		// datagram (see Config.PostQuantumKeyExchange).
		tc.CurvePreferences = []tls.CurveID{tls.X25519}
	}
	qc, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(raddr), tc, cfg.quic())
	if err != nil {
		release()
		return nil, fmt.Errorf("syncproto: dial %s: %w", addr, fromQUIC(err))
	}
	// The transport and socket belong to this connection alone: release
	// them however the connection ends (Close, peer close, idle timeout).
	context.AfterFunc(qc.Context(), release)
	if p := qc.ConnectionState().TLS.NegotiatedProtocol; p != ALPN {
		_ = qc.CloseWithError(quic.ApplicationErrorCode(CodeUnsupported), "application protocol must be "+ALPN)
		return nil, fmt.Errorf("%w: dial %s: server negotiated %q, want %q", ErrUnsupported, addr, p, ALPN)
	}
	return &Conn{qc: qc, conf: cfg, wire: wire}, nil
}

// resolve parses addr, adding DefaultPort when it has no port, and looks the
// host up if it is not an IP literal.
func resolve(ctx context.Context, addr string) (netip.AddrPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]"), strconv.Itoa(DefaultPort)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("syncproto: dial %s: bad port %q", addr, port)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if lerr != nil {
			return netip.AddrPort{}, fmt.Errorf("syncproto: dial %s: %w", addr, lerr)
		}
		if len(ips) == 0 {
			return netip.AddrPort{}, fmt.Errorf("syncproto: dial %s: no address for %q", addr, host)
		}
		ip = ips[0]
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

// Conn is one QUIC connection between a client and the server. Each
// transaction runs on its own stream.
type Conn struct {
	qc   *quic.Conn
	conf Config
	wire *WireCounter // nil for accepted connections
}

// WireStats returns the UDP payload bytes the connection's socket has sent
// and received, QUIC overhead and retransmissions included. Only dialed
// connections count; an accepted one shares the listener's socket and
// reports zeros.
func (c *Conn) WireStats() (sent, received uint64) {
	if c.wire == nil {
		return 0, 0
	}
	return c.wire.Stats()
}

// OpenStream opens a stream for a new transaction, waiting while the peer's
// stream limit is reached.
func (c *Conn) OpenStream(ctx context.Context) (*Stream, error) {
	qs, err := c.qc.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("syncproto: open stream: %w", fromQUIC(err))
	}
	return newStream(qs, c.conf), nil
}

// AcceptStream waits for the peer to open a stream.
func (c *Conn) AcceptStream(ctx context.Context) (*Stream, error) {
	qs, err := c.qc.AcceptStream(ctx)
	if err != nil {
		return nil, fmt.Errorf("syncproto: accept stream: %w", fromQUIC(err))
	}
	return newStream(qs, c.conf), nil
}

// CloseWithError closes the connection, telling the peer code and msg (cut
// to MaxErrorMessageLen).
func (c *Conn) CloseWithError(code Code, msg string) error {
	return c.qc.CloseWithError(quic.ApplicationErrorCode(code), sanitizeMessage(msg))
}

// Close closes the connection normally.
func (c *Conn) Close() error { return c.CloseWithError(CodeNoError, "") }

// Context is canceled when the connection closes.
func (c *Conn) Context() context.Context { return c.qc.Context() }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.qc.RemoteAddr() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.qc.LocalAddr() }

// TLS returns the connection's TLS state (peer certificates, for
// tlsutil.PeerFingerprint).
func (c *Conn) TLS() tls.ConnectionState { return c.qc.ConnectionState().TLS }

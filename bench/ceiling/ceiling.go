package ceiling

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/quic-s/quics/bench/relay"
	"github.com/quic-s/quics/syncproto"
)

const alpn = "quics-bench-ceiling"

// Result is one transfer.
type Result struct {
	Bytes int64
	Wall  time.Duration
	// Wire is what the relay counted, when the transfer went through one.
	Wire relay.Counts
}

// Transfer sends n bytes from a client to a server over one QUIC stream
// on 127.0.0.1 and times it. With viaRelay the client dials through a
// counting relay, as the benchmark's qic processes do.
func Transfer(ctx context.Context, n int64, viaRelay bool) (Result, error) {
	tlsConf, err := selfSigned()
	if err != nil {
		return Result{}, err
	}
	ln, err := quic.ListenAddr("127.0.0.1:0", tlsConf, config())
	if err != nil {
		return Result{}, fmt.Errorf("ceiling: listen: %w", err)
	}
	defer ln.Close()
	dialAddr := ln.Addr().String()
	var r *relay.Relay
	if viaRelay {
		if r, err = relay.New(dialAddr); err != nil {
			return Result{}, err
		}
		defer r.Close()
		dialAddr = r.Addr()
	}
	res, err := transfer(ctx, n, ln, func(ctx context.Context, tlsConf *tls.Config) (*quic.Conn, error) {
		return quic.DialAddr(ctx, dialAddr, tlsConf, config())
	})
	if err == nil && r != nil {
		res.Wire = r.Counts()
	}
	return res, err
}

// TransferOver is Transfer between two UDP sockets the caller opened (in
// two network namespaces, say): the client sends from client to server's
// address, with no relay. It closes neither socket.
func TransferOver(ctx context.Context, n int64, server, client net.PacketConn) (Result, error) {
	tlsConf, err := selfSigned()
	if err != nil {
		return Result{}, err
	}
	ln, err := quic.Listen(server, tlsConf, config())
	if err != nil {
		return Result{}, fmt.Errorf("ceiling: listen: %w", err)
	}
	defer ln.Close()
	return transfer(ctx, n, ln, func(ctx context.Context, tlsConf *tls.Config) (*quic.Conn, error) {
		return quic.Dial(ctx, client, server.LocalAddr(), tlsConf, config())
	})
}

// config has the flow-control windows quics configures.
func config() *quic.Config {
	return &quic.Config{
		InitialStreamReceiveWindow:     512 << 10,
		MaxStreamReceiveWindow:         syncproto.DefaultConfig.MaxStreamReceiveWindow,
		InitialConnectionReceiveWindow: 512 << 10,
		MaxConnectionReceiveWindow:     syncproto.DefaultConfig.MaxConnectionReceiveWindow,
		MaxIdleTimeout:                 30 * time.Second,
	}
}

// transfer times one send to ln through a connection from dial.
func transfer(ctx context.Context, n int64, ln *quic.Listener, dial func(context.Context, *tls.Config) (*quic.Conn, error)) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	received := make(chan error, 1)
	go func() { received <- receive(ctx, ln, n) }()

	start := time.Now()
	err := send(ctx, dial, n)
	if rerr := <-received; err == nil {
		err = rerr
	}
	wall := time.Since(start)
	if err != nil {
		return Result{}, err
	}
	return Result{Bytes: n, Wall: wall}, nil
}

// send dials, writes n bytes on one stream and waits for the server's
// one-byte acknowledgement that it read them all.
func send(ctx context.Context, dial func(context.Context, *tls.Config) (*quic.Conn, error), n int64) error {
	conn, err := dial(ctx, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}}) // the server's throwaway certificate
	if err != nil {
		return fmt.Errorf("ceiling: dial: %w", err)
	}
	defer func() { _ = conn.CloseWithError(0, "") }()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fmt.Errorf("ceiling: open stream: %w", err)
	}
	buf := make([]byte, 1<<20)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	for left := n; left > 0; {
		w, err := str.Write(buf[:min(left, int64(len(buf)))])
		if err != nil {
			return fmt.Errorf("ceiling: write: %w", err)
		}
		left -= int64(w)
	}
	if err := str.Close(); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	var ack [1]byte
	if _, err := io.ReadFull(str, ack[:]); err != nil {
		return fmt.Errorf("ceiling: no acknowledgement: %w", err)
	}
	return nil
}

// receive accepts one connection and stream, reads to the end and
// acknowledges; fewer than n bytes is an error.
func receive(ctx context.Context, ln *quic.Listener, n int64) error {
	conn, err := ln.Accept(ctx)
	if err != nil {
		return fmt.Errorf("ceiling: accept: %w", err)
	}
	defer func() { _ = conn.CloseWithError(0, "") }()
	str, err := conn.AcceptStream(ctx)
	if err != nil {
		return fmt.Errorf("ceiling: accept stream: %w", err)
	}
	got, err := io.CopyBuffer(io.Discard, str, make([]byte, 1<<20))
	if err != nil {
		return fmt.Errorf("ceiling: read: %w", err)
	}
	if got != n {
		return fmt.Errorf("ceiling: received %d bytes, want %d", got, n)
	}
	if _, err := str.Write([]byte{1}); err != nil {
		return fmt.Errorf("ceiling: acknowledge: %w", err)
	}
	if err := str.Close(); err != nil {
		return fmt.Errorf("ceiling: %w", err)
	}
	// Wait for the client to close, so the acknowledgement is not cut off.
	<-conn.Context().Done()
	if err := context.Cause(conn.Context()); err != nil {
		var appErr *quic.ApplicationError
		if !errors.As(err, &appErr) {
			return fmt.Errorf("ceiling: connection: %w", err)
		}
	}
	return nil
}

func selfSigned() (*tls.Config, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("ceiling: key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "quics-bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("ceiling: certificate: %w", err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{alpn},
		MinVersion:   tls.VersionTLS13,
	}, nil
}

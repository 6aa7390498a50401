package s3test

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Fault is what a Proxy does to one connection. The zero Fault forwards it
// untouched.
type Fault struct {
	// Reset aborts the connection with a TCP RST as soon as it is
	// accepted: the client sees a connection reset or an EOF before any
	// response.
	Reset bool
	// CutAfter, when positive, forwards that many bytes of the server's
	// response and then closes the connection: a body that ends before its
	// Content-Length. (A FIN, not an RST: an RST would make the client's
	// kernel drop bytes it had received but not yet read, so the client
	// would see an unpredictable amount.)
	CutAfter int64
}

// Proxy is a TCP proxy on 127.0.0.1 that injects faults at the network
// edge, in front of a real server.
type Proxy struct {
	Addr     string // 127.0.0.1:PORT
	Endpoint string // http://Addr

	target string
	ln     net.Listener
	fault  atomic.Pointer[func(n int) Fault]
	conns  atomic.Int64

	mu   sync.Mutex
	open map[net.Conn]struct{}
	wg   sync.WaitGroup
}

// NewProxy listens on a free port and forwards every connection to target
// after asking fault (nil: no faults) what to do with it; n counts
// connections from 0. The proxy closes when the test ends.
func NewProxy(t testing.TB, target string, fault func(n int) Fault) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: proxy: %v", err)
	}
	p := &Proxy{
		Addr:     ln.Addr().String(),
		Endpoint: "http://" + ln.Addr().String(),
		target:   target,
		ln:       ln,
		open:     make(map[net.Conn]struct{}),
	}
	p.SetFault(fault)
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// SetFault replaces the fault policy for connections accepted from now on.
func (p *Proxy) SetFault(fault func(n int) Fault) {
	if fault == nil {
		fault = func(int) Fault { return Fault{} }
	}
	p.fault.Store(&fault)
}

// Conns is the number of connections accepted so far.
func (p *Proxy) Conns() int { return int(p.conns.Load()) }

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		n := int(p.conns.Add(1) - 1)
		f := (*p.fault.Load())(n)
		if f.Reset {
			reset(c)
			continue
		}
		if !p.track(c) {
			reset(c)
			return
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.untrack(c)
			p.forward(c, f)
		}()
	}
}

func (p *Proxy) forward(client net.Conn, f Fault) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		reset(client)
		return
	}
	if !p.track(server) {
		reset(server)
		reset(client)
		return
	}
	defer p.untrack(server)

	up := make(chan struct{})
	go func() {
		defer close(up)
		_, _ = io.Copy(server, client)
		halfClose(server)
	}()
	if f.CutAfter > 0 {
		_, _ = io.CopyN(client, server, f.CutAfter)
		client.Close()
		reset(server)
	} else {
		_, _ = io.Copy(client, server)
		halfClose(client)
	}
	<-up
	client.Close()
	server.Close()
}

func (p *Proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open == nil {
		return false // closing
	}
	p.open[c] = struct{}{}
	return true
}

func (p *Proxy) untrack(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.open, c)
}

func (p *Proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.open {
		c.Close()
	}
	p.open = nil
	p.mu.Unlock()
	p.wg.Wait()
}

// reset closes c with SO_LINGER 0, which sends an RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func halfClose(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		return
	}
	c.Close()
}

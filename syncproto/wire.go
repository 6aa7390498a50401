package syncproto

import (
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// WireCounter counts the bytes a client's UDP socket sends and receives:
// the UDP payloads, so QUIC headers, encryption, acknowledgements and
// retransmissions are included while IP and UDP headers are not. It is safe
// for concurrent use; several connections may share one.
type WireCounter struct {
	sent, received atomic.Uint64
}

// Stats returns the bytes sent and received so far.
func (w *WireCounter) Stats() (sent, received uint64) {
	return w.sent.Load(), w.received.Load()
}

func (w *WireCounter) addSent(n int) {
	if w != nil && n > 0 {
		w.sent.Add(uint64(n))
	}
}

func (w *WireCounter) addReceived(n int) {
	if w != nil && n > 0 {
		w.received.Add(uint64(n))
	}
}

// countingConn is the UDP socket of a dialed connection, counting every
// byte through it into its own counter and an optional shared one. It
// offers everything quic-go looks for on a *net.UDPConn (OOB messages,
// batched reads, buffer sizes, the raw socket for GSO and ECN), so counting
// costs none of quic-go's fast paths; reads go through ReadBatch here rather
// than through the raw descriptor, or they would escape the count.
type countingConn struct {
	udp    *net.UDPConn
	batch  *ipv4.PacketConn
	own    *WireCounter
	shared *WireCounter // nil when the caller gave none
}

func newCountingConn(udp *net.UDPConn, own, shared *WireCounter) *countingConn {
	return &countingConn{udp: udp, batch: ipv4.NewPacketConn(udp), own: own, shared: shared}
}

func (c *countingConn) sent(n int) {
	c.own.addSent(n)
	c.shared.addSent(n)
}

func (c *countingConn) received(n int) {
	c.own.addReceived(n)
	c.shared.addReceived(n)
}

func (c *countingConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.udp.ReadFrom(b)
	c.received(n)
	return n, addr, err
}

func (c *countingConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.udp.WriteTo(b, addr)
	c.sent(n)
	return n, err
}

func (c *countingConn) ReadMsgUDP(b, oob []byte) (n, oobn, flags int, addr *net.UDPAddr, err error) {
	n, oobn, flags, addr, err = c.udp.ReadMsgUDP(b, oob)
	c.received(n)
	return n, oobn, flags, addr, err
}

func (c *countingConn) WriteMsgUDP(b, oob []byte, addr *net.UDPAddr) (n, oobn int, err error) {
	n, oobn, err = c.udp.WriteMsgUDP(b, oob, addr)
	c.sent(n)
	return n, oobn, err
}

// ReadBatch is what quic-go reads with on Linux.
func (c *countingConn) ReadBatch(ms []ipv4.Message, flags int) (int, error) {
	n, err := c.batch.ReadBatch(ms, flags)
	for i := range n {
		c.received(ms[i].N)
	}
	return n, err
}

func (c *countingConn) Close() error                       { return c.udp.Close() }
func (c *countingConn) LocalAddr() net.Addr                { return c.udp.LocalAddr() }
func (c *countingConn) SetDeadline(t time.Time) error      { return c.udp.SetDeadline(t) }
func (c *countingConn) SetReadDeadline(t time.Time) error  { return c.udp.SetReadDeadline(t) }
func (c *countingConn) SetWriteDeadline(t time.Time) error { return c.udp.SetWriteDeadline(t) }
func (c *countingConn) SetReadBuffer(n int) error          { return c.udp.SetReadBuffer(n) }
func (c *countingConn) SetWriteBuffer(n int) error         { return c.udp.SetWriteBuffer(n) }
func (c *countingConn) SyscallConn() (syscall.RawConn, error) {
	return c.udp.SyscallConn()
}

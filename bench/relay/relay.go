package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/net/ipv4"
)

const (
	// maxDatagram fits any UDP payload, so nothing is ever truncated.
	maxDatagram = 1 << 16
	// batchLen is how many datagrams one recvmmsg/sendmmsg moves.
	batchLen = 32
	// socketBuffer is what the relay asks for on each socket, like quic-go
	// does, so a burst is not dropped at the relay and retransmitted.
	socketBuffer = 8 << 20
)

// Counts are the datagrams and their payload bytes that went through a
// relay, in each direction: up is client to server.
type Counts struct {
	UpBytes     int64 `json:"up_bytes"`
	DownBytes   int64 `json:"down_bytes"`
	UpPackets   int64 `json:"up_packets"`
	DownPackets int64 `json:"down_packets"`
}

// Sub is c minus an earlier snapshot o: what went through in between.
func (c Counts) Sub(o Counts) Counts {
	return Counts{
		UpBytes:     c.UpBytes - o.UpBytes,
		DownBytes:   c.DownBytes - o.DownBytes,
		UpPackets:   c.UpPackets - o.UpPackets,
		DownPackets: c.DownPackets - o.DownPackets,
	}
}

// Total is the payload bytes of both directions.
func (c Counts) Total() int64 { return c.UpBytes + c.DownBytes }

// Relay forwards UDP datagrams between clients and one target, counting
// them. It is safe for concurrent use.
type Relay struct {
	conn   *net.UDPConn
	batch  *ipv4.PacketConn
	target *net.UDPAddr

	upBytes, downBytes, upPackets, downPackets atomic.Int64

	mu     sync.Mutex
	flows  map[netip.AddrPort]*flow
	closed bool
	wg     sync.WaitGroup
}

// flow is one client's path: a socket connected to the target that
// stands in for the client there.
type flow struct {
	client *net.UDPAddr
	conn   *net.UDPConn
	batch  *ipv4.PacketConn
}

// New starts a relay on a free port of 127.0.0.1 that forwards to target
// ("host:port"). Close stops it.
func New(target string) (*Relay, error) {
	to, err := net.ResolveUDPAddr("udp4", target)
	if err != nil {
		return nil, fmt.Errorf("relay: target %q: %w", target, err)
	}
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, fmt.Errorf("relay: listen: %w", err)
	}
	growBuffers(conn)
	r := &Relay{conn: conn, batch: ipv4.NewPacketConn(conn), target: to, flows: map[netip.AddrPort]*flow{}}
	r.wg.Go(r.serveClients)
	return r, nil
}

// Addr is the address clients send to.
func (r *Relay) Addr() string { return r.conn.LocalAddr().String() }

// Counts is a snapshot of everything relayed so far.
func (r *Relay) Counts() Counts {
	return Counts{
		UpBytes:     r.upBytes.Load(),
		DownBytes:   r.downBytes.Load(),
		UpPackets:   r.upPackets.Load(),
		DownPackets: r.downPackets.Load(),
	}
}

// Close stops the relay and waits for its goroutines.
func (r *Relay) Close() error {
	r.mu.Lock()
	r.closed = true
	err := r.conn.Close()
	for _, f := range r.flows {
		_ = f.conn.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

// serveClients forwards what clients send, each datagram through its
// client's flow, until the relay closes.
func (r *Relay) serveClients() {
	in := newBatch()
	out := make([]ipv4.Message, 0, batchLen)
	for {
		n, err := r.batch.ReadBatch(in, 0)
		if err != nil {
			if transient(err) {
				continue
			}
			return
		}
		for i := 0; i < n; {
			from, ok := in[i].Addr.(*net.UDPAddr)
			if !ok {
				i++
				continue
			}
			// Consecutive datagrams from one client go out in one batch.
			j := i
			out = out[:0]
			for ; j < n && sameAddr(in[j].Addr, from); j++ {
				out = append(out, ipv4.Message{Buffers: [][]byte{in[j].Buffers[0][:in[j].N]}})
				r.upBytes.Add(int64(in[j].N))
				r.upPackets.Add(1)
			}
			i = j
			f, err := r.flowFor(from)
			if err != nil {
				continue // closed, or out of sockets: the datagrams are lost, as on a network
			}
			writeAll(f.batch, out)
		}
	}
}

// serveFlow sends the target's answers on one flow back to its client.
func (r *Relay) serveFlow(f *flow) {
	in := newBatch()
	out := make([]ipv4.Message, 0, batchLen)
	for {
		n, err := f.batch.ReadBatch(in, 0)
		if err != nil {
			if transient(err) {
				continue
			}
			return
		}
		out = out[:0]
		for _, m := range in[:n] {
			out = append(out, ipv4.Message{Buffers: [][]byte{m.Buffers[0][:m.N]}, Addr: f.client})
			r.downBytes.Add(int64(m.N))
			r.downPackets.Add(1)
		}
		writeAll(r.batch, out)
	}
}

// flowFor returns the client's flow, opening it on its first datagram.
func (r *Relay) flowFor(client *net.UDPAddr) (*flow, error) {
	key := client.AddrPort()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, net.ErrClosed
	}
	if f, ok := r.flows[key]; ok {
		return f, nil
	}
	conn, err := net.DialUDP("udp4", nil, r.target)
	if err != nil {
		return nil, fmt.Errorf("relay: flow for %s: %w", client, err)
	}
	growBuffers(conn)
	f := &flow{client: &net.UDPAddr{IP: client.IP, Port: client.Port}, conn: conn, batch: ipv4.NewPacketConn(conn)}
	r.flows[key] = f
	r.wg.Go(func() { r.serveFlow(f) })
	return f, nil
}

// writeAll sends every message, dropping the rest of the batch on an
// error: a full or refusing peer loses datagrams, and QUIC recovers.
func writeAll(pc *ipv4.PacketConn, ms []ipv4.Message) {
	for len(ms) > 0 {
		n, err := pc.WriteBatch(ms, 0)
		if err != nil || n <= 0 {
			return
		}
		ms = ms[n:]
	}
}

// transient says whether a read error leaves the socket usable: a
// connected UDP socket reports an ICMP port unreachable of an earlier
// send as ECONNREFUSED on the next read.
func transient(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED)
}

func sameAddr(a net.Addr, b *net.UDPAddr) bool {
	u, ok := a.(*net.UDPAddr)
	return ok && u.Port == b.Port && u.IP.Equal(b.IP)
}

func newBatch() []ipv4.Message {
	ms := make([]ipv4.Message, batchLen)
	for i := range ms {
		ms[i].Buffers = [][]byte{make([]byte, maxDatagram)}
	}
	return ms
}

package syncproto

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/semaphore"
)

// Limits bound what clients can make a Server hold, besides the per
// connection bounds of Config (MaxIncomingStreams, receive windows,
// MaxFramePayload, read and write timeouts). Zero fields take the values of
// DefaultLimits.
type Limits struct {
	// MaxConns is how many authenticated connections the server serves
	// at once. An AuthRequest beyond it is refused with CodeUnavailable
	// and a message naming the limit.
	MaxConns int
	// MaxPendingConns is how many connections may wait for their
	// AuthRequest at once (registrations, pings and logins in progress),
	// and MaxPendingConnsPerIP how many of those one address (for IPv6,
	// one /64) may hold.
	// They are separate from MaxConns so that peers without credentials
	// cannot take the slots of clients that have them. One more is closed
	// as soon as its handshake completes, with CodeUnavailable.
	MaxPendingConns      int
	MaxPendingConnsPerIP int
	// AuthTimeout is how long a connection may stay unauthenticated; it
	// is then closed with CodeUnauthenticated. A login still being
	// checked is let finish.
	AuthTimeout time.Duration
	// MaxUploadBytesPerClient bounds the chunk bytes of one client (all
	// its connections together) that the server holds at once: every
	// chunk frame a PutChunks transaction reads is reserved from the
	// client's budget, from before its payload is read until the Handler
	// asks for the next chunk. A frame that does not fit waits up to
	// UploadWait for room, then fails its upload with ErrUnavailable. It
	// is raised to the largest chunk frame if set lower.
	MaxUploadBytesPerClient int64
	// MaxUploadBytes is the same budget for all clients together.
	MaxUploadBytes int64
	// UploadWait is how long a chunk frame waits for budget.
	UploadWait time.Duration
}

// DefaultLimits holds the values used for zero Limits fields.
var DefaultLimits = Limits{
	MaxConns:                1024,
	MaxPendingConns:         128,
	MaxPendingConnsPerIP:    32,
	AuthTimeout:             30 * time.Second,
	MaxUploadBytesPerClient: 64 << 20,
	MaxUploadBytes:          512 << 20,
	UploadWait:              10 * time.Second,
}

func (l Limits) withDefaults(maxFrame int64) Limits {
	d := DefaultLimits
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	if l.MaxPendingConns <= 0 {
		l.MaxPendingConns = d.MaxPendingConns
	}
	if l.MaxPendingConnsPerIP <= 0 {
		l.MaxPendingConnsPerIP = d.MaxPendingConnsPerIP
	}
	l.MaxPendingConnsPerIP = min(l.MaxPendingConnsPerIP, l.MaxPendingConns)
	if l.AuthTimeout <= 0 {
		l.AuthTimeout = d.AuthTimeout
	}
	if l.MaxUploadBytesPerClient <= 0 {
		l.MaxUploadBytesPerClient = d.MaxUploadBytesPerClient
	}
	if l.MaxUploadBytes <= 0 {
		l.MaxUploadBytes = d.MaxUploadBytes
	}
	if l.UploadWait <= 0 {
		l.UploadWait = d.UploadWait
	}
	// A budget smaller than one frame would refuse every upload of a
	// large chunk, whatever else runs.
	l.MaxUploadBytesPerClient = max(l.MaxUploadBytesPerClient, maxFrame)
	l.MaxUploadBytes = max(l.MaxUploadBytes, l.MaxUploadBytesPerClient)
	return l
}

// connGate counts the authenticated connections against Limits.MaxConns.
type connGate struct {
	max    int
	active atomic.Int64
}

// admit takes a slot for a connection, or says why there is none.
func (g *connGate) admit() error {
	if n := g.active.Add(1); n > int64(g.max) {
		g.active.Add(-1)
		return fmt.Errorf("%w: server at its connection limit (%d); retry later", ErrUnavailable, g.max)
	}
	return nil
}

func (g *connGate) release() { g.active.Add(-1) }

// pendingGate counts the connections not yet authenticated, in all and per
// remote address, against Limits.MaxPendingConns and MaxPendingConnsPerIP.
type pendingGate struct {
	max, perIP int

	mu    sync.Mutex
	total int
	byIP  map[netip.Prefix]int
}

func newPendingGate(l Limits) *pendingGate {
	return &pendingGate{max: l.MaxPendingConns, perIP: l.MaxPendingConnsPerIP, byIP: map[netip.Prefix]int{}}
}

// remoteIP is the address block a pending slot is counted under: an IPv4
// address (IPv4-mapped IPv6 ones count as IPv4), or the /64 of an IPv6
// address. One IPv6 host usually has a whole /64 to pick source addresses
// from (privacy addresses), so counting single IPv6 addresses would let
// one host take every pending slot.
func remoteIP(a net.Addr) netip.Prefix {
	if u, ok := a.(*net.UDPAddr); ok {
		if ip, ok := netip.AddrFromSlice(u.IP); ok {
			ip = ip.Unmap()
			bits := 32
			if ip.Is6() {
				bits = 64
			}
			p, _ := ip.WithZone("").Prefix(bits) // valid for its own family
			return p
		}
	}
	return netip.Prefix{}
}

// admit takes a pending slot for a connection from ip, or says why there
// is none.
func (g *pendingGate) admit(ip netip.Prefix) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.total >= g.max {
		return fmt.Errorf("%w: server at its limit of %d connections waiting to authenticate; retry later", ErrUnavailable, g.max)
	}
	if g.byIP[ip] >= g.perIP {
		return fmt.Errorf("%w: %d connections from %s are already waiting to authenticate; retry later", ErrUnavailable, g.perIP, ip)
	}
	g.total++
	g.byIP[ip]++
	return nil
}

func (g *pendingGate) release(ip netip.Prefix) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.total--
	if g.byIP[ip]--; g.byIP[ip] <= 0 {
		delete(g.byIP, ip)
	}
}

// uploadBudget reserves the chunk bytes in flight, per client and in all.
type uploadBudget struct {
	limits Limits
	all    *semaphore.Weighted

	mu      sync.Mutex
	clients map[string]*clientBudget
}

// clientBudget is one client's share; it lives while a transaction of the
// client uses it.
type clientBudget struct {
	sem   *semaphore.Weighted
	users int
	held  atomic.Int64
}

func newUploadBudget(l Limits) *uploadBudget {
	return &uploadBudget{limits: l, all: semaphore.NewWeighted(l.MaxUploadBytes), clients: map[string]*clientBudget{}}
}

// uploadHold is one PutChunks transaction's hold on the budget: at most one
// frame's bytes at a time.
type uploadHold struct {
	b        *uploadBudget
	clientID string
	client   *clientBudget
	held     int64
}

// begin starts a transaction's use of clientID's budget; end must follow.
func (b *uploadBudget) begin(clientID string) *uploadHold {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.clients[clientID]
	if c == nil {
		c = &clientBudget{sem: semaphore.NewWeighted(b.limits.MaxUploadBytesPerClient)}
		b.clients[clientID] = c
	}
	c.users++
	return &uploadHold{b: b, clientID: clientID, client: c}
}

// reserve releases what the previous frame held and waits for n bytes.
func (u *uploadHold) reserve(ctx context.Context, n int64) error {
	u.release()
	if n <= 0 {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, u.b.limits.UploadWait)
	defer cancel()
	if err := u.client.sem.Acquire(wctx, n); err != nil {
		return u.waitFailed(ctx, fmt.Sprintf("client %s has %d bytes of chunks in flight, limit %d",
			u.clientID, u.client.held.Load(), u.b.limits.MaxUploadBytesPerClient))
	}
	if err := u.b.all.Acquire(wctx, n); err != nil {
		u.client.sem.Release(n)
		return u.waitFailed(ctx, fmt.Sprintf("the server holds its limit of %d bytes of chunks in flight", u.b.limits.MaxUploadBytes))
	}
	u.held = n
	u.client.held.Add(n)
	return nil
}

func (u *uploadHold) waitFailed(ctx context.Context, why string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%w: upload limit: %s; no room within %v, retry later", ErrUnavailable, why, u.b.limits.UploadWait)
}

func (u *uploadHold) release() {
	if u.held == 0 {
		return
	}
	u.b.all.Release(u.held)
	u.client.sem.Release(u.held)
	u.client.held.Add(-u.held)
	u.held = 0
}

// end releases what is held and forgets an idle client.
func (u *uploadHold) end() {
	u.release()
	u.b.mu.Lock()
	defer u.b.mu.Unlock()
	if u.client.users--; u.client.users == 0 {
		delete(u.b.clients, u.clientID)
	}
}

// storageErr turns a full disk or an exhausted quota into an answer the
// client can act on (retry later) instead of a bare internal error; the
// original, with the server's paths, stays in the server's log.
func storageErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: the server's storage is full; retry once space is freed", ErrUnavailable)
	}
	return err
}

// peekFrameLen returns the payload length of the next frame without
// consuming it, so its bytes can be reserved before they are read. It
// returns 0 and no error when the header is malformed or over the limit:
// ReadFrame then reports that precisely. io.EOF is the peer's clean end.
func (s *Stream) peekFrameLen(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	_ = s.qs.SetReadDeadline(deadline(ctx, s.readTimeout))
	stop := interruptOnCancel(ctx, s.qs.SetReadDeadline)
	defer stop()
	for k := 1; k <= MaxFrameHeaderLen; k++ {
		b, err := s.fr.r.Peek(k)
		if len(b) < k {
			if errors.Is(err, io.EOF) && len(b) == 0 {
				return 0, io.EOF
			}
			return 0, nil // truncated or failed: ReadFrame says which
		}
		n, ok := parseFrameHeader(b)
		if ok {
			if n > uint64(s.fr.max) {
				return 0, nil
			}
			return int64(n), nil
		}
	}
	return 0, nil
}

// parseFrameHeader reads type and length from the start of b; ok is false
// until b holds both.
func parseFrameHeader(b []byte) (n uint64, ok bool) {
	_, used := binary.Uvarint(b)
	if used <= 0 {
		return 0, false
	}
	n, more := binary.Uvarint(b[used:])
	return n, more > 0
}

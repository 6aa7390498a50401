package harness

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"

	"github.com/quic-s/quics/bench/netns"
	"github.com/quic-s/quics/bench/relay"
)

// place is where a child process runs and listens: this host's loopback
// (end nil) or one end of the WAN link.
type place struct {
	end *netns.End
}

func (p place) command(ctx context.Context, bin string, args ...string) *exec.Cmd {
	if p.end == nil {
		return exec.CommandContext(ctx, bin, args...)
	}
	return p.end.Command(ctx, bin, args...)
}

// addr is the IPv4 address processes here listen on.
func (p place) addr() string {
	if p.end == nil {
		return "127.0.0.1"
	}
	return p.end.Addr
}

// do runs f where sockets it opens belong to this place.
func (p place) do(f func() error) error {
	if p.end == nil {
		return f()
	}
	return p.end.Do(f)
}

// freePort is a port of addr nothing listens on now (network "udp4" or
// "tcp4").
func (p place) freePort(network string) (int, error) {
	port := 0
	err := p.do(func() error {
		host := net.JoinHostPort(p.addr(), "0")
		if network == "tcp4" {
			l, err := net.Listen(network, host)
			if err != nil {
				return err
			}
			port = l.Addr().(*net.TCPAddr).Port
			return l.Close()
		}
		pc, err := net.ListenPacket(network, host)
		if err != nil {
			return err
		}
		port = pc.LocalAddr().(*net.UDPAddr).Port
		return pc.Close()
	})
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	return port, nil
}

func (p place) freeUDPAddr() (string, error) {
	port, err := p.freePort("udp4")
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(p.addr(), strconv.Itoa(port)), nil
}

// dial connects from here.
func (p place) dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := p.do(func() (err error) {
		c, err = (&net.Dialer{}).DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// meter reads the wire counts of some clients so far: the sum of their
// relays, or the WAN link's client end (up is what it sent).
type meter func(context.Context) (relay.Counts, error)

// meter is what counts the traffic of devs: the WAN link when there is
// one (it carries every client's traffic), else their relays; nil when
// nothing does.
func (r *runner) meter(devs ...*device) meter {
	if m := r.link(); m != nil {
		return m
	}
	var relays []*relay.Relay
	for _, d := range devs {
		if d.relay != nil {
			relays = append(relays, d.relay)
		}
	}
	if len(relays) == 0 {
		return nil
	}
	return func(context.Context) (relay.Counts, error) {
		var sum relay.Counts
		for _, rl := range relays {
			c := rl.Counts()
			sum.UpBytes += c.UpBytes
			sum.DownBytes += c.DownBytes
			sum.UpPackets += c.UpPackets
			sum.DownPackets += c.DownPackets
		}
		return sum, nil
	}
}

// link counts everything that crosses the WAN link; nil on loopback.
func (r *runner) link() meter {
	if r.o.WAN == nil {
		return nil
	}
	end := r.o.WAN.Client
	return func(ctx context.Context) (relay.Counts, error) {
		c, err := end.Counters(ctx)
		return relay.Counts{UpBytes: c.TxBytes, DownBytes: c.RxBytes, UpPackets: c.TxPackets, DownPackets: c.RxPackets}, err
	}
}

// wanNotes say how the link was built and what its counters include.
func wanNotes(p *netns.Pair) []string {
	rate := "no rate limit"
	if p.Rate != "" {
		rate = fmt.Sprintf("tc tbf %s each way (burst 64 KiB, 50 ms queue)", p.Rate)
	}
	delay := "no delay or loss added (--wan-delay not set)"
	switch {
	case p.Delay != "":
		delay = fmt.Sprintf("netem delay %s each way (round trip +2×%s), no loss", p.Delay, p.Delay)
	case p.DelayErr != nil:
		delay = fmt.Sprintf("NO delay or loss added: this kernel refused netem (%v)", p.DelayErr)
	}
	return []string{
		fmt.Sprintf("WAN mode: quics servers, the rsync daemon and quic-go's server in network namespace %s (%s), every qic, rsync client and quic-go's client in %s (%s), joined by a veth pair; %s; %s",
			p.Server.NS, p.Server.Addr, p.Client.NS, p.Client.Addr, rate, delay),
		fmt.Sprintf("wire = bytes and frames counted by the client's veth (%s: tx up, rx down), read from /sys/class/net/%s/statistics before and after each step: Ethernet, IPv4 and UDP/TCP headers, handshakes and acknowledgements included, for quics, rsync and quic-go alike; no relay in WAN mode; rsync's own --stats totals are in the JSON (%s, %s)",
			p.Client.Dev, p.Client.Dev, rsyncStatsSent, rsyncStatsReceived),
		"the initial-sync time targets measured on loopback (restic's, Syncthing's) are left out in WAN mode; wall times of processes in a namespace include ip netns exec's start (a few ms)",
	}
}

// udpFrameOverhead is what a UDP datagram over IPv4 adds on the veth:
// an Ethernet header (14 bytes; the counters leave out the FCS), an IPv4
// header without options (20) and a UDP header (8).
const udpFrameOverhead = 14 + 20 + 8

// udpPayload is the UDP payload of what the link counted, when every
// frame was a UDP datagram over IPv4 (true of a quics sync but for the
// odd ARP frame, which this overstates by 42 bytes less than its size).
func udpPayload(c relay.Counts) int64 {
	return max(0, c.UpBytes+c.DownBytes-(c.UpPackets+c.DownPackets)*udpFrameOverhead)
}

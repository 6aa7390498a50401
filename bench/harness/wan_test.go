package harness

import (
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quic-s/quics/bench/netns"
	"github.com/quic-s/quics/bench/relay"
)

// Children started for the link's ends run in those namespaces, listen on
// their addresses, and what crosses between them shows in the link meter.
func TestPlacesOnLink(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if err := netns.Check(); err != nil {
		t.Skipf("cannot build a link here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	link, err := netns.New(ctx, netns.Options{Prefix: "quics-harness-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	r := &runner{o: Options{WAN: link}, server: place{&link.Server}, client: place{&link.Client}}

	// The client's veth exists inside the client place only.
	dev := "/sys/class/net/" + link.Client.Dev + "/operstate"
	res, err := runAt(ctx, r.client, "cat", dev)
	if err != nil || strings.TrimSpace(res.stdout) != "up" {
		t.Fatalf("in the client namespace: %q, %v", res.stdout, err)
	}
	if _, err := runAt(ctx, r.server, "cat", dev); err == nil {
		t.Fatal("the server namespace sees the client's veth")
	}

	addr, err := r.server.freeUDPAddr()
	if err != nil || !strings.HasPrefix(addr, link.Server.Addr+":") {
		t.Fatalf("free server address %q, %v", addr, err)
	}
	port, err := r.server.freePort("tcp4")
	if err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	if err := r.server.do(func() (err error) {
		ln, err = net.Listen("tcp4", net.JoinHostPort(r.server.addr(), strconv.Itoa(port)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			// Read it all: closing with unread data would reset the
			// connection before the client's bytes crossed the link.
			_, _ = io.Copy(io.Discard, c)
			_ = c.Close()
		}
	}()

	m := r.meter()
	before, err := m(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.client.dial(ctx, "tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	payload := make([]byte, 20_000)
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	settle(ctx, 100*time.Millisecond, 2*time.Second, m)
	after, err := m(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if w := after.Sub(before); w.UpBytes < int64(len(payload)) || w.DownBytes == 0 {
		t.Fatalf("link meter counted %+v for a %d-byte write", w, len(payload))
	}
	// UDP datagrams: their payload, less the link's frame headers, is
	// what udpPayload recovers (IPv6 neighbor discovery may add a little).
	var pc net.PacketConn
	if err := r.server.do(func() (err error) {
		pc, err = net.ListenPacket("udp4", net.JoinHostPort(r.server.addr(), "0"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	uc, err := r.client.dial(ctx, "udp4", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	before, err = m(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const datagrams, size = 20, 1200
	for range datagrams {
		if _, err := uc.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	settle(ctx, 100*time.Millisecond, 2*time.Second, m)
	after, err = m(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := udpPayload(after.Sub(before)); got < datagrams*size || got > datagrams*size+512 {
		t.Fatalf("UDP payload of %d datagrams of %d bytes counted as %d (link %+v)", datagrams, size, got, after.Sub(before))
	}
	if notes := wanNotes(link); !strings.Contains(strings.Join(notes, " "), "no delay or loss added") {
		t.Fatalf("notes do not say that no delay was asked: %q", notes)
	}
}

func TestUDPPayload(t *testing.T) {
	for _, c := range []struct {
		counts relay.Counts
		want   int64
	}{
		{relay.Counts{}, 0},
		// Three 1,252-byte QUIC datagrams up, one 92-byte ACK down.
		{relay.Counts{UpBytes: 3 * (1252 + 42), UpPackets: 3, DownBytes: 92 + 42, DownPackets: 1}, 3*1252 + 92},
		// An ARP request is 42 bytes: it adds nothing.
		{relay.Counts{UpBytes: 42, UpPackets: 1}, 0},
		// Counters that make no sense never go negative.
		{relay.Counts{UpBytes: 10, UpPackets: 5}, 0},
	} {
		if got := udpPayload(c.counts); got != c.want {
			t.Errorf("udpPayload(%+v) = %d, want %d", c.counts, got, c.want)
		}
	}
}

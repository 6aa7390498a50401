package relay

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"
)

// echo answers every datagram with "re:" and the datagram, on 127.0.0.1.
func echo(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = conn.WriteToUDP(append([]byte("re:"), buf[:n]...), from)
		}
	}()
	t.Cleanup(func() { _ = conn.Close(); <-done })
	return conn.LocalAddr().String()
}

func dial(t *testing.T, addr string) *net.UDPConn {
	t.Helper()
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, to)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip sends msg and waits for its echo, resending a few times: UDP
// on loopback may still drop under load.
func roundTrip(t *testing.T, c *net.UDPConn, msg []byte) []byte {
	t.Helper()
	buf := make([]byte, maxDatagram)
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer through the relay: %v", err)
	}
	return buf[:n]
}

func TestRelayForwardsAndCounts(t *testing.T) {
	r, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()

	a, b := dial(t, r.Addr()), dial(t, r.Addr())
	var want Counts
	for i := range 20 {
		c, name := a, "a"
		if i%3 == 0 {
			c, name = b, "b"
		}
		msg := bytes.Repeat([]byte(fmt.Sprintf("%s%d-", name, i)), i*50+1)
		got := roundTrip(t, c, msg)
		if !bytes.Equal(got, append([]byte("re:"), msg...)) {
			t.Fatalf("client %s got %q, want the echo of its own %d bytes", name, got[:min(len(got), 20)], len(msg))
		}
		want.UpBytes += int64(len(msg))
		want.DownBytes += int64(len(msg) + 3)
		want.UpPackets++
		want.DownPackets++
	}
	// The counter of the last answer is bumped before it is sent, so the
	// snapshot is complete once the client has it.
	if got := r.Counts(); got != want {
		t.Fatalf("counts %+v, want %+v", got, want)
	}
	if got := r.Counts().Sub(Counts{UpBytes: 1, DownPackets: 2}); got.UpBytes != want.UpBytes-1 || got.DownPackets != want.DownPackets-2 {
		t.Fatalf("Sub: %+v", got)
	}
	if r.Counts().Total() != want.UpBytes+want.DownBytes {
		t.Fatalf("Total %d", r.Counts().Total())
	}
}

func TestRelayLargeDatagram(t *testing.T) {
	r, err := New(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	msg := bytes.Repeat([]byte{0xa5}, 60000)
	got := roundTrip(t, dial(t, r.Addr()), msg)
	if len(got) != len(msg)+3 {
		t.Fatalf("a %d-byte datagram came back as %d bytes", len(msg), len(got))
	}
}

func TestRelayTargetDown(t *testing.T) {
	// A target nobody listens on: datagrams are counted and lost, and
	// the relay keeps serving.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	_ = pc.Close()
	r, err := New(addr)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, r.Addr())
	for range 3 {
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Counts().UpPackets < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("counts %+v after 3 datagrams", r.Counts())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := New("not an address"); err == nil {
		t.Fatal("a bad target was accepted")
	}
}

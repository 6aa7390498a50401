package netns

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const testPrefix = "quics-netns-test"

func newPair(ctx context.Context, t *testing.T, o Options) *Pair {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if err := Check(); err != nil {
		t.Skipf("cannot build a link here: %v", err)
	}
	o.Prefix = testPrefix
	p, err := New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return p
}

func exists(ns string) bool {
	_, err := os.Stat(filepath.Join(runDir, ns))
	return err == nil
}

// A datagram from the client end reaches the server end, and the
// client's counters grow by the datagram and its headers.
func TestDatagramCounted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newPair(ctx, t, Options{})
	for _, e := range []End{p.Server, p.Client} {
		if !exists(e.NS) {
			t.Fatalf("namespace %s missing", e.NS)
		}
	}

	var srv, cli net.PacketConn
	if err := p.Server.Do(func() (err error) { srv, err = net.ListenPacket("udp4", p.Server.Addr+":0"); return }); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := p.Client.Do(func() (err error) { cli, err = net.ListenPacket("udp4", p.Client.Addr+":0"); return }); err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	before, err := p.Client.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const payload = 1000
	msg := make([]byte, payload)
	_, _ = rand.Read(msg)
	if _, err := cli.WriteTo(msg, srv.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	_ = srv.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 2*payload)
	n, from, err := srv.ReadFrom(buf)
	if err != nil {
		t.Fatalf("datagram did not arrive: %v", err)
	}
	if n != payload || string(buf[:n]) != string(msg) {
		t.Fatalf("received %d bytes, not the %d sent", n, payload)
	}
	if got := from.(*net.UDPAddr).IP.String(); got != p.Client.Addr {
		t.Fatalf("datagram came from %s, want the client end %s", got, p.Client.Addr)
	}
	after, err := p.Client.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	d := after.Sub(before)
	// Ethernet 14 + IPv4 20 + UDP 8 on top of the payload.
	if d.TxBytes < payload+42 || d.TxPackets < 1 {
		t.Fatalf("client counters grew by %+v for one %d-byte datagram", d, payload)
	}

}

// A bulk TCP transfer through a 20 Mbit/s link goes through whole, is
// counted, and runs near the limit rather than at loopback speed.
func TestRateLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const rate = 20e6 / 8 // bytes per second
	p := newPair(ctx, t, Options{Rate: "20mbit", Delay: "5ms"})
	if p.Rate != "20mbit" {
		t.Fatalf("Rate %q", p.Rate)
	}
	if (p.Delay == "") == (p.DelayErr == nil) {
		t.Fatalf("Delay %q with DelayErr %v: exactly one must say what happened", p.Delay, p.DelayErr)
	}

	var ln net.Listener
	if err := p.Server.Do(func() (err error) { ln, err = net.Listen("tcp4", p.Server.Addr+":0"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const size = 3 << 20
	received := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			received <- err
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(50 * time.Second))
		n, err := io.Copy(io.Discard, c)
		if err == nil && n != size {
			err = fmt.Errorf("server read %d bytes, want %d", n, size)
		}
		if err == nil {
			_, err = c.Write([]byte{1})
		}
		received <- err
	}()

	before, err := p.Client.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	serverBefore, err := p.Server.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var c net.Conn
	d := net.Dialer{Timeout: 10 * time.Second}
	start := time.Now()
	if err := p.Client.Do(func() (err error) { c, err = d.DialContext(ctx, "tcp4", ln.Addr().String()); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(50 * time.Second))
	data := make([]byte, size)
	_, _ = rand.Read(data)
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	var ack [1]byte
	if _, err := io.ReadFull(c, ack[:]); err != nil {
		t.Fatalf("no acknowledgement: %v", err)
	}
	elapsed := time.Since(start)
	if err := <-received; err != nil {
		t.Fatal(err)
	}
	after, err := p.Client.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	serverAfter, err := p.Server.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	up, down := after.Sub(before), serverAfter.Sub(serverBefore)
	if up.TxBytes < size || down.RxBytes < size {
		t.Fatalf("client sent %d bytes, server received %d, for a %d-byte payload", up.TxBytes, down.RxBytes, size)
	}
	// GSO is capped at one segment: every frame is at most one MTU.
	if up.TxPackets < size/1500 {
		t.Fatalf("%d bytes crossed in %d packets: GSO batches were counted as one", up.TxBytes, up.TxPackets)
	}
	// Loopback moves this in milliseconds; through tbf it cannot beat the
	// rate by much (one 64 KiB burst at most).
	if got := float64(size) / elapsed.Seconds(); got > 2*rate {
		t.Fatalf("%d bytes in %v: %.1f MB/s, over twice the %.1f MB/s limit", size, elapsed, got/1e6, rate/1e6)
	}
	t.Logf("%d bytes in %v (%.2f MB/s at a %.2f MB/s limit); delay: %q, %v", size, elapsed, float64(size)/elapsed.Seconds()/1e6, rate/1e6, p.Delay, p.DelayErr)
}

// Close removes both namespaces, and a second Close is harmless.
func TestClose(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := newPair(ctx, t, Options{Rate: "100mbit"})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, e := range []End{p.Server, p.Client} {
		if exists(e.NS) {
			t.Fatalf("namespace %s still there after Close", e.NS)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := p.Client.Do(func() error { return nil }); err == nil {
		t.Fatal("entered a deleted namespace")
	}
}

// New removes what a killed run with the same prefix left, and leaves a
// live process's namespaces alone.
func TestStaleRemoved(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if err := Check(); err != nil {
		t.Skipf("cannot build a link here: %v", err)
	}
	ip, _ := tool("ip")
	dead := deadPID(t)
	stale := fmt.Sprintf("%s-%d-1-server", testPrefix, dead)
	live := fmt.Sprintf("%s-%d-999-server", testPrefix, os.Getpid())
	for _, ns := range []string{stale, live} {
		if err := command(ctx, ip, "netns", "add", ns); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if exists(ns) {
				_ = command(context.Background(), ip, "netns", "delete", ns)
			}
		})
	}
	p := newPair(ctx, t, Options{})
	if exists(stale) {
		t.Fatalf("stale namespace %s of dead process %d survived New", stale, dead)
	}
	if !exists(live) {
		t.Fatalf("New removed %s of this live process", live)
	}
	if p.Server.NS == live {
		t.Fatal("New reused a name in use")
	}
}

// deadPID is a process ID nothing runs under.
func deadPID(t *testing.T) int {
	for pid := 4_000_000; pid > 1_000_000; pid -= 7919 {
		if !alive(pid) {
			return pid
		}
	}
	t.Fatal("no free process ID found")
	return 0
}

// Check passes exactly when this is root with ip and tc at hand.
func TestCheck(t *testing.T) {
	err := Check()
	if os.Geteuid() != 0 {
		if err == nil || !strings.Contains(err.Error(), "root") {
			t.Fatalf("Check without root: %v", err)
		}
		return
	}
	_, ipErr := tool("ip")
	_, tcErr := tool("tc")
	if (err == nil) != (ipErr == nil && tcErr == nil) {
		t.Fatalf("Check: %v, with ip: %v, tc: %v", err, ipErr, tcErr)
	}
}

package ceiling

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestTransfer(t *testing.T) {
	const n = 3<<20 + 17
	for _, viaRelay := range []bool{false, true} {
		res, err := Transfer(context.Background(), n, viaRelay)
		if err != nil {
			t.Fatalf("via relay %v: %v", viaRelay, err)
		}
		if res.Bytes != n || res.Wall <= 0 {
			t.Fatalf("via relay %v: %+v", viaRelay, res)
		}
		if !viaRelay && res.Wire.Total() != 0 {
			t.Fatalf("a direct transfer reports relay counts %+v", res.Wire)
		}
		// Everything the client wrote crossed the relay, plus QUIC's
		// headers, handshake and (on a loaded machine) retransmissions;
		// the answers are acknowledgements.
		if viaRelay && (res.Wire.UpBytes < n || res.Wire.UpBytes > 2*n || res.Wire.DownBytes == 0 || res.Wire.DownBytes > n/4) {
			t.Fatalf("relay counted %+v for %d bytes", res.Wire, n)
		}
	}
}

func TestTransferCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Transfer(ctx, 1<<20, false); err == nil {
		t.Fatal("a canceled transfer succeeded")
	}
}

// TransferOver moves the bytes between the sockets it is given, and
// leaves them open for their owner.
func TestTransferOver(t *testing.T) {
	const n = 2<<20 + 5
	server, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := TransferOver(ctx, n, server, client)
	if err != nil {
		t.Fatal(err)
	}
	if res.Bytes != n || res.Wall <= 0 || res.Wire.Total() != 0 {
		t.Fatalf("%+v", res)
	}
	// Both sockets still work: a datagram crosses from one to the other.
	if _, err := client.WriteTo([]byte("still open"), server.LocalAddr()); err != nil {
		t.Fatalf("client socket closed: %v", err)
	}
}

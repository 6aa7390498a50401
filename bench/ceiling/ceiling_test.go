package ceiling

import (
	"context"
	"testing"
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

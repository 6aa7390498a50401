package syncproto

import (
	"errors"
	"testing"

	"github.com/quic-go/quic-go"
)

// A peer that leaves normally cancels its open transactions; only a peer
// that resets with a code reports that code. The distinction keeps a
// client that disconnects with streams open from being logged as a
// server fault once per stream.
func TestFromQUICPeerClose(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Code
		// connGone: the error ended the connection, not one transaction.
		connGone bool
	}{
		{"stream reset with code 0", &quic.StreamError{Remote: true, ErrorCode: 0}, CodeCanceled, false},
		{"connection closed with code 0", &quic.ApplicationError{Remote: true, ErrorCode: 0}, CodeCanceled, true},
		{"stream reset with a code", &quic.StreamError{Remote: true, ErrorCode: quic.StreamErrorCode(CodeForbidden)}, CodeForbidden, false},
		{"connection closed with a code", &quic.ApplicationError{Remote: true, ErrorCode: quic.ApplicationErrorCode(CodeUnavailable)}, CodeUnavailable, true},
		{"local stream error stays internal", &quic.StreamError{Remote: false, ErrorCode: 0}, CodeInternal, false},
		{"idle timeout", &quic.IdleTimeoutError{}, CodeTimeout, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fromQUIC(tt.err)
			if c := CodeOf(got); c != tt.want {
				t.Fatalf("CodeOf(fromQUIC(%v)) = %v, want %v", tt.err, c, tt.want)
			}
			if gone := errors.Is(got, ErrConnClosed); gone != tt.connGone {
				t.Errorf("errors.Is(fromQUIC(%v), ErrConnClosed) = %v, want %v", tt.err, gone, tt.connGone)
			}
			if !errors.Is(got, tt.err) {
				t.Errorf("fromQUIC(%v) lost the original error", tt.err)
			}
		})
	}
}

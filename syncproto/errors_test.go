package syncproto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/quic-s/quics/internal/relpath"
)

func TestCodesRoundTrip(t *testing.T) {
	tests := []struct {
		code     Code
		sentinel error
	}{
		{CodeInternal, ErrInternal},
		{CodeBadRequest, ErrBadRequest},
		{CodeFrameTooLarge, ErrFrameTooLarge},
		{CodeUnauthenticated, ErrUnauthenticated},
		{CodeBadPassword, ErrBadPassword},
		{CodeForbidden, ErrForbidden},
		{CodeNotFound, ErrNotFound},
		{CodeExists, ErrExists},
		{CodeInvalidPath, ErrInvalidPath},
		{CodeConflict, ErrConflict},
		{CodeHashMismatch, ErrHashMismatch},
		{CodeMissingChunks, ErrMissingChunks},
		{CodeUnavailable, ErrUnavailable},
		{CodeTimeout, ErrTimeout},
		{CodeUnsupported, ErrUnsupported},
		{CodeCanceled, ErrCanceled},
	}
	if len(tests) != len(codes)-1 {
		t.Fatalf("table covers %d codes, package defines %d", len(tests), len(codes)-1)
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			// Sender: a wrapped sentinel travels as its code, message kept.
			local := fmt.Errorf("%w: root %q", tt.sentinel, "photos")
			if got := CodeOf(local); got != tt.code {
				t.Fatalf("CodeOf(%v) = %v, want %v", local, got, tt.code)
			}
			payload := EncodeErrorFrame(nil, WireError(local))
			// Receiver.
			remote, err := DecodeErrorFrame(payload)
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(remote, tt.sentinel) {
				t.Errorf("decoded %v does not match %v", remote, tt.sentinel)
			}
			if remote.Error() != local.Error() {
				t.Errorf("peer sees %q, sender had %q", remote.Error(), local.Error())
			}
			for _, other := range tests {
				if other.code != tt.code && errors.Is(remote, other.sentinel) {
					t.Errorf("decoded %v also matches %v", remote, other.sentinel)
				}
			}
			if !errors.Is(remote, &Error{Code: tt.code}) {
				t.Error("*Error does not match an *Error of the same code")
			}
			if tt.code.Sentinel() != tt.sentinel {
				t.Error("Sentinel() disagrees with the table")
			}
		})
	}
}

func TestCodeOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Code
	}{
		{"nil", nil, CodeNoError},
		{"unknown", errors.New("open /srv/quics/db/000001.vlog: permission denied"), CodeInternal},
		{"wrapped *Error", fmt.Errorf("handler: %w", Errorf(CodeConflict, "head is %d", 7)), CodeConflict},
		{"relpath", relpath.Check("../x"), CodeInvalidPath},
		{"truncated", ErrTruncated, CodeBadRequest},
		{"context deadline", context.DeadlineExceeded, CodeTimeout},
		{"os deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), CodeTimeout},
		{"canceled", context.Canceled, CodeCanceled},
	}
	for _, tt := range tests {
		if got := CodeOf(tt.err); got != tt.want {
			t.Errorf("%s: CodeOf = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestWireErrorHidesInternals(t *testing.T) {
	secret := errors.New("open /srv/quics/db/000001.vlog: permission denied")
	tests := []struct {
		name string
		err  error
		want Error
	}{
		{"unknown", secret, Error{Code: CodeInternal}},
		{"wrapped unknown", fmt.Errorf("commit: %w", secret), Error{Code: CodeInternal}},
		{"context", fmt.Errorf("%w: %w", context.DeadlineExceeded, secret), Error{Code: CodeTimeout}},
		{"bare sentinel", ErrNotFound, Error{Code: CodeNotFound}},
		{"sentinel with text", fmt.Errorf("%w: root %q", ErrForbidden, "r"), Error{Code: CodeForbidden, Message: `root "r"`}},
		{"explicit", Errorf(CodeExists, "client %s", "c1"), Error{Code: CodeExists, Message: "client c1"}},
		{"relpath", relpath.Check("/etc"), Error{Code: CodeInvalidPath, Message: `"/etc": absolute`}},
	}
	for _, tt := range tests {
		got := WireError(tt.err)
		if *got != tt.want {
			t.Errorf("%s: WireError = %+v, want %+v", tt.name, *got, tt.want)
		}
		if strings.Contains(got.Error(), "/srv/quics") {
			t.Errorf("%s: %q leaks an internal path", tt.name, got)
		}
	}
	if WireError(nil) != nil {
		t.Error("WireError(nil) != nil")
	}
}

func TestEncodeErrorFrameSanitizes(t *testing.T) {
	long := strings.Repeat("é", MaxErrorMessageLen) // 2 bytes each
	e, err := DecodeErrorFrame(EncodeErrorFrame(nil, &Error{Code: CodeBadRequest, Message: long}))
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Message) > MaxErrorMessageLen || !utf8.ValidString(e.Message) || !strings.HasPrefix(long, e.Message) {
		t.Errorf("long message became %d bytes, valid=%v", len(e.Message), utf8.ValidString(e.Message))
	}
	e, err = DecodeErrorFrame(EncodeErrorFrame(nil, &Error{Code: CodeBadRequest, Message: "a\xffb"}))
	if err != nil || e.Message != "a\uFFFDb" {
		t.Errorf("invalid UTF-8 became %q, %v", e.Message, err)
	}
	for _, in := range []*Error{nil, {Code: CodeNoError, Message: "fine"}} {
		e, err = DecodeErrorFrame(EncodeErrorFrame(nil, in))
		if err != nil || e.Code != CodeInternal || e.Message != "" {
			t.Errorf("EncodeErrorFrame(%v) decodes to %+v, %v; want bare internal", in, e, err)
		}
	}
}

func TestDecodeErrorFrameRejects(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
	}{
		{"empty", nil},
		{"code 0", []byte{0x00, 'x'}},
		{"truncated code", []byte{0x80}},
		{"non-minimal code", []byte{0x87, 0x00}},
		{"invalid utf8", []byte{0x07, 0xff}},
		{"message too long", append([]byte{0x07}, bytes.Repeat([]byte("a"), MaxErrorMessageLen+1)...)},
	}
	for _, tt := range tests {
		if e, err := DecodeErrorFrame(tt.payload); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s: DecodeErrorFrame = %v, %v; want ErrBadRequest", tt.name, e, err)
		}
	}
}

func TestUnknownCodeFromNewerPeer(t *testing.T) {
	e, err := DecodeErrorFrame(EncodeErrorFrame(nil, &Error{Code: 900, Message: "new"}))
	if err != nil {
		t.Fatal(err)
	}
	if e.Code != 900 || e.Unwrap() != nil || CodeOf(e) != 900 {
		t.Errorf("unknown code became %+v", e)
	}
	if got := e.Error(); got != "syncproto: code(900): new" {
		t.Errorf("Error() = %q", got)
	}
	for _, s := range []error{ErrInternal, ErrBadRequest, ErrUnsupported} {
		if errors.Is(e, s) {
			t.Errorf("unknown code matches %v", s)
		}
	}
}

func FuzzDecodeErrorFrame(f *testing.F) {
	for c := range Code(len(codes) + 2) {
		f.Add(EncodeErrorFrame(nil, &Error{Code: c, Message: "msg " + c.String()}))
	}
	f.Add(EncodeErrorFrame(nil, &Error{Code: CodeConflict, Message: strings.Repeat("ü", 600)}))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, payload []byte) {
		e, err := DecodeErrorFrame(payload)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not ErrBadRequest", err)
			}
			return
		}
		if e.Code == CodeNoError || len(e.Message) > MaxErrorMessageLen || !utf8.ValidString(e.Message) {
			t.Fatalf("accepted %+v", e)
		}
		if again := EncodeErrorFrame(nil, e); !bytes.Equal(again, payload) {
			t.Fatalf("re-encoding %x gives %x", payload, again)
		}
	})
}

package syncproto

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/quic-go/quic-go"

	"github.com/quic-s/quics/internal/relpath"
)

// Code is a protocol error code. The same numbers are used in error frames,
// as QUIC stream reset codes and as QUIC connection close codes.
type Code uint64

// Error codes. The numbers are part of the protocol: never renumber, only add.
const (
	// CodeNoError closes a connection or stream normally; it never appears
	// in an error frame.
	CodeNoError         Code = 0
	CodeInternal        Code = 1  // the peer failed; details stay in its log
	CodeBadRequest      Code = 2  // malformed frame or message
	CodeFrameTooLarge   Code = 3  // a frame exceeded the receiver's limit
	CodeUnauthenticated Code = 4  // unknown client ID or wrong token
	CodeBadPassword     Code = 5  // wrong server or root password
	CodeForbidden       Code = 6  // the client is not a member of the root
	CodeNotFound        Code = 7  // no such root, file, version or chunk
	CodeExists          Code = 8  // already registered or created
	CodeInvalidPath     Code = 9  // a path fails relpath.Check
	CodeConflict        Code = 10 // the head changed since the client's base
	CodeHashMismatch    Code = 11 // bytes do not hash to the announced ID
	CodeMissingChunks   Code = 12 // a commit names chunks the server lacks
	CodeUnavailable     Code = 13 // overloaded or shutting down; retry later
	CodeTimeout         Code = 14 // a deadline passed
	CodeUnsupported     Code = 15 // unknown frame, message or feature
	CodeCanceled        Code = 16 // the sender gave up on the transaction
)

// Sentinel errors, one per code. An error received from the peer matches
// its code's sentinel with errors.Is, as does a local error that wraps it.
var (
	ErrInternal        = errors.New("syncproto: internal error")
	ErrBadRequest      = errors.New("syncproto: bad request")
	ErrFrameTooLarge   = errors.New("syncproto: frame too large")
	ErrUnauthenticated = errors.New("syncproto: unauthenticated")
	ErrBadPassword     = errors.New("syncproto: bad password")
	ErrForbidden       = errors.New("syncproto: forbidden")
	ErrNotFound        = errors.New("syncproto: not found")
	ErrExists          = errors.New("syncproto: already exists")
	// ErrInvalidPath is relpath.ErrInvalidPath itself, so a path refused by
	// relpath on either side matches it.
	ErrInvalidPath   = relpath.ErrInvalidPath
	ErrConflict      = errors.New("syncproto: conflict: head changed")
	ErrHashMismatch  = errors.New("syncproto: hash mismatch")
	ErrMissingChunks = errors.New("syncproto: missing chunks")
	ErrUnavailable   = errors.New("syncproto: unavailable")
	ErrTimeout       = errors.New("syncproto: timeout")
	ErrUnsupported   = errors.New("syncproto: unsupported")
	ErrCanceled      = errors.New("syncproto: canceled")
)

// ErrTruncated marks a frame or field cut short by the end of the stream or
// payload. It is a kind of ErrBadRequest.
var ErrTruncated = fmt.Errorf("%w: truncated", ErrBadRequest)

// ErrConnClosed marks an error that ended the whole connection (the peer
// closed it, or it went idle), as opposed to an answer about one
// transaction. A client uses it to tell "reconnect" from "this file failed".
var ErrConnClosed = errors.New("syncproto: connection closed")

type codeInfo struct {
	name     string
	sentinel error
}

// codes maps every defined code to its name and sentinel; CodeOf searches
// it in order.
var codes = [...]codeInfo{
	CodeNoError:         {"no error", nil},
	CodeInternal:        {"internal error", ErrInternal},
	CodeBadRequest:      {"bad request", ErrBadRequest},
	CodeFrameTooLarge:   {"frame too large", ErrFrameTooLarge},
	CodeUnauthenticated: {"unauthenticated", ErrUnauthenticated},
	CodeBadPassword:     {"bad password", ErrBadPassword},
	CodeForbidden:       {"forbidden", ErrForbidden},
	CodeNotFound:        {"not found", ErrNotFound},
	CodeExists:          {"already exists", ErrExists},
	CodeInvalidPath:     {"invalid path", ErrInvalidPath},
	CodeConflict:        {"conflict", ErrConflict},
	CodeHashMismatch:    {"hash mismatch", ErrHashMismatch},
	CodeMissingChunks:   {"missing chunks", ErrMissingChunks},
	CodeUnavailable:     {"unavailable", ErrUnavailable},
	CodeTimeout:         {"timeout", ErrTimeout},
	CodeUnsupported:     {"unsupported", ErrUnsupported},
	CodeCanceled:        {"canceled", ErrCanceled},
}

func (c Code) String() string {
	if c < Code(len(codes)) {
		return codes[c].name
	}
	return fmt.Sprintf("code(%d)", uint64(c))
}

// Sentinel returns the sentinel error of c, or nil for CodeNoError and codes
// this version does not know.
func (c Code) Sentinel() error {
	if c < Code(len(codes)) {
		return codes[c].sentinel
	}
	return nil
}

// MaxErrorMessageLen bounds an error frame's message, in bytes.
const MaxErrorMessageLen = 1024

// Error is an error that crosses the wire: a code and a message meant for
// the peer. It matches its code's sentinel with errors.Is. Codes from a newer
// peer that this version does not know are kept, and match no sentinel.
type Error struct {
	Code    Code
	Message string
}

func (e *Error) Error() string {
	prefix := "syncproto: " + e.Code.String()
	if s := e.Code.Sentinel(); s != nil {
		prefix = s.Error()
	}
	if e.Message == "" {
		return prefix
	}
	return prefix + ": " + e.Message
}

// Unwrap returns the code's sentinel.
func (e *Error) Unwrap() error { return e.Code.Sentinel() }

// Is makes an *Error match any *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Errorf returns an *Error whose message the peer will see.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code that err travels as: the code of an *Error in its
// chain, else of the first sentinel it wraps, CodeTimeout or CodeCanceled
// for context and deadline errors, CodeNoError for nil, and CodeInternal for
// everything else.
func CodeOf(err error) Code {
	if err == nil {
		return CodeNoError
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	for c := CodeInternal; c < Code(len(codes)); c++ {
		if errors.Is(err, codes[c].sentinel) {
			return c
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, context.Canceled):
		return CodeCanceled
	}
	return CodeInternal
}

// WireError returns err as the peer will see it. An *Error in the chain is
// sent as is. An error wrapping one of this package's sentinels (or
// relpath.ErrInvalidPath) is sent with its code and its own text minus the
// sentinel's prefix: wrapping a sentinel declares the message fit for the
// peer, so wrap sentinels only around text that may leave the process.
// Anything else becomes a generic message: internal details (file names,
// database errors) are never leaked; log them on this side.
func WireError(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return &Error{Code: e.Code, Message: e.Message}
	}
	code := CodeOf(err)
	sentinel := code.Sentinel()
	if sentinel == nil || !errors.Is(err, sentinel) {
		// Internal, or a context error mapped to Timeout/Canceled.
		return &Error{Code: code}
	}
	msg := err.Error()
	if msg == sentinel.Error() {
		msg = ""
	}
	msg = strings.TrimPrefix(msg, sentinel.Error()+": ")
	return &Error{Code: code, Message: msg}
}

// sanitizeMessage makes msg valid UTF-8 of at most MaxErrorMessageLen bytes,
// cut at a rune boundary.
func sanitizeMessage(msg string) string {
	msg = strings.ToValidUTF8(msg, "\uFFFD")
	if len(msg) <= MaxErrorMessageLen {
		return msg
	}
	cut := MaxErrorMessageLen
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut]
}

// EncodeErrorFrame appends the error frame payload for e to dst: the code
// as a uvarint followed by the message, made valid UTF-8 and cut to
// MaxErrorMessageLen bytes. A nil e or CodeNoError is sent as CodeInternal,
// since an error frame always reports a failure.
func EncodeErrorFrame(dst []byte, e *Error) []byte {
	code, msg := CodeInternal, ""
	if e != nil && e.Code != CodeNoError {
		code, msg = e.Code, e.Message
	}
	dst = binary.AppendUvarint(dst, uint64(code))
	return append(dst, sanitizeMessage(msg)...)
}

// DecodeErrorFrame parses an error frame payload. It refuses code 0, a
// message over MaxErrorMessageLen bytes and invalid UTF-8 (ErrBadRequest).
func DecodeErrorFrame(payload []byte) (*Error, error) {
	code, n, err := uvarint(payload)
	if err != nil {
		return nil, fmt.Errorf("syncproto: error frame code: %w", err)
	}
	if code == uint64(CodeNoError) {
		return nil, fmt.Errorf("%w: error frame with code 0", ErrBadRequest)
	}
	return checkedError(code, payload[n:])
}

// checkedError is an error received from the peer, with DecodeErrorFrame's
// checks on its message.
func checkedError[S string | []byte](code uint64, msg S) (*Error, error) {
	if len(msg) > MaxErrorMessageLen {
		return nil, fmt.Errorf("%w: error message of %d bytes, limit %d", ErrBadRequest, len(msg), MaxErrorMessageLen)
	}
	if !utf8.Valid([]byte(msg)) {
		return nil, fmt.Errorf("%w: error message is not valid UTF-8", ErrBadRequest)
	}
	return &Error{Code: Code(code), Message: string(msg)}, nil
}

// fromQUIC turns a stream reset or connection close from the peer into an
// *Error with the peer's code (joined with the original error), and a
// passed deadline into ErrTimeout, so errors.Is works on the receiving side.
func fromQUIC(err error) error {
	if se, ok := errors.AsType[*quic.StreamError](err); ok && se.Remote && se.ErrorCode != 0 {
		return fmt.Errorf("%w (%w)", &Error{Code: Code(se.ErrorCode), Message: "stream reset by peer"}, err)
	}
	if ae, ok := errors.AsType[*quic.ApplicationError](err); ok && ae.Remote && ae.ErrorCode != 0 {
		msg := sanitizeMessage(ae.ErrorMessage)
		return fmt.Errorf("%w (%w: %w)", &Error{Code: Code(ae.ErrorCode), Message: "connection closed by peer: " + msg}, ErrConnClosed, err)
	}
	// A peer that goes away normally (code 0) while a transaction is open
	// canceled it: that is not a server fault, and logging it as one would
	// let any client flood the log by disconnecting with streams pending.
	if se, ok := errors.AsType[*quic.StreamError](err); ok && se.Remote {
		return fmt.Errorf("%w: stream ended by peer: %w", ErrCanceled, err)
	}
	if ae, ok := errors.AsType[*quic.ApplicationError](err); ok && ae.Remote {
		return fmt.Errorf("%w: %w by peer: %w", ErrCanceled, ErrConnClosed, err)
	}
	if _, ok := errors.AsType[*quic.IdleTimeoutError](err); ok {
		return fmt.Errorf("%w: %w: idle: %w", ErrTimeout, ErrConnClosed, err)
	}
	return err
}

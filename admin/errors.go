package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
)

// Errors that keep their meaning across the API: a handler's error becomes
// a JSON error with a stable code, and the client turns the code back into
// the same sentinel, so errors.Is works on both sides of the wire and for an
// offline call alike.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrBadRequest   = errors.New("bad request")
	ErrNotFound     = errors.New("not found")
	ErrExists       = errors.New("already exists")
	ErrUnavailable  = errors.New("unavailable")
	ErrTooLarge     = errors.New("request too large")
	ErrInternal     = errors.New("internal error")
)

// errorCodes pairs each sentinel with its wire code and HTTP status. The
// codes are part of the API contract (docs/admin-api.md).
var errorCodes = []struct {
	err    error
	code   string
	status int
}{
	{ErrUnauthorized, "unauthorized", http.StatusUnauthorized},
	{ErrBadRequest, "bad_request", http.StatusBadRequest},
	{ErrNotFound, "not_found", http.StatusNotFound},
	{ErrExists, "exists", http.StatusConflict},
	{ErrUnavailable, "unavailable", http.StatusServiceUnavailable},
	{ErrTooLarge, "too_large", http.StatusRequestEntityTooLarge},
	{ErrInternal, "internal", http.StatusInternalServerError},
}

// ErrorBody is the JSON body of every error answer.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a stable machine code and a message for people.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// classify maps an error from the server's packages to the API sentinel
// that says what the caller can do about it.
func classify(err error) error {
	for _, c := range errorCodes {
		if errors.Is(err, c.err) {
			return c.err
		}
	}
	switch {
	case errors.Is(err, manifest.ErrNotFound), errors.Is(err, syncproto.ErrNotFound):
		return ErrNotFound
	case errors.Is(err, manifest.ErrExists), errors.Is(err, syncproto.ErrExists):
		return ErrExists
	case errors.Is(err, manifest.ErrInvalid), errors.Is(err, syncproto.ErrBadRequest), errors.Is(err, syncproto.ErrInvalidPath):
		return ErrBadRequest
	case errors.Is(err, syncproto.ErrUnavailable), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return ErrUnavailable
	}
	return ErrInternal
}

// toDetail is the wire form of err.
func toDetail(err error) (ErrorDetail, int) {
	kind := classify(err)
	for _, c := range errorCodes {
		if c.err == kind {
			return ErrorDetail{Code: c.code, Message: err.Error()}, c.status
		}
	}
	return ErrorDetail{Code: "internal", Message: err.Error()}, http.StatusInternalServerError
}

// fromDetail turns a wire error back into an error that wraps its sentinel.
// An unknown code (a newer server) still reads as an internal error with
// the server's message.
func fromDetail(d ErrorDetail, status int) error {
	for _, c := range errorCodes {
		if c.code == d.Code {
			return &Error{Code: d.Code, Message: d.Message, kind: c.err}
		}
	}
	return &Error{Code: d.Code, Message: fmt.Sprintf("%s (HTTP %d)", d.Message, status), kind: ErrInternal}
}

// Error is an error answer of the API: the server's message, and the code
// that errors.Is matches against the sentinels above.
type Error struct {
	Code    string
	Message string
	kind    error
}

func (e *Error) Error() string { return e.Message }

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool { return target == e.kind }

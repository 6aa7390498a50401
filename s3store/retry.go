package s3store

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
)

// retryPolicy bounds the attempts of one operation. minio-go's own retries
// are off (MaxRetries 1), so an attempt is one HTTP request and the total
// is exactly attempts.
type retryPolicy struct {
	attempts int
	base     time.Duration // wait after the first failure, doubling
	max      time.Duration
}

var defaultRetry = retryPolicy{attempts: 6, base: 100 * time.Millisecond, max: 5 * time.Second}

// wait is the pause before retry number n (from 0): half of the doubled
// delay plus a random share of the other half, so clients that failed
// together do not come back together.
func (p retryPolicy) wait(n int) time.Duration {
	d := p.max
	if n < 30 && p.base<<n < p.max {
		d = p.base << n
	}
	return d/2 + rand.N(d/2+1)
}

// errBodyCut stands for a response body that ended before its
// Content-Length. It must not wrap io.EOF: callers read io.EOF from ReadAt
// as "the pack ends here".
var errBodyCut = errors.New("response body ended early")

// stopError carries an error that must not be retried (a List callback's),
// whatever it looks like.
type stopError struct{ err error }

func (e stopError) Error() string { return e.err.Error() }
func (e stopError) Unwrap() error { return e.err }

// retry runs op until it succeeds, fails permanently, or has been tried
// p.attempts times; op receives the attempt number from 0. It stops waiting
// when ctx ends and then returns ctx's error joined with the last failure.
func (p retryPolicy) retry(ctx context.Context, op func(attempt int) error) error {
	for attempt := 0; ; attempt++ {
		err := op(attempt)
		if err == nil {
			return nil
		}
		if cerr := ctx.Err(); cerr != nil {
			if errors.Is(err, cerr) {
				return err
			}
			return fmt.Errorf("%w (last error: %w)", cerr, err)
		}
		if !transient(err) {
			return err
		}
		if attempt+1 >= p.attempts {
			return fmt.Errorf("gave up after %d attempts: %w", p.attempts, err)
		}
		t := time.NewTimer(p.wait(attempt))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		}
	}
}

// transient reports whether err is worth another attempt: a server error
// or throttling, or a network failure. A 4xx other than 408/429 is the
// request's fault and fails again; so do certificate and DNS-name errors.
func transient(err error) bool {
	if errors.As(err, new(stopError)) {
		return false
	}
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		switch resp.Code {
		case "SlowDown", "SlowDownRead", "SlowDownWrite", "RequestTimeout", "InternalError",
			"ServiceUnavailable", "Throttling", "ThrottlingException", "RequestThrottled",
			"RequestLimitExceeded", "TooManyRequests":
			return true
		}
		switch s := resp.StatusCode; {
		case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests:
			return true
		case s == http.StatusNotImplemented, s == http.StatusHTTPVersionNotSupported:
			return false
		case s >= 500:
			return true
		}
		return false
	}
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalidCert x509.CertificateInvalidError
	var recordErr tls.RecordHeaderError
	if errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr) ||
		errors.As(err, &invalidCert) || errors.As(err, &recordErr) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return !dnsErr.IsNotFound
	}
	switch {
	case errors.Is(err, errBodyCut),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, io.EOF), // a connection closed before any response
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, syscall.EPIPE),
		// Our own context is alive (retry checked), so a deadline here
		// is the transport's: a response header that never came.
		errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var netErr net.Error
	var urlErr *url.Error
	return errors.As(err, &netErr) || errors.As(err, &urlErr)
}

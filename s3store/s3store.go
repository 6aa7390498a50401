package s3store

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"golang.org/x/sync/errgroup"

	"github.com/quic-s/quics/cas"
)

var (
	// ErrCredentials is returned (wrapped) when the server refuses the
	// credentials: unknown access key, wrong secret, expired token, or
	// no permission on the bucket.
	ErrCredentials = errors.New("s3store: credentials refused")
	// ErrNoBucket is returned (wrapped) by Open when the bucket does not
	// exist. quics never creates buckets: where and how is the owner's
	// choice (region, encryption, lifecycle).
	ErrNoBucket = errors.New("s3store: no such bucket")
	// ErrForeignStore is returned (wrapped) by Open when the bucket and
	// prefix already hold the packs of another quics data directory.
	ErrForeignStore = errors.New("s3store: bucket prefix belongs to another quics store")
)

// markerName is the object, under the prefix, that names the store owning
// the prefix. It is not a pack name, so List skips it.
const markerName = "quics-store"

// maxStoreIDLen bounds the marker's content, which Open reads whole.
const maxStoreIDLen = 256

// partConcurrency is how many parts of one multipart upload travel at once.
const partConcurrency = 4

const packContentType = "application/octet-stream"

// Backend keeps packs in an S3 bucket. It implements cas.Backend and is
// safe for concurrent use.
type Backend struct {
	client    *minio.Client
	core      minio.Core
	transport *http.Transport
	counts    *counters

	bucket   string
	prefix   string // "" or ends with "/"
	ep       endpoint
	partSize int64
	retry    retryPolicy
	listPage int // objects per List request; 0 = the server's default (1000)
}

var _ cas.Backend = (*Backend)(nil)

// Open connects to the bucket of cfg, checks that it exists and that the
// credentials work, and claims cfg.Prefix for the store storeID: the
// prefix's marker object is written with storeID if absent, and a marker
// naming another store fails with ErrForeignStore, so two data
// directories cannot interleave packs under one prefix.
func Open(ctx context.Context, cfg Config, storeID string) (*Backend, error) {
	if err := checkBucket(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	prefix, err := cleanPrefix(cfg.Prefix)
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	if prefix != "" {
		prefix += "/"
	}
	ep, err := parseEndpoint(cfg.Endpoint, cfg.Insecure)
	if err != nil {
		return nil, err
	}
	partSize := cfg.PartSize
	switch {
	case partSize == 0:
		partSize = DefaultPartSize
	case partSize < MinPartSize || partSize > maxPartSize:
		return nil, fmt.Errorf("s3store: part size %d: must be between %d (5 MiB) and %d (5 GiB)", partSize, MinPartSize, maxPartSize)
	}
	if err := checkStoreID(storeID); err != nil {
		return nil, err
	}
	if cfg.AccessKey == "" || cfg.SecretKey == "" {
		return nil, fmt.Errorf("s3store: no credentials for %s: set QUICS_S3_ACCESS_KEY and QUICS_S3_SECRET_KEY "+
			"(or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), or the matching flags", ep)
	}

	lookup := minio.BucketLookupAuto
	if ep.isIP() {
		lookup = minio.BucketLookupPath
	}
	b := &Backend{
		transport: newTransport(),
		counts:    &counters{},
		bucket:    cfg.Bucket,
		prefix:    prefix,
		ep:        ep,
		partSize:  partSize,
		retry:     defaultRetry,
	}
	b.client, err = minio.New(ep.host, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken),
		Secure:       ep.secure,
		Transport:    countingTransport{next: b.transport, counts: b.counts},
		Region:       cfg.Region,
		BucketLookup: lookup,
		// One attempt per call: retry owns retrying, so attempts do not
		// multiply and a body that breaks mid-read is retried too.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: client for %s: %w", ep, err)
	}
	b.core = minio.Core{Client: b.client}

	if err := b.checkBucket(ctx); err != nil {
		b.Close()
		return nil, err
	}
	if err := b.claim(ctx, storeID); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

func checkStoreID(id string) error {
	if id == "" || len(id) > maxStoreIDLen || strings.TrimSpace(id) != id {
		return fmt.Errorf("s3store: store ID %q: want 1 to %d bytes without surrounding space", id, maxStoreIDLen)
	}
	for _, r := range id {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("s3store: store ID %q has a control character", id)
		}
	}
	return nil
}

// newTransport bounds each phase of a request, so a dead server costs a
// failed attempt instead of a hung upload. Compression stays off: a
// transparently gunzipped body would not match its Content-Length.
func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   16,
		DisableCompression:    true,
	}
}

// Close releases idle connections. The Backend must not be used after.
func (b *Backend) Close() error {
	b.transport.CloseIdleConnections()
	return nil
}

func (b *Backend) String() string {
	return storeURL(b.bucket, strings.TrimSuffix(b.prefix, "/")) + " (" + b.ep.String() + ")"
}

func (b *Backend) key(num uint64) string { return b.prefix + cas.PackObjectName(num) }

// fail gives err its context, and ErrCredentials when the server refused
// the credentials.
func (b *Backend) fail(op string, err error) error {
	if code := errorCode(err); isCredentialCode(code) {
		return fmt.Errorf("s3store: %s: %w: %s answered %s (check the access key, secret and the bucket's permissions): %w",
			op, ErrCredentials, b.ep, code, err)
	}
	return fmt.Errorf("s3store: %s: %s: %w", b, op, err)
}

func errorCode(err error) string {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code
	}
	return ""
}

func isCredentialCode(code string) bool {
	switch code {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
		"InvalidToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed",
		"XAdminUserNotFound": // Versity Gateway's answer to an unknown access key
		return true
	}
	return false
}

// checkBucket lists one key under the prefix: the answer distinguishes a
// missing bucket from refused credentials on every server (a HEAD has no
// body, so some servers' codes are lost), and it proves the List
// permission the store needs anyway.
func (b *Backend) checkBucket(ctx context.Context) error {
	noOwner := false
	err := b.retry.retry(ctx, func(int) error {
		for obj := range b.client.ListObjectsIter(ctx, b.bucket, minio.ListObjectsOptions{
			Prefix:     b.prefix,
			Recursive:  true,
			MaxKeys:    1,
			FetchOwner: &noOwner,
		}) {
			return obj.Err
		}
		return ctx.Err()
	})
	if errorCode(err) == "NoSuchBucket" {
		return fmt.Errorf("%w: bucket %q at %s; create it first (quics never creates buckets)", ErrNoBucket, b.bucket, b.ep)
	}
	if err != nil {
		return b.fail("check bucket", err)
	}
	return nil
}

// claim makes the prefix's marker name storeID, or fails if it names
// another store.
func (b *Backend) claim(ctx context.Context, storeID string) error {
	key := b.prefix + markerName
	owner, found, err := b.readMarker(ctx, key)
	if err != nil {
		return b.fail("read store marker", err)
	}
	if !found {
		// If-None-Match makes the claim atomic where the server supports
		// it: of two stores opening at once, one wins and the other reads
		// the winner's marker below.
		data := []byte(storeID)
		opts := minio.PutObjectOptions{ContentType: "text/plain"}
		opts.SetMatchETagExcept("*")
		err := b.putSmall(ctx, key, data, opts)
		switch errorCode(err) {
		case "PreconditionFailed":
			err = nil
		case "NotImplemented":
			err = b.putSmall(ctx, key, data, minio.PutObjectOptions{ContentType: "text/plain"})
		}
		if err != nil {
			return b.fail("write store marker", err)
		}
		if owner, found, err = b.readMarker(ctx, key); err != nil {
			return b.fail("read store marker", err)
		}
		if !found {
			return fmt.Errorf("s3store: %s: the store marker %s is missing right after it was written", b, key)
		}
	}
	if owner != storeID {
		return fmt.Errorf("%w: %s is used by quics store %q, not by this one (%q); "+
			"give this data directory its own prefix, or, if that store is gone for good, delete the object %q",
			ErrForeignStore, b, owner, storeID, key)
	}
	return nil
}

func (b *Backend) readMarker(ctx context.Context, key string) (owner string, found bool, err error) {
	err = b.retry.retry(ctx, func(int) error {
		body, _, _, err := b.core.GetObject(ctx, b.bucket, key, minio.GetObjectOptions{})
		if errorCode(err) == "NoSuchKey" {
			found = false
			return nil
		}
		if err != nil {
			return err
		}
		defer body.Close()
		data, err := io.ReadAll(io.LimitReader(body, maxStoreIDLen+64))
		if err != nil {
			return bodyErr(err)
		}
		owner, found = strings.TrimSpace(string(data)), true
		return nil
	})
	return owner, found, err
}

func (b *Backend) putSmall(ctx context.Context, key string, data []byte, opts minio.PutObjectOptions) error {
	sum := md5.Sum(data)
	return b.retry.retry(ctx, func(int) error {
		_, err := b.core.PutObject(ctx, b.bucket, key, bytes.NewReader(data), int64(len(data)),
			base64.StdEncoding.EncodeToString(sum[:]), "", opts)
		return err
	})
}

// Put uploads pack num: one PUT up to the part size, a multipart upload
// above it. Every part carries its MD5, so the server refuses bytes
// damaged on the way; the stored size is checked before Put returns.
func (b *Backend) Put(ctx context.Context, num uint64, r io.ReaderAt, size int64) error {
	op := fmt.Sprintf("put pack %d", num)
	if size < 0 {
		return fmt.Errorf("s3store: %s: %s: negative size %d", b, op, size)
	}
	key := b.key(num)
	var err error
	if ps := partSizeFor(b.partSize, size); size <= ps {
		err = b.putOnce(ctx, key, r, size)
	} else {
		err = b.putMultipart(ctx, key, r, size, ps)
	}
	if err != nil {
		return b.fail(op, err)
	}
	stored, err := b.stat(ctx, key)
	if err != nil {
		return b.fail(op+": check", err)
	}
	if stored != size {
		return fmt.Errorf("s3store: %s: %s: the server holds %d bytes, %d were sent", b, op, stored, size)
	}
	return nil
}

func (b *Backend) putOnce(ctx context.Context, key string, r io.ReaderAt, size int64) error {
	sum, err := md5Of(r, 0, size)
	if err != nil {
		return err
	}
	return b.retry.retry(ctx, func(int) error {
		// A fresh SectionReader per attempt: a failed attempt may have
		// consumed part of the previous one.
		_, err := b.core.PutObject(ctx, b.bucket, key, io.NewSectionReader(r, 0, size), size, sum, "",
			minio.PutObjectOptions{ContentType: packContentType})
		return err
	})
}

func (b *Backend) putMultipart(ctx context.Context, key string, r io.ReaderAt, size, partSize int64) error {
	var uploadID string
	err := b.retry.retry(ctx, func(int) error {
		var err error
		uploadID, err = b.core.NewMultipartUpload(ctx, b.bucket, key, minio.PutObjectOptions{ContentType: packContentType})
		return err
	})
	if err != nil {
		return fmt.Errorf("start multipart upload: %w", err)
	}

	parts := make([]minio.CompletePart, (size+partSize-1)/partSize)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(partConcurrency)
	for i := range parts {
		off := int64(i) * partSize
		n := min(partSize, size-off)
		g.Go(func() error {
			sum, err := md5Of(r, off, n)
			if err != nil {
				return err
			}
			// Each part retries on its own, so one lost part costs one part.
			err = b.retry.retry(gctx, func(int) error {
				p, err := b.core.PutObjectPart(gctx, b.bucket, key, uploadID, i+1, io.NewSectionReader(r, off, n), n,
					minio.PutObjectPartOptions{Md5Base64: sum})
				parts[i] = minio.CompletePart{PartNumber: i + 1, ETag: p.ETag}
				return err
			})
			if err != nil {
				return fmt.Errorf("part %d: %w", i+1, err)
			}
			return nil
		})
	}
	err = g.Wait()
	if err == nil {
		err = b.retry.retry(ctx, func(attempt int) error {
			_, err := b.core.CompleteMultipartUpload(ctx, b.bucket, key, uploadID, parts, minio.PutObjectOptions{})
			if attempt > 0 && errorCode(err) == "NoSuchUpload" {
				// An earlier attempt completed it and its answer was
				// lost; Put's size check confirms the object.
				return nil
			}
			return err
		})
		if err == nil {
			return nil
		}
		err = fmt.Errorf("complete multipart upload: %w", err)
	}
	// Abort even when ctx ended: parts of an unfinished upload are billed
	// until someone aborts it.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if aerr := b.retry.retry(actx, func(int) error {
		return b.core.AbortMultipartUpload(actx, b.bucket, key, uploadID)
	}); aerr != nil && errorCode(aerr) != "NoSuchUpload" {
		return errors.Join(err, fmt.Errorf("abort upload %s (its parts stay until a lifecycle rule removes them): %w", uploadID, aerr))
	}
	return err
}

func md5Of(r io.ReaderAt, off, n int64) (string, error) {
	h := md5.New()
	got, err := io.Copy(h, io.NewSectionReader(r, off, n))
	if err != nil {
		return "", fmt.Errorf("read local pack: %w", err)
	}
	if got != n {
		// Found here, not as a request whose body is shorter than its
		// Content-Length, which would look like a network failure.
		return "", fmt.Errorf("local pack has %d bytes at %d, want %d", got, off, n)
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// ReadAt reads len(p) bytes of pack num from off with one ranged GET. When
// the body breaks mid-read, the next attempt asks only for what is still
// missing.
func (b *Backend) ReadAt(ctx context.Context, num uint64, p []byte, off int64) (int, error) {
	op := fmt.Sprintf("read pack %d at %d", num, off)
	if off < 0 {
		return 0, fmt.Errorf("s3store: %s: %s: negative offset", b, op)
	}
	if len(p) == 0 {
		// Nothing to read, but a missing pack must still say so.
		_, err := b.Stat(ctx, num)
		return 0, err
	}
	key := b.key(num)
	n := 0
	end := false
	err := b.retry.retry(ctx, func(int) error {
		m, short, err := b.readRange(ctx, key, p[n:], off+int64(n))
		n += m
		end = short
		return err
	})
	switch {
	case errorCode(err) == "NoSuchKey":
		return n, fmt.Errorf("%w: %d in %s", cas.ErrNoObject, num, b)
	case err != nil:
		return n, b.fail(op, err)
	case end:
		return n, io.EOF
	}
	return n, nil
}

// readRange fills p from off. short reports that the object ended before
// p was full; an error means the attempt failed after n bytes.
func (b *Backend) readRange(ctx context.Context, key string, p []byte, off int64) (n int, short bool, err error) {
	var opts minio.GetObjectOptions
	if err := opts.SetRange(off, off+int64(len(p))-1); err != nil {
		return 0, false, err
	}
	body, info, header, err := b.core.GetObject(ctx, b.bucket, key, opts)
	if errorCode(err) == "InvalidRange" {
		return 0, true, nil // off is at or past the end
	}
	if err != nil {
		return 0, false, err
	}
	defer body.Close()

	// Content-Range says which bytes came. A server that ignores Range
	// sends the whole object: skip to off.
	start, length := int64(0), info.Size
	if length < 0 {
		length = math.MaxInt64 // no Content-Length: read until the body ends
	}
	if cr := header.Get("Content-Range"); cr != "" {
		if start, length, err = parseContentRange(cr); err != nil {
			return 0, false, err
		}
	}
	if start > off {
		return 0, false, fmt.Errorf("asked for bytes from %d, the server sent from %d", off, start)
	}
	if skip := off - start; skip > 0 {
		if skip >= length {
			return 0, true, nil
		}
		if _, err := io.CopyN(io.Discard, body, skip); err != nil {
			return 0, false, bodyErr(err)
		}
		length -= skip
	}
	want := int64(len(p))
	if length < want {
		want, short = length, true
	}
	n, err = io.ReadFull(body, p[:want])
	if err != nil {
		return n, false, bodyErr(err)
	}
	return n, short, nil
}

// bodyErr keeps a body's premature end from reading as the end of a pack.
func bodyErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errBodyCut
	}
	return err
}

// parseContentRange reads "bytes START-END/TOTAL" (TOTAL may be "*").
func parseContentRange(s string) (start, length int64, err error) {
	spec, ok := strings.CutPrefix(s, "bytes ")
	if ok {
		spec, _, ok = strings.Cut(spec, "/")
	}
	var from, to string
	if ok {
		from, to, ok = strings.Cut(spec, "-")
	}
	if ok {
		start, err = strconv.ParseInt(from, 10, 64)
		if err == nil {
			var last int64
			last, err = strconv.ParseInt(to, 10, 64)
			length = last - start + 1
		}
	}
	if !ok || err != nil || start < 0 || length < 1 {
		return 0, 0, fmt.Errorf("bad Content-Range %q", s)
	}
	return start, length, nil
}

// List lists the prefix, one request per page; after a failure it resumes
// after the last key it saw.
func (b *Backend) List(ctx context.Context, fn func(num uint64, size int64) error) error {
	after := ""
	noOwner := false
	err := b.retry.retry(ctx, func(int) error {
		objects := b.client.ListObjectsIter(ctx, b.bucket, minio.ListObjectsOptions{
			Prefix:     b.prefix,
			Recursive:  true,
			StartAfter: after,
			MaxKeys:    b.listPage,
			FetchOwner: &noOwner,
		})
		for obj := range objects {
			if obj.Err != nil {
				return obj.Err
			}
			after = obj.Key
			num, ok := cas.ParsePackObjectName(strings.TrimPrefix(obj.Key, b.prefix))
			if !ok {
				continue
			}
			if err := fn(num, obj.Size); err != nil {
				return stopError{err}
			}
		}
		// The iterator ends quietly when ctx does: that is no full listing.
		return ctx.Err()
	})
	var stop stopError
	if errors.As(err, &stop) {
		return stop.err
	}
	if err != nil {
		return b.fail("list", err)
	}
	return nil
}

// Stat returns the size of pack num with a HEAD request.
func (b *Backend) Stat(ctx context.Context, num uint64) (int64, error) {
	size, err := b.stat(ctx, b.key(num))
	if errorCode(err) == "NoSuchKey" {
		return 0, fmt.Errorf("%w: %d in %s", cas.ErrNoObject, num, b)
	}
	if err != nil {
		return 0, b.fail(fmt.Sprintf("stat pack %d", num), err)
	}
	return size, nil
}

func (b *Backend) stat(ctx context.Context, key string) (int64, error) {
	var size int64
	err := b.retry.retry(ctx, func(int) error {
		info, err := b.client.StatObject(ctx, b.bucket, key, minio.StatObjectOptions{})
		size = info.Size
		return err
	})
	return size, err
}

// Delete removes pack num; S3 answers a delete of a missing key with
// success, and a NoSuchKey from a stricter server counts as done too.
func (b *Backend) Delete(ctx context.Context, num uint64) error {
	key := b.key(num)
	err := b.retry.retry(ctx, func(int) error {
		return b.client.RemoveObject(ctx, b.bucket, key, minio.RemoveObjectOptions{})
	})
	if err != nil && errorCode(err) != "NoSuchKey" {
		return b.fail(fmt.Sprintf("delete pack %d", num), err)
	}
	return nil
}

// RequestCounts counts the HTTP requests a Backend sent, retries included,
// by kind: what S3 providers bill. Put counts PUTs and POSTs (so each part
// of a multipart upload, plus its start and completion), List counts
// listing pages, Other anything else (such as a bucket-region lookup).
type RequestCounts struct {
	Put, Get, List, Head, Delete, Other int64
}

// Total is the number of requests of every kind.
func (c RequestCounts) Total() int64 {
	return c.Put + c.Get + c.List + c.Head + c.Delete + c.Other
}

// Requests returns the requests sent so far.
func (b *Backend) Requests() RequestCounts {
	return RequestCounts{
		Put:    b.counts.put.Load(),
		Get:    b.counts.get.Load(),
		List:   b.counts.list.Load(),
		Head:   b.counts.head.Load(),
		Delete: b.counts.del.Load(),
		Other:  b.counts.other.Load(),
	}
}

type counters struct {
	put, get, list, head, del, other atomic.Int64
}

// countingTransport counts at the HTTP layer, so requests minio-go makes
// on its own (listing pages, region lookups) are counted too.
type countingTransport struct {
	next   http.RoundTripper
	counts *counters
}

func (t countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c := t.counts
	switch r.Method {
	case http.MethodPut, http.MethodPost:
		c.put.Add(1)
	case http.MethodHead:
		c.head.Add(1)
	case http.MethodDelete:
		c.del.Add(1)
	case http.MethodGet:
		q := r.URL.Query()
		switch {
		case q.Has("location"):
			c.other.Add(1)
		case q.Has("list-type"), q.Has("prefix"), q.Has("delimiter"), q.Has("marker"):
			c.list.Add(1)
		default:
			c.get.Add(1)
		}
	default:
		c.other.Add(1)
	}
	return t.next.RoundTrip(r)
}

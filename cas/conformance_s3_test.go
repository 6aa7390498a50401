package cas_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/s3test"
	"github.com/quic-s/quics/s3store"
)

// TestConformanceS3 runs the suite with sealed packs in a real
// S3-compatible server (Versity Gateway on 127.0.0.1), one prefix per
// store. Small parts make every pack above 5 MiB a multipart upload.
func TestConformanceS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.NewBucket(t, "conformance")
	var n atomic.Int64
	runBackendConformance(t, func(t *testing.T) cas.Backend {
		prefix := fmt.Sprintf("store-%d", n.Add(1))
		b, err := s3store.Open(context.Background(), s3store.Config{
			Bucket: "conformance", Prefix: prefix, Endpoint: srv.Endpoint, Region: srv.Region,
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		}, "conformance-"+prefix)
		if err != nil {
			t.Fatalf("open S3 backend: %v\nversitygw:\n%s", err, srv.Logs())
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	})
}

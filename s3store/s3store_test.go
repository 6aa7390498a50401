package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/s3test"
)

// s3Config points a Config at a test server.
func s3Config(s *s3test.Server, bucket, prefix string) Config {
	return Config{
		Bucket:    bucket,
		Prefix:    prefix,
		Endpoint:  s.Endpoint,
		Region:    s.Region,
		AccessKey: s.AccessKey,
		SecretKey: s.SecretKey,
	}
}

func openBackend(t testing.TB, cfg Config, storeID string) *Backend {
	t.Helper()
	b, err := Open(context.Background(), cfg, storeID)
	if err != nil {
		t.Fatalf("Open(%s/%s): %v", cfg.Bucket, cfg.Prefix, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// randomBytes is deterministic per seed, so a failure reproduces.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16)}))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func listAll(t *testing.T, b cas.Backend) map[uint64]int64 {
	t.Helper()
	got := map[uint64]int64{}
	err := b.List(context.Background(), func(num uint64, size int64) error {
		if _, dup := got[num]; dup {
			t.Errorf("List reported pack %d twice", num)
		}
		got[num] = size
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return got
}

func sameSizes(got map[uint64]int64, want map[uint64][]byte) bool {
	if len(got) != len(want) {
		return false
	}
	for num, data := range want {
		if size, ok := got[num]; !ok || size != int64(len(data)) {
			return false
		}
	}
	return true
}

// testContract checks the cas.Backend contract. It runs against
// cas.DirBackend too, which keeps the suite honest about what the contract
// says.
func testContract(t *testing.T, b cas.Backend) {
	ctx := context.Background()

	if got := listAll(t, b); len(got) != 0 {
		t.Fatalf("a new backend lists %v", got)
	}
	if _, err := b.Stat(ctx, 7); !errors.Is(err, cas.ErrNoObject) {
		t.Errorf("Stat of a missing pack: %v, want ErrNoObject", err)
	}
	if _, err := b.ReadAt(ctx, 7, make([]byte, 10), 0); !errors.Is(err, cas.ErrNoObject) {
		t.Errorf("ReadAt of a missing pack: %v, want ErrNoObject", err)
	}
	if _, err := b.ReadAt(ctx, 7, nil, 0); !errors.Is(err, cas.ErrNoObject) {
		t.Errorf("empty ReadAt of a missing pack: %v, want ErrNoObject", err)
	}
	if err := b.Delete(ctx, 7); err != nil {
		t.Errorf("Delete of a missing pack: %v", err)
	}

	packs := map[uint64][]byte{
		1:           randomBytes(100_000, 1),
		0x1ff:       randomBytes(3000, 2),
		1<<40 + 5:   randomBytes(1, 3),
		9:           {},
		^uint64(0):  randomBytes(17, 4),
		0x12345678:  randomBytes(64<<10, 5),
		0xabcdef012: randomBytes(2, 6),
	}
	for num, data := range packs {
		if err := b.Put(ctx, num, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatalf("Put(%d): %v", num, err)
		}
	}
	if got := listAll(t, b); !sameSizes(got, packs) {
		t.Errorf("List = %v, want the sizes of %d packs", got, len(packs))
	}
	for num, data := range packs {
		if size, err := b.Stat(ctx, num); err != nil || size != int64(len(data)) {
			t.Errorf("Stat(%d) = %d, %v; want %d", num, size, err, len(data))
		}
	}

	p1 := packs[1]
	read := func(num uint64, n int, off int64) ([]byte, error) {
		t.Helper()
		buf := make([]byte, n)
		got, err := b.ReadAt(ctx, num, buf, off)
		return buf[:got], err
	}
	if got, err := read(1, len(p1), 0); (err != nil && err != io.EOF) || !bytes.Equal(got, p1) {
		t.Errorf("whole pack: %d bytes, %v", len(got), err)
	}
	if got, err := read(1, 5000, 40_000); err != nil || !bytes.Equal(got, p1[40_000:45_000]) {
		t.Errorf("middle range: %d bytes, %v", len(got), err)
	}
	if got, err := read(1, 300, int64(len(p1)-100)); !isShortRead(err) || !bytes.Equal(got, p1[len(p1)-100:]) {
		t.Errorf("range across the end: %d bytes, %v; want 100 bytes and EOF", len(got), err)
	}
	if got, err := read(1, 10, int64(len(p1))); !isShortRead(err) || len(got) != 0 {
		t.Errorf("read at the end: %d bytes, %v; want 0 and EOF", len(got), err)
	}
	if got, err := read(1, 10, int64(len(p1))+1000); !isShortRead(err) || len(got) != 0 {
		t.Errorf("read past the end: %d bytes, %v; want 0 and EOF", len(got), err)
	}
	if got, err := read(1, 0, 5); err != nil || len(got) != 0 {
		t.Errorf("empty read: %d bytes, %v", len(got), err)
	}
	if got, err := read(9, 10, 0); !isShortRead(err) || len(got) != 0 {
		t.Errorf("read of an empty pack: %d bytes, %v; want 0 and EOF", len(got), err)
	}
	if _, err := b.ReadAt(ctx, 1, make([]byte, 1), -1); err == nil || isShortRead(err) {
		t.Errorf("negative offset: %v, want an error other than EOF", err)
	}

	// A retried upload overwrites; the new bytes are what reads see.
	replaced := randomBytes(len(p1)+10, 7)
	if err := b.Put(ctx, 1, bytes.NewReader(replaced), int64(len(replaced))); err != nil {
		t.Fatalf("overwrite: %v", err)
	}
	if got, err := read(1, len(replaced), 0); (err != nil && err != io.EOF) || !bytes.Equal(got, replaced) {
		t.Errorf("after overwrite: %d bytes, %v", len(got), err)
	}
	packs[1] = replaced

	for i := 0; i < 2; i++ {
		if err := b.Delete(ctx, 0x1ff); err != nil {
			t.Errorf("Delete #%d: %v", i+1, err)
		}
	}
	delete(packs, 0x1ff)
	if _, err := b.Stat(ctx, 0x1ff); !errors.Is(err, cas.ErrNoObject) {
		t.Errorf("Stat after Delete: %v, want ErrNoObject", err)
	}
	if _, err := read(0x1ff, 10, 0); !errors.Is(err, cas.ErrNoObject) {
		t.Errorf("ReadAt after Delete: %v, want ErrNoObject", err)
	}
	if got := listAll(t, b); !sameSizes(got, packs) {
		t.Errorf("List after Delete = %v", got)
	}

	stop := errors.New("enough")
	calls := 0
	err := b.List(ctx, func(uint64, int64) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with a failing callback: %v after %d calls; want the callback's error after 1", err, calls)
	}
	if b.String() == "" {
		t.Error("String is empty")
	}
}

// isShortRead accepts both answers the contract allows for a pack that
// ends before the buffer is full.
func isShortRead(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }

func TestDirBackendContract(t *testing.T) {
	testContract(t, cas.DirBackend{Dir: t.TempDir()})
}

func TestS3BackendContract(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "contract")
	t.Run("prefix", func(t *testing.T) {
		b := openBackend(t, s3Config(s, "contract", "team/store-1"), "store-1")
		if want := "s3://contract/team/store-1 (" + s.Endpoint + ")"; b.String() != want {
			t.Errorf("String() = %q, want %q", b.String(), want)
		}
		testContract(t, b)
	})
	t.Run("bucket root", func(t *testing.T) {
		s.NewBucket(t, "rootstore")
		b := openBackend(t, s3Config(s, "rootstore", ""), "store-2")
		if want := "s3://rootstore (" + s.Endpoint + ")"; b.String() != want {
			t.Errorf("String() = %q, want %q", b.String(), want)
		}
		testContract(t, b)
	})
}

func TestS3ListSkipsOtherObjects(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "mixed")
	raw := s.Client(t)
	ctx := context.Background()
	for _, key := range []string{
		"store/notes.txt",
		"store/ab/zz.pack",
		"store/01/1.pack",
		"store/nested/01/0000000000000001.pack", // another store's pack, one level down
		"store-other/02/0000000000000002.pack",  // a sibling prefix that shares our prefix's letters
		"elsewhere/03/0000000000000003.pack",
		"04/0000000000000004.pack", // a bucket-root store
	} {
		if _, err := raw.PutObject(ctx, "mixed", key, strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	b := openBackend(t, s3Config(s, "mixed", "store/"), "mine")
	if err := b.Put(ctx, 5, bytes.NewReader([]byte("pack")), 4); err != nil {
		t.Fatal(err)
	}
	if got := listAll(t, b); len(got) != 1 || got[5] != 4 {
		t.Errorf("List = %v, want only pack 5 (4 bytes)", got)
	}
	root := openBackend(t, s3Config(s, "mixed", ""), "root")
	if got := listAll(t, root); len(got) != 1 || got[4] != 1 {
		t.Errorf("bucket-root List = %v, want only pack 4", got)
	}
}

func TestS3RequestCounts(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "costs")
	b := openBackend(t, s3Config(s, "costs", "p"), "counted")
	ctx := context.Background()

	step := func(name string, want RequestCounts, op func() error) {
		t.Helper()
		before := b.Requests()
		if err := op(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		after := b.Requests()
		got := RequestCounts{
			Put: after.Put - before.Put, Get: after.Get - before.Get, List: after.List - before.List,
			Head: after.Head - before.Head, Delete: after.Delete - before.Delete, Other: after.Other - before.Other,
		}
		if got != want {
			t.Errorf("%s: requests %+v, want %+v", name, got, want)
		}
	}
	data := randomBytes(10_000, 9)
	step("put", RequestCounts{Put: 1, Head: 1}, func() error { return b.Put(ctx, 1, bytes.NewReader(data), int64(len(data))) })
	step("read", RequestCounts{Get: 1}, func() error { _, err := b.ReadAt(ctx, 1, make([]byte, 100), 50); return err })
	step("stat", RequestCounts{Head: 1}, func() error { _, err := b.Stat(ctx, 1); return err })
	step("list", RequestCounts{List: 1}, func() error { return b.List(ctx, func(uint64, int64) error { return nil }) })
	step("delete", RequestCounts{Delete: 1}, func() error { return b.Delete(ctx, 1) })
	if total := b.Requests().Total(); total < 6 {
		t.Errorf("Total() = %d after at least 6 requests", total)
	}
}

func TestS3Multipart(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "big")
	cfg := s3Config(s, "big", "mp")
	cfg.PartSize = MinPartSize
	b := openBackend(t, cfg, "multipart")
	ctx := context.Background()

	data := randomBytes(12<<20, 10)
	before := b.Requests()
	if err := b.Put(ctx, 77, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put: %v", err)
	}
	after := b.Requests()
	// start + 3 parts (5, 5, 2 MiB) + complete, then the size check.
	if puts, heads := after.Put-before.Put, after.Head-before.Head; puts != 5 || heads != 1 {
		t.Errorf("multipart put sent %d PUT/POST and %d HEAD, want 5 and 1", puts, heads)
	}
	if size, err := b.Stat(ctx, 77); err != nil || size != int64(len(data)) {
		t.Fatalf("Stat = %d, %v; want %d", size, err, len(data))
	}
	got := make([]byte, len(data))
	if n, err := b.ReadAt(ctx, 77, got, 0); n != len(data) || (err != nil && err != io.EOF) || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v; equal=%v", n, err, bytes.Equal(got, data))
	}
	// A range across the first part boundary.
	boundary := int64(MinPartSize)
	got = got[:64]
	if n, err := b.ReadAt(ctx, 77, got, boundary-32); n != 64 || err != nil || !bytes.Equal(got, data[boundary-32:boundary+32]) {
		t.Errorf("read across a part boundary: %d, %v", n, err)
	}
	// The raw object is the pack: nothing about parts leaks into it.
	info, err := s.Client(t).StatObject(ctx, "big", "mp/"+cas.PackObjectName(77), minio.StatObjectOptions{})
	if err != nil || info.Size != int64(len(data)) {
		t.Errorf("raw object: %d bytes, %v", info.Size, err)
	}
}

func TestOpenWrongCredentials(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "guarded")
	cases := map[string]func(*Config){
		"wrong secret":     func(c *Config) { c.SecretKey = "wrong-" + c.SecretKey },
		"unknown key":      func(c *Config) { c.AccessKey = "NOSUCHKEY" },
		"bad session data": func(c *Config) { c.SessionToken = "not-a-token" },
	}
	for name, spoil := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := s3Config(s, "guarded", "p")
			spoil(&cfg)
			p := s3test.NewProxy(t, s.Addr, nil)
			cfg.Endpoint = p.Endpoint
			_, err := Open(context.Background(), cfg, "id")
			if !errors.Is(err, ErrCredentials) {
				t.Fatalf("Open: %v, want ErrCredentials", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, p.Endpoint) {
				t.Errorf("error %q does not name the endpoint %s", msg, p.Endpoint)
			}
			if strings.Contains(msg, s.SecretKey) {
				t.Errorf("error %q contains the secret", msg)
			}
			// A refusal is an answer, not a transient failure.
			if n := p.Conns(); n != 1 {
				t.Errorf("Open sent %d requests, want 1 (no retries of a 403)", n)
			}
		})
	}
}

func TestOpenMissingBucket(t *testing.T) {
	s := s3test.Start(t)
	_, err := Open(context.Background(), s3Config(s, "nowhere", "p"), "id")
	if !errors.Is(err, ErrNoBucket) {
		t.Fatalf("Open: %v, want ErrNoBucket", err)
	}
	for _, want := range []string{`"nowhere"`, s.Endpoint, "create it"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}

func TestOpenClaimsThePrefix(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "shared")
	ctx := context.Background()

	a := openBackend(t, s3Config(s, "shared", "one"), "store-a")
	if err := a.Put(ctx, 1, bytes.NewReader([]byte("a's pack")), 8); err != nil {
		t.Fatal(err)
	}
	raw := readRaw(t, s, "shared", "one/quics-store")
	if raw != "store-a" {
		t.Errorf("marker holds %q, want store-a", raw)
	}

	_, err := Open(ctx, s3Config(s, "shared", "one/"), "store-b")
	if !errors.Is(err, ErrForeignStore) {
		t.Fatalf("second store on the same prefix: %v, want ErrForeignStore", err)
	}
	for _, want := range []string{"store-a", "store-b", "one/quics-store"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// The owner reopens; another store takes its own prefix, even one
	// nested under the first.
	openBackend(t, s3Config(s, "shared", "one"), "store-a")
	b := openBackend(t, s3Config(s, "shared", "one/sub"), "store-b")
	if got := listAll(t, b); len(got) != 0 {
		t.Errorf("store-b sees store-a's packs: %v", got)
	}
	if got := listAll(t, a); len(got) != 1 {
		t.Errorf("store-a lists %v, want its one pack", got)
	}

	// A hand-edited marker with a trailing newline still matches.
	if _, err := s.Client(t).PutObject(ctx, "shared", "two/quics-store", strings.NewReader("store-c\n"), 8, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	openBackend(t, s3Config(s, "shared", "two"), "store-c")
}

func readRaw(t *testing.T, s *s3test.Server, bucket, key string) string {
	t.Helper()
	obj, err := s.Client(t).GetObject(context.Background(), bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	return string(b)
}

func TestOpenRefusesBadConfig(t *testing.T) {
	good := Config{Bucket: "bucket", Endpoint: "http://127.0.0.1:1", AccessKey: "a", SecretKey: "s"}
	cases := map[string]struct {
		spoil   func(*Config)
		storeID string
	}{
		"bad bucket":      {func(c *Config) { c.Bucket = "No_Such" }, "id"},
		"bad prefix":      {func(c *Config) { c.Prefix = "a/../b" }, "id"},
		"bad endpoint":    {func(c *Config) { c.Endpoint = "ftp://x" }, "id"},
		"tiny parts":      {func(c *Config) { c.PartSize = 1 << 20 }, "id"},
		"no access key":   {func(c *Config) { c.AccessKey = "" }, "id"},
		"no secret":       {func(c *Config) { c.SecretKey = "" }, "id"},
		"empty store ID":  {func(*Config) {}, ""},
		"store ID spaces": {func(*Config) {}, " id "},
		"store ID ctrl":   {func(*Config) {}, "i\nd"},
	}
	for name, c := range cases {
		cfg := good
		c.spoil(&cfg)
		// Nothing listens on port 1: an error that is not about the
		// config would come from the network, after retries.
		if _, err := Open(context.Background(), cfg, c.storeID); err == nil || strings.Contains(err.Error(), "attempts") {
			t.Errorf("%s: Open = %v, want a configuration error before any request", name, err)
		}
	}
}

func TestOpenRaceHasOneWinner(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "race")
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			b, err := Open(context.Background(), s3Config(s, "race", "contested"), fmt.Sprintf("store-%d", i))
			if err == nil {
				b.Close()
			}
			errs <- err
		}()
	}
	wins := 0
	for range n {
		err := <-errs
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ErrForeignStore):
			t.Errorf("a losing Open failed with %v, want ErrForeignStore", err)
		}
	}
	if wins != 1 {
		t.Errorf("%d stores claimed one prefix, want exactly 1", wins)
	}
}

func TestPutRefusesShortSource(t *testing.T) {
	s := s3test.Start(t)
	s.NewBucket(t, "short")
	b := openBackend(t, s3Config(s, "short", ""), "short")
	before := b.Requests()
	err := b.Put(context.Background(), 1, bytes.NewReader(make([]byte, 10)), 20)
	if err == nil || !strings.Contains(err.Error(), "local pack has 10 bytes") {
		t.Fatalf("Put of 20 bytes from a 10-byte source: %v", err)
	}
	if sent := b.Requests().Total() - before.Total(); sent != 0 {
		t.Errorf("Put sent %d requests for a source it could not read", sent)
	}
	if _, err := b.Stat(context.Background(), 1); !errors.Is(err, cas.ErrNoObject) {
		t.Errorf("Stat after a refused Put: %v, want ErrNoObject", err)
	}
}

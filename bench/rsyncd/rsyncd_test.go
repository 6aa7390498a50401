package rsyncd

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-s/quics/bench/netns"
	"github.com/quic-s/quics/bench/procstat"
)

// sample is rsync 3.5's --stats output for a 1,000,000-byte file pushed
// to a daemon.
const sample = `
Number of files: 2 (reg: 1, dir: 1)
Number of created files: 1 (reg: 1)
Number of deleted files: 0
Number of regular files transferred: 1
Total file size: 1,000,000 bytes
Total transferred file size: 1,000,000 bytes
Literal data: 1,000,000 bytes
Matched data: 0 bytes
File list size: 0
File list generation time: 0.001 seconds
File list transfer time: 0.000 seconds
Total bytes sent: 1,000,348
Total bytes received: 115

sent 1,000,348 bytes  received 115 bytes  2,000,926.00 bytes/sec
total size is 1,000,000  speedup is 1.00
`

func TestParseStats(t *testing.T) {
	st, err := ParseStats(sample)
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{BytesSent: 1000348, BytesReceived: 115, LiteralData: 1000000, MatchedData: 0, FilesTransferred: 1}
	if st != want {
		t.Fatalf("got %+v, want %+v", st, want)
	}
	// A locale that groups digits with dots.
	st, err = ParseStats("Total bytes sent: 12.345\nTotal bytes received: 6\n")
	if err != nil || st.BytesSent != 12345 || st.BytesReceived != 6 {
		t.Fatalf("dotted: %+v, %v", st, err)
	}
	// Older releases say "Number of files transferred".
	st, err = ParseStats("Number of files transferred: 7\nTotal bytes sent: 1\nTotal bytes received: 2\n")
	if err != nil || st.FilesTransferred != 7 {
		t.Fatalf("old wording: %+v, %v", st, err)
	}
}

func TestParseStatsRefuses(t *testing.T) {
	for name, out := range map[string]string{
		"empty":          "",
		"no received":    "Total bytes sent: 10\n",
		"human readable": "Total bytes sent: 1.00M\nTotal bytes received: 2K\n",
		"error only":     "rsync: connection refused\n",
	} {
		if st, err := ParseStats(out); err == nil {
			t.Errorf("%s: parsed as %+v", name, st)
		}
	}
}

func TestDaemonPush(t *testing.T) {
	ctx := context.Background()
	bin, version, err := Find(ctx)
	if errors.Is(err, ErrMissing) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Log(version)
	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	data := bytes.Repeat([]byte("quics benchmark "), 20000)
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "sub", "f.txt"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Start(ctx, bin, filepath.Join(base, "daemon"), map[string]string{"m": dst})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	plain, err := d.Push(ctx, src, "m", Plain)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "sub", "f.txt")); !bytes.Equal(got, data) {
		t.Fatal("the pushed file differs at the daemon")
	}
	if plain.BytesSent < int64(len(data)) || plain.Wall <= 0 || plain.MaxRSS <= 0 {
		t.Fatalf("plain push of %d bytes: %+v", len(data), plain)
	}
	// A push this small may take less than a tick of either's CPU, but
	// the daemon's worker must have been reaped for its time to count.
	if _, err := procstat.Children(os.Getpid()); err == nil && (!plain.DaemonCPUKnown || plain.DaemonCPU < 0 || plain.ClientCPU < 0) {
		t.Fatalf("plain push: daemon CPU %v (known %v), client CPU %v", plain.DaemonCPU, plain.DaemonCPUKnown, plain.ClientCPU)
	}
	if err := os.Remove(filepath.Join(dst, "sub", "f.txt")); err != nil {
		t.Fatal(err)
	}
	z, err := d.Push(ctx, src, "m", Fuzzy)
	if err != nil {
		t.Fatal(err)
	}
	if z.BytesSent >= int64(len(data))/10 {
		t.Fatalf("-z sent %d bytes of a repetitive %d-byte file", z.BytesSent, len(data))
	}
	if _, err := d.Push(ctx, src, "nosuchmodule", Plain); err == nil {
		t.Fatal("a push to a missing module succeeded")
	}

	// Pull copies the module into a new directory: the daemon sends.
	pulled := filepath.Join(base, "pulled")
	got, err := d.Pull(ctx, "m", pulled, Plain)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(pulled, "sub", "f.txt")); !bytes.Equal(b, data) {
		t.Fatal("the pulled file differs from the module's")
	}
	if got.BytesReceived < int64(len(data)) || got.BytesSent >= got.BytesReceived {
		t.Fatalf("plain pull of %d bytes: %+v", len(data), got)
	}
	if _, err := d.Pull(ctx, "nosuchmodule", filepath.Join(base, "none"), Plain); err == nil {
		t.Fatal("a pull of a missing module succeeded")
	}
}

func TestFindMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, _, err := Find(context.Background()); !errors.Is(err, ErrMissing) {
		t.Fatalf("rsync off the PATH: %v, want ErrMissing", err)
	}
}

// A daemon in one network namespace takes a push from a client in the
// other, and the push crosses the link between them.
func TestDaemonPushNet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces")
	}
	if err := netns.Check(); err != nil {
		t.Skipf("cannot build a link here: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	bin, _, err := Find(ctx)
	if errors.Is(err, ErrMissing) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	pair, err := netns.New(ctx, netns.Options{Prefix: "quics-rsyncd-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer pair.Close()

	base := t.TempDir()
	src, dst := filepath.Join(base, "src"), filepath.Join(base, "dst")
	data := make([]byte, 300_000)
	_, _ = rand.Read(data)
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "f.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	dial := func(ctx context.Context, network, addr string) (c net.Conn, err error) {
		err = pair.Client.Do(func() error {
			c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	d, err := StartNet(ctx, bin, filepath.Join(base, "daemon"), map[string]string{"m": dst},
		Net{Addr: pair.Server.Addr, Port: 8873, Daemon: pair.Server.Command, Client: pair.Client.Command, Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	before, err := pair.Client.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Push(ctx, src, "m", Plain)
	if err != nil {
		t.Fatal(err)
	}
	after, err := pair.Client.Counters(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "f.bin")); !bytes.Equal(got, data) {
		t.Fatal("the pushed file differs at the daemon")
	}
	if up := after.Sub(before).TxBytes; up < res.BytesSent || res.BytesSent < int64(len(data)) {
		t.Fatalf("rsync sent %d bytes, the client's link end counted %d, for a %d-byte file", res.BytesSent, up, len(data))
	}
}

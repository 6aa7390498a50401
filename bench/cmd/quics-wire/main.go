// Command quics-wire runs one sync pass like `qic sync` and reports where
// its bytes on the wire went: the handshake and authentication, then each
// kind of transaction (heads, have-queries, chunk uploads, proposals, chunk
// lists, downloads), and the connection's close. It is how the figures of
// issue #7 were taken apart; the transactions of a pass run in phases, so
// the socket's counters between calls attribute acknowledgements and
// retransmissions to the phase that caused them.
//
// Usage:
//
//	quics-wire --home DIR
//
// The home must be registered and hold its roots, like qic's. The pass
// changes the home and the server exactly as qic sync would.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"sync"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/client"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "quics-wire:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("quics-wire", flag.ContinueOnError)
	home := fs.String("home", "", "qic home directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *home == "" {
		return errors.New("--home is required")
	}
	h, err := client.OpenHome(ctx, *home)
	if err != nil {
		return err
	}
	defer h.Close()
	cfg := h.Config()
	if !cfg.Registered() {
		return errors.New("the home is not registered")
	}
	wire := &syncproto.WireCounter{}
	acct := &accounts{wire: wire}
	start := time.Now()
	c, err := syncproto.DialSession(ctx, cfg.ServerAddr, tlsutil.PinnedClientConfig(cfg.Fingerprint, syncproto.ALPN),
		syncproto.Config{Wire: wire}, cfg.ClientID.String(), cfg.Token)
	if err != nil {
		return err
	}
	acct.mark("handshake + auth")
	remote := &countingRemote{Client: c, acct: acct}
	eng := client.NewEngine(h.State(), remote, client.EngineOptions{})
	res, syncErr := eng.SyncAll(ctx)
	acct.mark("(between transactions)")
	roots, err := h.State().Roots(ctx)
	if err == nil {
		for _, r := range roots {
			if _, err := c.ListConflicts(ctx, r.Name, ""); err != nil {
				fmt.Fprintln(os.Stderr, "list conflicts:", err)
			}
		}
		acct.mark("list conflicts")
	}
	_ = c.Close()
	// The close and its last acknowledgements leave after Close returns.
	time.Sleep(100 * time.Millisecond)
	acct.mark("close")
	acct.print(out, time.Since(start))
	fmt.Fprintf(out, "pass: %d uploaded, %d downloaded, %d chunks sent, %d skipped, %d fetched, %d reused\n",
		res.FilesUploaded, res.FilesDownloaded, res.ChunksSent, res.ChunksSkipped, res.ChunksFetched, res.ChunksReused)
	return syncErr
}

// accounts sums the socket's bytes per phase.
type accounts struct {
	wire *syncproto.WireCounter
	mu   sync.Mutex
	last [2]uint64
	sum  map[string]*[3]uint64 // sent, received, calls
	ord  []string
}

// mark charges the bytes since the previous mark to name.
func (a *accounts) mark(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, r := a.wire.Stats()
	if a.sum == nil {
		a.sum = map[string]*[3]uint64{}
	}
	e := a.sum[name]
	if e == nil {
		e = &[3]uint64{}
		a.sum[name] = e
		a.ord = append(a.ord, name)
	}
	e[0] += s - a.last[0]
	e[1] += r - a.last[1]
	e[2]++
	a.last = [2]uint64{s, r}
}

func (a *accounts) print(out io.Writer, took time.Duration) {
	names := append([]string(nil), a.ord...)
	sort.SliceStable(names, func(i, j int) bool { return false })
	var ts, tr uint64
	fmt.Fprintf(out, "%-26s %10s %10s %6s\n", "phase", "sent", "received", "calls")
	for _, n := range names {
		e := a.sum[n]
		if e[0] == 0 && e[1] == 0 {
			continue
		}
		fmt.Fprintf(out, "%-26s %10d %10d %6d\n", n, e[0], e[1], e[2])
		ts += e[0]
		tr += e[1]
	}
	fmt.Fprintf(out, "%-26s %10d %10d   (%.0f ms)\n", "total", ts, tr, took.Seconds()*1000)
}

// countingRemote charges each transaction's bytes to its kind. The
// engine runs a pass in phases (heads, have-queries, uploads, proposals),
// so concurrent calls of one kind share their phase's account.
type countingRemote struct {
	*syncproto.Client
	acct *accounts
}

func (c *countingRemote) around(name string, f func() error) error {
	c.acct.mark("(between transactions)")
	err := f()
	c.acct.mark(name)
	return err
}

func (c *countingRemote) Heads(ctx context.Context, root string, after uint64) (hs []*syncpb.FileHead, seq uint64, err error) {
	err = c.around("heads", func() error { hs, seq, err = c.Client.Heads(ctx, root, after); return err })
	return hs, seq, err
}

func (c *countingRemote) ChunkList(ctx context.Context, root, path string, hash cas.ID) (n int64, refs []syncproto.ChunkRef, err error) {
	err = c.around("chunk list", func() error { n, refs, err = c.Client.ChunkList(ctx, root, path, hash); return err })
	return n, refs, err
}

func (c *countingRemote) GetChunks(ctx context.Context, root string, ids []cas.ID, fn func(syncproto.Chunk) error) error {
	return c.around("get chunks", func() error { return c.Client.GetChunks(ctx, root, ids, fn) })
}

func (c *countingRemote) HaveChunks(ctx context.Context, root string, ids []cas.ID) (have []bool, err error) {
	err = c.around("have chunks", func() error { have, err = c.Client.HaveChunks(ctx, root, ids); return err })
	return have, err
}

func (c *countingRemote) PutChunks(ctx context.Context, root string, chunks []syncproto.Chunk) error {
	return c.around("put chunks", func() error { return c.Client.PutChunks(ctx, root, chunks) })
}

func (c *countingRemote) PutChunkStream(ctx context.Context, root string, next func() (syncproto.Chunk, error)) error {
	return c.around("put chunks", func() error { return c.Client.PutChunkStream(ctx, root, next) })
}

func (c *countingRemote) Propose(ctx context.Context, req *syncpb.ProposeRequest, refs []syncproto.ChunkRef) (resp *syncpb.CommitResponse, err error) {
	err = c.around("propose", func() error { resp, err = c.Client.Propose(ctx, req, refs); return err })
	return resp, err
}

func (c *countingRemote) ProposeDelta(ctx context.Context, req *syncpb.ProposeRequest, d *syncproto.ListDelta) (resp *syncpb.CommitResponse, err error) {
	err = c.around("propose (delta)", func() error { resp, err = c.Client.ProposeDelta(ctx, req, d); return err })
	return resp, err
}

func (c *countingRemote) Signatures(ctx context.Context, root string, srcs []syncproto.SignatureSource) (sigs [][]byte, err error) {
	err = c.around("signatures", func() error { sigs, err = c.Client.Signatures(ctx, root, srcs); return err })
	return sigs, err
}

func (c *countingRemote) ChunkListFrom(ctx context.Context, root, path string, hash cas.ID, basePath string, baseHash cas.ID, base []syncproto.ChunkRef) (n int64, refs []syncproto.ChunkRef, err error) {
	err = c.around("chunk list (delta)", func() error {
		n, refs, err = c.Client.ChunkListFrom(ctx, root, path, hash, basePath, baseHash, base)
		return err
	})
	return n, refs, err
}

func (c *countingRemote) GetChunksDict(ctx context.Context, root string, ids []cas.ID, dicts [][]cas.ID, fn func(syncproto.Chunk) error) error {
	return c.around("get chunks (dict)", func() error { return c.Client.GetChunksDict(ctx, root, ids, dicts, fn) })
}

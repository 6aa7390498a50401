package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// serveQUIC serves e.srv over QUIC on 127.0.0.1 until the test ends (the
// server stops before e.srv closes: cleanups run last-in first-out) and
// returns the address.
func (e *env) serveQUIC(t testing.TB) string {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := syncproto.Listen(ctx, "127.0.0.1:0", e.srv.TLSConfig(), syncproto.Config{Logger: quiet})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- syncproto.NewServer(e.srv, syncproto.ServerOptions{Logger: quiet}).Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after cancel")
		}
	})
	return l.Addr().String()
}

// device is a client registered over QUIC.
type device struct {
	id    uuid.UUID
	token string
}

func (e *env) registerDevice(t testing.TB, addr, name string) device {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := device{id: uuid.New()}
	resp, _, err := syncproto.Register(ctx, addr, e.clientTLS(), syncproto.Config{},
		&syncpb.RegisterClientRequest{ClientId: d.id.String(), Name: name, ServerPassword: testPassword})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	d.token = resp.GetToken()
	return d
}

func (e *env) clientTLS() *tls.Config {
	return tlsutil.PinnedClientConfig(e.srv.Fingerprint(), syncproto.ALPN)
}

// dialDevice opens a session for d; it is closed when the test ends.
func (e *env) dialDevice(t testing.TB, addr string, d device) (*syncproto.Client, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := syncproto.DialSession(ctx, addr, e.clientTLS(), syncproto.Config{}, d.id.String(), d.token)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = c.Close() })
	return c, nil
}

func (e *env) mustDial(t testing.TB, addr string, d device) *syncproto.Client {
	t.Helper()
	c, err := e.dialDevice(t, addr, d)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// quicPush uploads the chunks of f the server lacks and proposes f on top
// of base (nil: a new file), as qic does. It returns the chunks it sent,
// in the form they traveled.
func quicPush(ctx context.Context, c *syncproto.Client, root, path string, base *syncpb.FileHead, f file) (*syncpb.CommitResponse, []syncproto.Chunk, error) {
	ids := f.ids()
	present, err := c.HaveChunks(ctx, root, ids)
	if err != nil {
		return nil, nil, err
	}
	send, err := f.missing(present)
	if err != nil {
		return nil, nil, err
	}
	if len(send) > 0 {
		if err := c.PutChunks(ctx, root, send); err != nil {
			return nil, nil, err
		}
	}
	resp, err := c.Propose(ctx, request(root, path, base, f), f.refs)
	return resp, send, err
}

// quicDownload fetches a version's chunks by their distinct IDs and
// returns the chunks as they traveled.
func quicDownload(ctx context.Context, c *syncproto.Client, root, path string, hash cas.ID) ([]syncproto.Chunk, error) {
	_, refs, err := c.ChunkList(ctx, root, path, hash)
	if err != nil {
		return nil, err
	}
	seen := cas.NewIDSet()
	var ids []cas.ID
	for _, r := range refs {
		if !seen.Has(r.ID) {
			seen.Insert(r.ID)
			ids = append(ids, r.ID)
		}
	}
	var got []syncproto.Chunk
	err = c.GetChunks(ctx, root, ids, func(ch syncproto.Chunk) error {
		if _, err := (cas.Stored{Codec: cas.Codec(ch.Codec), Data: ch.Data, RawLen: ch.RawLen}).Decode(ch.ID); err != nil {
			return err
		}
		ch.Data = append([]byte(nil), ch.Data...)
		got = append(got, ch)
		return nil
	})
	if err == nil && len(got) != len(ids) {
		err = errors.New("fewer chunks than asked for")
	}
	return got, err
}

// waitUntil polls cond until it holds, failing after a generous timeout.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

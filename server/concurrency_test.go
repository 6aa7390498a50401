package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// TestConcurrentProposals runs 8 clients at once, each proposing its own
// files and the same shared file.
func TestConcurrentProposals(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const clients, filesEach = 8, 4
	owner := e.client(t, "owner")
	e.root(t, owner, "docs")
	sessions := make([]*syncproto.Session, clients)
	for i := range sessions {
		sessions[i] = e.client(t, fmt.Sprintf("c%d", i))
		e.join(t, sessions[i], "docs")
	}
	w := e.watch(t, owner, &syncpb.WatchRequest{})
	e.subscribed(t, "docs", 1)

	own := make([][]file, clients)
	shared := make([]file, clients)
	for i := range clients {
		for j := range filesEach {
			own[i] = append(own[i], newFile(t, randomData(uint64(100*i+j), 40<<10)))
		}
		shared[i] = newFile(t, randomData(uint64(1000+i), 40<<10))
	}
	var wg sync.WaitGroup
	outcomes := make([]error, clients)
	for i, sess := range sessions {
		wg.Go(func() {
			for j, f := range own[i] {
				if _, err := e.push(sess, "docs", fmt.Sprintf("c%d/f%d", i, j), nil, f); err != nil {
					t.Errorf("client %d file %d: %v", i, j, err)
				}
			}
			// Everyone creates "shared" from nothing: one wins.
			_, outcomes[i] = e.push(sess, "docs", "shared", nil, shared[i])
		})
	}
	wg.Wait()
	won, lost := 0, 0
	for i, err := range outcomes {
		switch {
		case err == nil:
			won++
		case errors.Is(err, syncproto.ErrConflict):
			lost++
		default:
			t.Errorf("client %d on the shared file: %v", i, err)
		}
	}
	if won != 1 || lost != clients-1 {
		t.Errorf("shared file: %d committed, %d conflicts; want 1 and %d", won, lost, clients-1)
	}
	heads, seq, _ := e.heads(t, owner, "docs", 0)
	if len(heads) != clients*filesEach+1 || seq != uint64(clients*filesEach+1) {
		t.Errorf("%d heads at seq %d, want %d", len(heads), seq, clients*filesEach+1)
	}
	c, err := e.srv.db.Conflict(ctx, 1, "shared")
	if err != nil || len(c.Candidates) != clients { // the server side and 7 losers
		t.Errorf("shared conflict: %d candidates, %v; want %d", len(c.Candidates), err, clients)
	}
	seqs := make(map[uint64]bool)
	w.waitFor(t, "a MUST_SYNC per commit", func(ns []*syncpb.Notice) bool {
		for _, n := range ns {
			if n.GetKind() == syncpb.Notice_KIND_MUST_SYNC {
				seqs[n.GetHead().GetSeq()] = true
			}
		}
		return len(seqs) == clients*filesEach+1
	})
	e.srv.views.wait()
	if n := e.srv.Pins().Len(); n != 0 {
		t.Errorf("%d chunks pinned after everything settled", n)
	}
}

// TestConcurrentEditsOfOneFile has 8 clients edit the same file from the
// same base: exactly one fast-forwards, the others conflict, and a client
// retrying from the new head succeeds.
func TestConcurrentEditsOfOneFile(t *testing.T) {
	e := newEnv(t)
	const clients = 8
	owner := e.client(t, "owner")
	e.root(t, owner, "docs")
	base := e.mustPush(t, owner, "docs", "f", nil, newFile(t, []byte("base")))
	sessions := make([]*syncproto.Session, clients)
	files := make([]file, clients)
	for i := range sessions {
		sessions[i] = e.client(t, fmt.Sprintf("c%d", i))
		e.join(t, sessions[i], "docs")
		files[i] = newFile(t, fmt.Appendf(nil, "edit %d", i))
		e.upload(t, sessions[i], "docs", files[i])
	}
	var wg sync.WaitGroup
	heads := make([]*syncpb.FileHead, clients)
	errs := make([]error, clients)
	start := make(chan struct{})
	for i := range sessions {
		wg.Go(func() {
			<-start
			resp, err := e.srv.Propose(context.Background(), sessions[i], request("docs", "f", base, files[i]), files[i].refs)
			heads[i], errs[i] = resp.GetHead(), err
		})
	}
	close(start)
	wg.Wait()
	var winner *syncpb.FileHead
	for i, err := range errs {
		switch {
		case err == nil && winner == nil:
			winner = heads[i]
		case err == nil:
			t.Errorf("two fast-forwards from one base: %v and %v", winner, heads[i])
		case !errors.Is(err, syncproto.ErrConflict):
			t.Errorf("client %d: %v", i, err)
		}
	}
	if winner == nil || winner.GetSeq() != 2 {
		t.Fatalf("winner %v", winner)
	}
	// A loser that pulled the new head edits on top of it.
	for i, err := range errs {
		if err != nil {
			e.mustPush(t, sessions[i], "docs", "f", winner, newFile(t, []byte("rebased")))
			break
		}
	}
}

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/gc"
	"github.com/quic-s/quics/internal/syncbuf"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// The crash harness runs the real quics binary, uploads fresh content from
// several sessions, SIGKILLs the server at seeded random instants and
// restarts it on the same data directory. What a client was told is
// committed must survive every crash; check --read-data must stay clean.

// crashTrials is QUICS_CRASH_TRIALS, default 10 (make crash-long: 50).
func crashTrials(t *testing.T) int { return envCount(t, "QUICS_CRASH_TRIALS", 10) }

// envCount reads a positive count from the environment, def when unset.
func envCount(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func testSeed(t *testing.T, env string) uint64 {
	t.Helper()
	if v := os.Getenv(env); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", env, v, err)
		}
		return s
	}
	return uint64(time.Now().UnixNano())
}

// crashServer is a quics process that is killed and restarted on the same
// data directory and address, so clients reconnect where they were.
type crashServer struct {
	t           *testing.T
	dataDir     string
	addr        string
	fingerprint string
	extra       []string
	proc        *process
	out         *syncbuf.Buffer
	starts      int
	repairs     int // starts that reported a chunk store repaired on open
}

func newCrashServer(t *testing.T, extra ...string) *crashServer {
	needServer(t)
	return &crashServer{t: t, dataDir: filepath.Join(t.TempDir(), "data"), addr: freeUDPAddr(t), extra: extra}
}

// start runs quics and waits until it serves; a process that exits first
// fails the test, since a restart after a crash must always succeed.
func (s *crashServer) start() {
	s.t.Helper()
	args := append([]string{"run", "--data", s.dataDir, "--listen", s.addr, "--password", serverPassword,
		"--admin", "127.0.0.1:0", "--admin-h3", ""}, s.extra...)
	s.out, s.proc = startProcessCmd(s.t, "quics", args...)
	s.starts++
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := s.out.String()
		if strings.Contains(out, "admin API on") && strings.Contains(out, "listening on") {
			break
		}
		select {
		case <-s.proc.exited:
			s.t.Fatalf("start %d: quics exited before serving:\n%s", s.starts, out)
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("start %d: quics did not serve within 60 s:\n%s", s.starts, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := fingerprintLine.FindStringSubmatch(s.out.String())
	if m == nil {
		s.t.Fatalf("start %d: no fingerprint printed:\n%s", s.starts, s.out)
	}
	switch {
	case s.fingerprint == "":
		s.fingerprint = m[1] // first start, before any client runs
	case m[1] != s.fingerprint:
		s.t.Fatalf("start %d: fingerprint changed from %s to %s", s.starts, s.fingerprint, m[1])
	}
	if strings.Contains(s.out.String(), "repaired on open") {
		s.repairs++
	}
}

// kill is kill -9: no shutdown code runs.
func (s *crashServer) kill() {
	_ = s.proc.cmd.Process.Kill()
	<-s.proc.exited
}

// stop is a clean shutdown (SIGINT).
func (s *crashServer) stop() {
	s.t.Helper()
	_ = s.proc.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.proc.exited:
	case <-time.After(30 * time.Second):
		s.t.Fatalf("quics did not stop within 30 s:\n%s", s.out)
	}
}

// dial opens a session with short timeouts, so a killed server is noticed
// quickly rather than after the default 30 s.
func (s *crashServer) dial(ctx context.Context, id, token string) (*syncproto.Client, error) {
	cfg := syncproto.Config{HandshakeTimeout: 3 * time.Second, MaxIdleTimeout: 5 * time.Second,
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	return syncproto.DialSession(ctx, s.addr, (&quicsProc{fingerprint: s.fingerprint}).tls(), cfg, id, token)
}

// checkOffline runs quics check --read-data on the stopped server's data
// directory and fails unless it is clean.
func checkOffline(t *testing.T, dataDir, when string) gc.CheckReport {
	t.Helper()
	out, errOut, code := quicsCLI(t, "", "check", "--read-data", "--json", "--data", dataDir)
	var rep gc.CheckReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%s: quics check printed %q (exit %d, stderr %s): %v", when, out, code, errOut, err)
	}
	if code != 0 || !rep.OK || len(rep.Problems) != 0 {
		t.Fatalf("%s: quics check --read-data: exit %d, problems %v\n%s", when, code, rep.Problems, out)
	}
	return rep
}

// ack is a version the server answered COMMITTED for.
type ack struct {
	path string
	seq  uint64
	hash cas.ID
}

// crashChunkSize cuts uploads into fixed chunks, under any root's maximum.
const crashChunkSize = 128 << 10

// crashWriter uploads new versions of its own files in a loop, through
// server kills: a failed step drops the session, the next one dials
// again and first re-reads its heads, since a commit whose answer was lost
// may have moved them.
type crashWriter struct {
	name, id, token string
	srv             *crashServer
	root            string
	rng             *rand.Rand
	paths           []string
	heads           map[string]*syncpb.FileHead
	content         map[string][]byte // last content proposed per path, for appends
	stale           bool

	mu   sync.Mutex
	sess *syncproto.Client
	acks []ack

	commits atomic.Int64
	fails   atomic.Int64
	lastErr atomic.Value
}

// drop closes the current session so a step blocked on a dead server
// fails now.
func (w *crashWriter) drop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sess != nil {
		_ = w.sess.Close()
		w.sess = nil
	}
}

func (w *crashWriter) session(ctx context.Context) (*syncproto.Client, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.sess != nil {
		return w.sess, nil
	}
	sess, err := w.srv.dial(ctx, w.id, w.token)
	if err != nil {
		return nil, err
	}
	w.sess = sess
	return sess, nil
}

func (w *crashWriter) acked() []ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.acks)
}

func (w *crashWriter) run(ctx context.Context) {
	for ctx.Err() == nil {
		opCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := w.step(opCtx)
		cancel()
		if err != nil {
			w.fails.Add(1)
			w.lastErr.Store(err.Error())
			w.stale = true
			w.drop()
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	w.drop()
}

// nextContent is fresh random bytes, or the path's last content with a
// random tail, so that most of its chunks are already on the server
// (HaveChunks pins them while gc runs).
func (w *crashWriter) nextContent(path string) []byte {
	if prev := w.content[path]; len(prev) > 0 && w.rng.IntN(3) == 0 {
		return append(slices.Clone(prev), randomBytes(w.rng.Uint64(), 1+w.rng.IntN(64<<10))...)
	}
	return randomBytes(w.rng.Uint64(), 64<<10+w.rng.IntN(2<<20))
}

func (w *crashWriter) step(ctx context.Context) error {
	sess, err := w.session(ctx)
	if err != nil {
		return err
	}
	if w.stale {
		heads, _, err := sess.Heads(ctx, w.root, 0)
		if err != nil {
			return err
		}
		for _, h := range heads {
			if slices.Contains(w.paths, h.GetPath()) {
				w.heads[h.GetPath()] = h
			}
		}
		w.stale = false
	}
	path := w.paths[w.rng.IntN(len(w.paths))]
	data := w.nextContent(path)
	w.content[path] = data
	var (
		chunks []syncproto.Chunk
		refs   []syncproto.ChunkRef
		ids    []cas.ID
	)
	for off := 0; off < len(data); off += crashChunkSize {
		part := data[off:min(off+crashChunkSize, len(data))]
		id := cas.Sum(part)
		chunks = append(chunks, syncproto.Chunk{Codec: syncproto.ChunkRaw, ID: id, RawLen: len(part), Data: part})
		refs = append(refs, syncproto.ChunkRef{ID: id, Size: uint32(len(part))})
		ids = append(ids, id)
	}
	present, err := sess.HaveChunks(ctx, w.root, ids)
	if err != nil {
		return err
	}
	var missing []syncproto.Chunk
	for i, c := range chunks {
		if !present[i] {
			missing = append(missing, c)
		}
	}
	if err := sess.PutChunks(ctx, w.root, missing); err != nil {
		return err
	}
	hash := cas.Sum(data)
	req := &syncpb.ProposeRequest{Root: w.root, Path: path, Hash: hash[:], Size: int64(len(data)), Mode: 0o644,
		Mtime: time.Now().UnixNano()}
	if h := w.heads[path]; h != nil {
		req.BaseSeq, req.BaseHash = h.GetSeq(), h.GetHash()
	}
	resp, err := sess.Propose(ctx, req, refs)
	if err != nil {
		return err
	}
	switch resp.GetOutcome() {
	case syncpb.CommitResponse_OUTCOME_COMMITTED:
		if !bytes.Equal(resp.GetHead().GetHash(), hash[:]) || resp.GetHead().GetPath() != path {
			return fmt.Errorf("%s: COMMITTED %s with head %v", w.name, path, resp.GetHead())
		}
		w.mu.Lock()
		w.acks = append(w.acks, ack{path: path, seq: resp.GetHead().GetSeq(), hash: hash})
		w.mu.Unlock()
		w.commits.Add(1)
	case syncpb.CommitResponse_OUTCOME_CONVERGED, syncpb.CommitResponse_OUTCOME_SUPERSEDED:
	default:
		return fmt.Errorf("%s: propose %s: outcome %v", w.name, path, resp.GetOutcome())
	}
	w.heads[path] = resp.GetHead()
	return nil
}

// verifyAcks checks through the protocol that every acknowledged version
// is in its file's history with its hash.
func verifyAcks(t *testing.T, sess *syncproto.Client, root string, writers []*crashWriter, when string) int {
	t.Helper()
	ctx := opCtx(t)
	histories := map[string]map[uint64]cas.ID{}
	n := 0
	for _, w := range writers {
		for _, a := range w.acked() {
			hist, ok := histories[a.path]
			if !ok {
				entries, err := sess.History(ctx, root, a.path, 0)
				if err != nil {
					t.Fatalf("%s: history of %s: %v", when, a.path, err)
				}
				hist = map[uint64]cas.ID{}
				for _, e := range entries {
					var id cas.ID
					copy(id[:], e.GetHash())
					hist[e.GetSeq()] = id
				}
				histories[a.path] = hist
			}
			got, ok := hist[a.seq]
			if !ok {
				t.Fatalf("%s: %s seq %d (%s) was acknowledged and is not in its history", when, a.path, a.seq, a.hash.Short())
			}
			if got != a.hash {
				t.Fatalf("%s: %s seq %d was acknowledged as %s, history has %s", when, a.path, a.seq, a.hash.Short(), got.Short())
			}
			n++
		}
	}
	return n
}

// waitProgress waits until every writer committed at least once more than
// in before: the clients resumed after the restart.
func waitProgress(t *testing.T, writers []*crashWriter, before []int64, when string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		done := true
		for i, w := range writers {
			if w.commits.Load() <= before[i] {
				done = false
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			for _, w := range writers {
				t.Logf("%s: %d commits, %d failed steps, last error %v", w.name, w.commits.Load(), w.fails.Load(), w.lastErr.Load())
			}
			t.Fatalf("%s: the clients did not resume within 90 s", when)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func commitCounts(writers []*crashWriter) []int64 {
	out := make([]int64, len(writers))
	for i, w := range writers {
		out[i] = w.commits.Load()
	}
	return out
}

// gcLoop runs quics gc --margin 0 back to back until ctx ends. A gc
// started after the server died opens the data dir itself and is killed
// with ctx: that is a crash during gc too.
func gcLoop(ctx context.Context, dataDir string, runs *atomic.Int64) {
	for ctx.Err() == nil {
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "quics"), "gc", "--margin", "0", "--json", "--data", dataDir)
		if cmd.Run() == nil {
			runs.Add(1)
		}
	}
}

func TestCrashServerKilledDuringUploads(t *testing.T) {
	runCrashHarness(t, crashTrials(t), "--views=true")
}

// runCrashHarness kills the server trials times while three writers
// upload and, every third trial, gc runs; extra are quics run's flags. It
// returns the (stopped) server's data directory.
func runCrashHarness(t *testing.T, trials int, extra ...string) string {
	seed := testSeed(t, "QUICS_CRASH_SEED")
	t.Logf("crash harness: %d trials, seed %d (QUICS_CRASH_SEED=%d replays the schedule)", trials, seed, seed)
	rng := rand.New(rand.NewPCG(seed, 1))

	srv := newCrashServer(t, extra...)
	srv.start()
	const root = "crash"
	const writerCount, filesPerWriter = 3, 3
	var writers []*crashWriter
	for i := range writerCount {
		p := &quicsProc{addr: srv.addr, fingerprint: srv.fingerprint}
		id, token := p.register(t)
		w := &crashWriter{
			name: fmt.Sprintf("w%d", i), id: id, token: token, srv: srv, root: root,
			rng: rand.New(rand.NewPCG(seed, uint64(100+i))), heads: map[string]*syncpb.FileHead{},
			content: map[string][]byte{},
		}
		for j := range filesPerWriter {
			w.paths = append(w.paths, fmt.Sprintf("%s/dir %d/file-%d.bin", w.name, j%2, j))
		}
		sess, err := srv.dial(opCtx(t), id, token)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			_, err = sess.RegisterRoot(opCtx(t), root, rootPassword)
		} else {
			_, err = sess.JoinRoot(opCtx(t), root, rootPassword)
		}
		_ = sess.Close()
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, w)
	}
	vid, vtoken := (&quicsProc{addr: srv.addr, fingerprint: srv.fingerprint}).register(t)
	verifier := func() *syncproto.Client {
		sess, err := srv.dial(opCtx(t), vid, vtoken)
		if err != nil {
			t.Fatalf("verifier session: %v", err)
		}
		return sess
	}
	if _, err := verifier().JoinRoot(opCtx(t), root, rootPassword); err != nil {
		t.Fatalf("verifier join: %v", err)
	}

	ctx, stopWriters := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, w := range writers {
		wg.Go(func() { w.run(ctx) })
	}
	defer func() { stopWriters(); wg.Wait() }()

	var gcRuns atomic.Int64
	offlineChecks := 0
	for trial := range trials {
		when := fmt.Sprintf("trial %d", trial)
		waitProgress(t, writers, commitCounts(writers), when)
		withGC := trial%3 == 1
		var gcDone sync.WaitGroup
		gcCtx, stopGC := context.WithCancel(ctx)
		if withGC {
			gcDone.Go(func() { gcLoop(gcCtx, srv.dataDir, &gcRuns) })
		}
		delay := time.Duration(rng.IntN(1500)) * time.Millisecond
		time.Sleep(delay)
		srv.kill()
		stopGC()
		gcDone.Wait()
		for _, w := range writers {
			w.drop()
		}
		t.Logf("%s: killed %v after the clients resumed (gc loop %t)", when, delay, withGC)
		if trial%2 == 1 {
			// The state the crash left, checked before the server's own
			// recovery runs.
			checkOffline(t, srv.dataDir, when+" after kill")
			offlineChecks++
		}
		srv.start()
		v := verifier()
		n := verifyAcks(t, v, root, writers, when+" after restart")
		_ = v.Close()
		t.Logf("%s: restart %d ok, %d acknowledged versions present", when, srv.starts, n)
	}
	waitProgress(t, writers, commitCounts(writers), "after the last restart")
	stopWriters()
	wg.Wait()

	v := verifier()
	defer v.Close()
	acked := verifyAcks(t, v, root, writers, "final")
	heads, _, err := v.Heads(opCtx(t), root, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh qic client converges to the heads, content hash-checked.
	q := newQicHome(t, "after-crashes")
	q.must("register", "--server", srv.addr, "--password", serverPassword, "--fingerprint", srv.fingerprint)
	q.must("root", "join", root, q.dir, "--root-password", rootPassword)
	q.sync()
	tree := treeOf(t, q.dir)
	live := 0
	for _, h := range heads {
		if h.GetDeleted() {
			continue
		}
		live++
		var want cas.ID
		copy(want[:], h.GetHash())
		if got := tree[h.GetPath()]; got.Hash != want.String() {
			t.Errorf("%s: qic has %q, head is %s", h.GetPath(), got.Hash, want)
		}
	}
	if len(tree) != live {
		t.Errorf("qic tree has %d files, the root %d heads", len(tree), live)
	}
	srv.stop()
	rep := checkOffline(t, srv.dataDir, "final")
	var total, fails int64
	for _, w := range writers {
		total += w.commits.Load()
		fails += w.fails.Load()
	}
	t.Logf("crash harness: %d trials passed, %d starts (%d repaired a torn store), %d offline checks, %d gc runs; "+
		"%d commits acknowledged and found, %d failed client steps; final check: %d packs, %d chunks, %d orphan records (%d bytes) reclaimable",
		trials, srv.starts, srv.repairs, offlineChecks, gcRuns.Load(), acked, fails, rep.Packs, rep.ChunksIndexed, rep.OrphanRecords, rep.OrphanBytes)
	if int64(acked) != total {
		t.Errorf("%d commits counted, %d verified", total, acked)
	}
	return srv.dataDir
}

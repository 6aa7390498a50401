package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/quic-go/quic-go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/internal/syncbuf"
	"github.com/quic-s/quics/internal/tlsutil"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// These tests run the real quics binary and talk to it as a hostile or
// careless client would: raw syncproto transactions and raw QUIC bytes.

// opTimeout bounds every single operation of these tests.
const opTimeout = 20 * time.Second

// quicsProc is a running quics binary.
type quicsProc struct {
	addr        string
	fingerprint string
	dataDir     string
	stdout      *syncbuf.Buffer
	stderr      *syncbuf.Buffer
	exited      chan struct{} // closed when the process has ended
}

var fingerprintLine = regexp.MustCompile(`certificate fingerprint \(SHA-256\): ([0-9a-f]{64})`)

// startQuicsAt runs quics with its data in dataDir on a free loopback
// port, waits until it listens, and stops it at cleanup.
func startQuicsAt(t *testing.T, dataDir string, views bool) *quicsProc {
	t.Helper()
	needServer(t)
	p := &quicsProc{addr: freeUDPAddr(t), dataDir: dataDir, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, exited: make(chan struct{})}
	cmd := exec.Command(filepath.Join(binDir, "quics"), "run", "--data", dataDir, "--listen", p.addr,
		"--password", serverPassword, fmt.Sprintf("--views=%t", views))
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("quics stdout:\n%s\nquics stderr:\n%s", p.stdout, p.stderr)
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(p.stdout.String(), "listening on") {
		select {
		case <-p.exited:
			t.Fatalf("quics exited before listening:\n%s\n%s", p.stdout, p.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("quics did not listen on %s within 15 s", p.addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	m := fingerprintLine.FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("quics printed no fingerprint:\n%s", p.stdout)
	}
	p.fingerprint = m[1]
	return p
}

// assertHealthy fails unless the process still runs and never logged a
// panic.
func (p *quicsProc) assertHealthy(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
		t.Fatalf("quics has exited:\n%s", p.stderr)
	default:
	}
	if strings.Contains(strings.ToLower(p.stderr.String()), "panic") {
		t.Fatalf("quics logged a panic:\n%s", p.stderr)
	}
}

func (p *quicsProc) tls() *tls.Config {
	return tlsutil.PinnedClientConfig(p.fingerprint, syncproto.ALPN)
}

func opCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	t.Cleanup(cancel)
	return ctx
}

// register registers a fresh device and returns its ID and token.
func (p *quicsProc) register(t *testing.T) (id, token string) {
	t.Helper()
	id = uuid.NewString()
	resp, fp, err := syncproto.Register(opCtx(t), p.addr, p.tls(), syncproto.Config{},
		&syncpb.RegisterClientRequest{ClientId: id, Name: "raw", ServerPassword: serverPassword})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
	if fp != p.fingerprint {
		t.Fatalf("register: fingerprint %s, quics printed %s", fp, p.fingerprint)
	}
	return id, resp.GetToken()
}

// session registers a device and opens an authenticated session for it.
func (p *quicsProc) session(t *testing.T) *syncproto.Client {
	t.Helper()
	id, token := p.register(t)
	return p.sessionAs(t, id, token)
}

// sessionAs opens a session for a registered device.
func (p *quicsProc) sessionAs(t *testing.T, id, token string) *syncproto.Client {
	t.Helper()
	c, err := syncproto.DialSession(opCtx(t), p.addr, p.tls(), syncproto.Config{}, id, token)
	if err != nil {
		t.Fatalf("dial session: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dialRaw opens a syncproto connection that has not authenticated.
func (p *quicsProc) dialRaw(t *testing.T) *syncproto.Conn {
	t.Helper()
	conn, err := syncproto.Dial(opCtx(t), p.addr, p.tls(), syncproto.Config{})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// dialAuthed opens a syncproto connection and authenticates it by hand,
// so the test can write any frame on its streams.
func (p *quicsProc) dialAuthed(t *testing.T, id, token string) *syncproto.Conn {
	t.Helper()
	conn := p.dialRaw(t)
	ctx := opCtx(t)
	st, err := conn.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := syncproto.WriteMessage(ctx, st, &syncpb.AuthRequest{ClientId: id, Token: token}); err != nil {
		t.Fatal(err)
	}
	_ = st.CloseWrite()
	if err := syncproto.ReadMessage(ctx, st, &syncpb.AuthResponse{}); err != nil {
		t.Fatalf("auth: %v", err)
	}
	return conn
}

// dialQUIC opens a bare QUIC connection from a loopback socket, for bytes
// that no syncproto writer would produce.
func (p *quicsProc) dialQUIC(t *testing.T) *quic.Conn {
	t.Helper()
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	raddr, err := net.ResolveUDPAddr("udp4", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: udp}
	qc, err := tr.Dial(opCtx(t), raddr, p.tls(), &quic.Config{MaxIdleTimeout: 30 * time.Second})
	if err != nil {
		_ = udp.Close()
		t.Fatalf("quic dial: %v", err)
	}
	t.Cleanup(func() {
		_ = qc.CloseWithError(0, "")
		_ = tr.Close()
		_ = udp.Close()
	})
	return qc
}

// serverError reads the error frame the server answers on a bare stream.
func serverError(qs *quic.Stream) error {
	_ = qs.SetReadDeadline(time.Now().Add(opTimeout))
	ft, payload, err := syncproto.NewFrameReader(qs, 1<<20).ReadFrame()
	if err != nil {
		return fmt.Errorf("no error frame: %w", err)
	}
	if ft != syncproto.FrameError {
		return fmt.Errorf("got a %s frame, want an error frame", ft)
	}
	e, err := syncproto.DecodeErrorFrame(payload)
	if err != nil {
		return fmt.Errorf("bad error frame: %w", err)
	}
	return e
}

// pingQUIC runs a Ping transaction on a bare connection, proving that
// the connection survived what its other streams did.
func pingQUIC(t *testing.T, qc *quic.Conn) {
	t.Helper()
	qs, err := qc.OpenStreamSync(opCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	ping, err := proto.Marshal(&syncpb.Ping{Sent: 42})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := qs.Write(syncproto.AppendFrame(nil, syncproto.FramePing, ping)); err != nil {
		t.Fatal(err)
	}
	_ = qs.Close()
	_ = qs.SetReadDeadline(time.Now().Add(opTimeout))
	ft, payload, err := syncproto.NewFrameReader(qs, 1<<20).ReadFrame()
	if err != nil || ft != syncproto.FramePong {
		t.Fatalf("ping on the same connection: frame %s, %v", ft, err)
	}
	var pong syncpb.Pong
	if err := proto.Unmarshal(payload, &pong); err != nil || pong.GetSent() != 42 {
		t.Fatalf("pong %v: %v", &pong, err)
	}
}

// readAnswer reads a stream's first answer frame; an error frame comes back
// as the server's error.
func readAnswer(ctx context.Context, st *syncproto.Stream) (syncproto.FrameType, error) {
	ft, _, err := st.ReadFrame(ctx)
	return ft, err
}

// wireError returns the server's error in err's chain.
func wireError(t *testing.T, err error) *syncproto.Error {
	t.Helper()
	e, ok := errors.AsType[*syncproto.Error](err)
	if !ok {
		t.Fatalf("%v carries no error from the server", err)
	}
	return e
}

// singleChunk is a file of one raw chunk.
type singleChunk struct {
	data []byte
	id   cas.ID
}

func newSingleChunk(data []byte) singleChunk { return singleChunk{data: data, id: cas.Sum(data)} }

func (c singleChunk) chunk() syncproto.Chunk {
	return syncproto.Chunk{Codec: syncproto.ChunkRaw, ID: c.id, RawLen: len(c.data), Data: c.data}
}

func (c singleChunk) refs() []syncproto.ChunkRef {
	return []syncproto.ChunkRef{{ID: c.id, Size: uint32(len(c.data))}}
}

// proposal is a new-file please-sync of c at path.
func (c singleChunk) proposal(root, path string) *syncpb.ProposeRequest {
	return &syncpb.ProposeRequest{Root: root, Path: path, Hash: c.id[:], Size: int64(len(c.data)), Mode: 0o644,
		Mtime: time.Now().UnixNano()}
}

func TestSecurityUnknownClientToken(t *testing.T) {
	p := startQuicsAt(t, filepath.Join(t.TempDir(), "data"), false)
	id, token := p.register(t)
	cases := []struct{ name, id, token string }{
		{"wrong token", id, token + "x"},
		{"empty token", id, ""},
		{"unregistered uuid", uuid.NewString(), token},
		{"not a uuid", "../../etc/passwd", token},
	}
	var first *syncproto.Error
	for _, tc := range cases {
		c, err := syncproto.DialSession(opCtx(t), p.addr, p.tls(), syncproto.Config{}, tc.id, tc.token)
		if err == nil {
			_ = c.Close()
			t.Fatalf("%s: authenticated", tc.name)
		}
		if !errors.Is(err, syncproto.ErrUnauthenticated) {
			t.Fatalf("%s: %v, want ErrUnauthenticated", tc.name, err)
		}
		e := wireError(t, err)
		if first == nil {
			first = e
		} else if *e != *first {
			t.Errorf("%s: server says %q, for %q it said %q: the answer tells IDs apart", tc.name, e.Message, cases[0].name, first.Message)
		}
	}
	// The right token still works: the refusals above are about the token.
	c, err := syncproto.DialSession(opCtx(t), p.addr, p.tls(), syncproto.Config{}, id, token)
	if err != nil {
		t.Fatalf("right token: %v", err)
	}
	defer c.Close()
	if _, err := c.Ping(opCtx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestSecurityRootNotJoined(t *testing.T) {
	p := startQuicsAt(t, filepath.Join(t.TempDir(), "data"), false)
	a := newQicHome(t, "a")
	a.must("register", "--server", p.addr, "--password", serverPassword, "--fingerprint", p.fingerprint)
	a.must("root", "add", a.dir, "--root-password", rootPassword, "--name", "a")
	file := newSingleChunk([]byte("the content a outsider must not reach\n"))
	a.write("f.txt", file.data, 0o644)
	if s := a.sync(); s.FilesUploaded != 1 {
		t.Fatalf("a's upload: %+v", s)
	}

	b := p.session(t)
	ctx := opCtx(t)
	// b knows the real path, hash and chunk ID, and still reaches nothing.
	other := newSingleChunk([]byte("b's own bytes"))
	ops := []struct {
		name string
		do   func() error
	}{
		{"Heads", func() error { _, _, err := b.Heads(ctx, "a", 0); return err }},
		{"ChunkList", func() error { _, _, err := b.ChunkList(ctx, "a", "f.txt", file.id); return err }},
		{"GetChunks", func() error {
			return b.GetChunks(ctx, "a", []cas.ID{file.id}, func(syncproto.Chunk) error {
				return errors.New("a chunk was served to a non-member")
			})
		}},
		{"HaveChunks", func() error { _, err := b.HaveChunks(ctx, "a", []cas.ID{file.id}); return err }},
		{"PutChunks", func() error { return b.PutChunks(ctx, "a", []syncproto.Chunk{other.chunk()}) }},
		{"Propose", func() error { _, err := b.Propose(ctx, other.proposal("a", "f.txt"), other.refs()); return err }},
		{"LeaveRoot", func() error { return b.LeaveRoot(ctx, "a") }},
		{"Heads of a root that does not exist", func() error { _, _, err := b.Heads(ctx, "nope", 0); return err }},
	}
	for _, op := range ops {
		if err := op.do(); !errors.Is(err, syncproto.ErrForbidden) {
			t.Errorf("%s on a root b did not join: %v, want ErrForbidden", op.name, err)
		}
	}
	roots, err := b.ListRoots(ctx, false)
	if err != nil || len(roots) != 0 {
		t.Errorf("b's roots: %v, %v; want none", roots, err)
	}
	roots, err = b.ListRoots(ctx, true)
	if err != nil || len(roots) != 1 || roots[0].GetName() != "a" || roots[0].GetOwner() != "" ||
		len(roots[0].GetMembers()) != 0 || roots[0].GetSeq() != 0 {
		t.Errorf("remote roots for a non-member: %v, %v; want the name alone", roots, err)
	}
	if _, err := b.JoinRoot(ctx, "a", "wrong"); !errors.Is(err, syncproto.ErrBadPassword) {
		t.Errorf("join with a wrong password: %v", err)
	}
	if _, _, err := b.Heads(ctx, "a", 0); !errors.Is(err, syncproto.ErrForbidden) {
		t.Errorf("Heads after a refused join: %v", err)
	}

	if _, err := b.JoinRoot(ctx, "a", rootPassword); err != nil {
		t.Fatalf("join with the root password: %v", err)
	}
	heads, _, err := b.Heads(ctx, "a", 0)
	if err != nil || len(heads) != 1 || heads[0].GetPath() != "f.txt" || !bytes.Equal(heads[0].GetHash(), file.id[:]) {
		t.Fatalf("Heads once a member: %v, %v", heads, err)
	}

	// A second qic home that registered but did not join.
	c := newQicHome(t, "c")
	c.must("register", "--server", p.addr, "--password", serverPassword, "--fingerprint", p.fingerprint)
	if out := c.must("root", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("qic root list of a home that joined nothing: %s", out)
	}
	var remote []map[string]any
	out := c.must("root", "list", "--remote", "--json")
	if err := json.Unmarshal([]byte(out), &remote); err != nil {
		t.Fatalf("qic root list --remote --json printed %q: %v", out, err)
	}
	want := []map[string]any{{"name": "a", "seq": float64(0)}}
	if len(remote) != 1 || fmt.Sprint(remote) != fmt.Sprint(want) {
		t.Errorf("qic root list --remote for a non-member: %v, want the name alone %v", remote, want)
	}
	p.assertHealthy(t)
}

// hostilePaths are sync paths the server must refuse; every one names the
// file marker, so a write that got through can be found by name.
func hostilePaths(marker string) []string {
	m := marker
	return []string{
		"/" + m,
		"/tmp/" + m,
		"//" + m,
		"/etc/" + m,
		"..",
		"../" + m,
		"../../" + m,
		"../../../../../../../../tmp/" + m,
		"a/../" + m,
		"a/../../" + m,
		"a/b/../../../" + m,
		m + "/..",
		m + "/../..",
		".",
		"./" + m,
		"a/./" + m,
		m + "/.",
		m + "\x00",
		"a\x00/../" + m,
		"..\\" + m,
		"a\\..\\..\\" + m,
		"..\\..\\windows\\" + m,
		".\\" + m,
		`C:\` + m,
		`\\srv\share\` + m,
		"a//" + m,
		m + "/",
		"../" + m + "/",
		"",
		"/",
		m + "/" + strings.Repeat("x", 256),
		strings.Repeat("y", 256) + "/" + m,
		strings.Repeat("a/", 2048) + m[:1], // 4097 bytes
		m + "\n",
		"a\tb/" + m,
		"\x1b[31m" + m,
		m + "\x7f",
		"\x01../" + m,
	}
}

// invalidUTF8Paths cannot be sent in a well-formed message: proto3 string
// fields are UTF-8, so a Go client's encoder refuses them and the test
// encodes the request by hand.
func invalidUTF8Paths(marker string) []string {
	return []string{"\xff" + marker, marker + "/\xc3\x28", "a/\xed\xa0\x80/" + marker, "\xc0\xae\xc0\xae/" + marker}
}

// proposeRaw sends a ProposeRequest whose path field is appended to the
// encoded message by hand, bypassing the encoder's UTF-8 check, and
// returns the server's answer.
func proposeRaw(ctx context.Context, conn *syncproto.Conn, req *syncpb.ProposeRequest, path string, refs []syncproto.ChunkRef) error {
	req = proto.CloneOf(req)
	req.Path = ""
	req.ChunkCount = uint32(len(refs))
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return err
	}
	payload = protowire.AppendTag(payload, 2, protowire.BytesType)
	payload = protowire.AppendString(payload, path)
	st, err := conn.OpenStream(ctx)
	if err != nil {
		return err
	}
	if err := st.WriteFrame(ctx, syncproto.FrameProposeRequest, payload); err != nil {
		return err
	}
	// The server may refuse the request before reading the list: its
	// answer, read below, says why.
	_ = syncproto.WriteMessage(ctx, st, syncproto.EncodeChunkListPart(refs))
	_ = st.CloseWrite()
	var resp syncpb.CommitResponse
	return syncproto.ReadMessage(ctx, st, &resp)
}

// fileState is what a snapshot records of one file system entry.
type fileState struct {
	mode fs.FileMode
	size int64
}

// snapshot records every entry under dir except those under skip.
func snapshot(t *testing.T, dir, skip string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		size := info.Size()
		if d.IsDir() {
			size = 0
		}
		out[p] = fileState{info.Mode(), size}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// namesWith lists the entries under dir whose name contains marker.
func namesWith(t *testing.T, dir, marker string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if strings.Contains(d.Name(), marker) {
			found = append(found, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func topLevelNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSecurityHostilePaths(t *testing.T) {
	parent := t.TempDir()
	testRoot := filepath.Dir(parent) // the test's whole temporary tree
	dataDir := filepath.Join(parent, "data")
	marker := "pwned-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
	tmpBefore := topLevelNames(t, os.TempDir())
	before := snapshot(t, testRoot, dataDir)

	p := startQuicsAt(t, dataDir, true)
	id, token := p.register(t)
	c := p.sessionAs(t, id, token)
	ctx := opCtx(t)

	for _, name := range []string{"..", ".", "a/b", "/x", "", "../" + marker, `a\b`, "x\x00"} {
		if _, err := c.RegisterRoot(ctx, name, rootPassword); !errors.Is(err, syncproto.ErrInvalidPath) {
			t.Errorf("RegisterRoot(%q): %v, want ErrInvalidPath", name, err)
		}
	}
	if _, err := c.RegisterRoot(ctx, "r", rootPassword); err != nil {
		t.Fatal(err)
	}
	payload := newSingleChunk([]byte("payload " + marker + "\n"))
	if err := c.PutChunks(ctx, "r", []syncproto.Chunk{payload.chunk()}); err != nil {
		t.Fatal(err)
	}

	paths := hostilePaths(marker)
	if len(paths) < 30 {
		t.Fatalf("only %d hostile paths", len(paths))
	}
	for _, path := range paths {
		if err := relpath.Check(path); err == nil {
			t.Fatalf("%q is not hostile by relpath.Check", path)
		}
		_, err := c.Propose(ctx, payload.proposal("r", path), payload.refs())
		if !errors.Is(err, syncproto.ErrInvalidPath) {
			t.Errorf("Propose(%.80q): %v, want ErrInvalidPath", path, err)
		}
	}
	// A path that is not UTF-8 makes the message itself malformed (proto3
	// strings are UTF-8): the protocol layer refuses it as a bad request
	// before any path rule runs.
	raw := p.dialAuthed(t, id, token) // the same member, frames written by hand
	for _, path := range invalidUTF8Paths(marker) {
		err := proposeRaw(ctx, raw, payload.proposal("r", "x"), path, payload.refs())
		if !errors.Is(err, syncproto.ErrBadRequest) || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("Propose(%q) encoded by hand: %v, want ErrBadRequest for invalid UTF-8", path, err)
		}
	}
	// The same hand encoder with a hostile but valid UTF-8 path reaches
	// the path rule, so the check above is about UTF-8 alone.
	if err := proposeRaw(ctx, raw, payload.proposal("r", "x"), "../"+marker, payload.refs()); !errors.Is(err, syncproto.ErrInvalidPath) {
		t.Errorf("hand-encoded ../%s: %v, want ErrInvalidPath", marker, err)
	}

	// A valid path still commits and is materialized, so the checks
	// below look at a server that does write views.
	const valid = "ok/valid.txt"
	if _, err := c.Propose(ctx, payload.proposal("r", valid), payload.refs()); err != nil {
		t.Fatalf("Propose(%q): %v", valid, err)
	}
	syncDir := filepath.Join(dataDir, "sync")
	want := []string{"r/latest/" + valid}
	var files []string
	for deadline := time.Now().Add(10 * time.Second); ; {
		files = files[:0]
		err := filepath.WalkDir(syncDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, err := filepath.Rel(syncDir, path)
			files = append(files, filepath.ToSlash(rel))
			return err
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		if slices.Equal(files, want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !slices.Equal(files, want) {
		t.Fatalf("files under DATA/sync: %q, want %q", files, want)
	}
	if got, err := os.ReadFile(filepath.Join(syncDir, "r", "latest", "ok", "valid.txt")); err != nil || !bytes.Equal(got, payload.data) {
		t.Fatalf("view of %s: %q, %v", valid, got, err)
	}
	err := filepath.WalkDir(syncDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(syncDir, path); rel != "." && relpath.Check(filepath.ToSlash(rel)) != nil {
			t.Errorf("DATA/sync holds %q, not a valid sync path", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Nothing appeared outside the data directory.
	after := snapshot(t, testRoot, dataDir)
	for path, st := range after {
		if was, ok := before[path]; !ok || was != st {
			t.Errorf("outside the data dir, %s appeared or changed: %v (was %v, %t)", path, st, was, ok)
		}
	}
	if found := namesWith(t, testRoot, marker); len(found) != 0 {
		t.Errorf("files named after the payload: %q", found)
	}
	for _, name := range topLevelNames(t, os.TempDir()) {
		if strings.Contains(name, marker) && !slices.Contains(tmpBefore, name) {
			t.Errorf("%s appeared in %s", name, os.TempDir())
		}
	}
	for _, abs := range []string{"/" + marker, "/tmp/" + marker, "/etc/" + marker, filepath.Join(os.TempDir(), marker)} {
		if _, err := os.Lstat(abs); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s exists (or cannot be checked: %v)", abs, err)
		}
	}
	p.assertHealthy(t)
}

func TestSecurityMisbehavingClients(t *testing.T) {
	p := startQuicsAt(t, filepath.Join(t.TempDir(), "data"), false)
	good := p.session(t)
	if _, err := good.RegisterRoot(opCtx(t), "m", rootPassword); err != nil {
		t.Fatal(err)
	}

	t.Run("oversized frame header", func(t *testing.T) {
		qc := p.dialQUIC(t)
		qs, err := qc.OpenStreamSync(opCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		hdr := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(syncproto.FrameHeadsRequest)), 1<<62)
		if _, err := qs.Write(hdr); err != nil {
			t.Fatal(err)
		}
		if err := serverError(qs); !errors.Is(err, syncproto.ErrFrameTooLarge) {
			t.Fatalf("a frame of 2^62 bytes: %v, want ErrFrameTooLarge", err)
		}
		pingQUIC(t, qc)
	})

	t.Run("truncated frame", func(t *testing.T) {
		qc := p.dialQUIC(t)
		qs, err := qc.OpenStreamSync(opCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		frame := binary.AppendUvarint(binary.AppendUvarint(nil, uint64(syncproto.FrameHeadsRequest)), 100)
		if _, err := qs.Write(append(frame, make([]byte, 10)...)); err != nil {
			t.Fatal(err)
		}
		_ = qs.Close()
		if err := serverError(qs); !errors.Is(err, syncproto.ErrBadRequest) || !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("a frame cut short: %v, want ErrBadRequest (truncated)", err)
		}
		pingQUIC(t, qc)
	})

	t.Run("garbage bytes", func(t *testing.T) {
		qc := p.dialQUIC(t)
		for _, garbage := range [][]byte{
			bytes.Repeat([]byte{0xff}, 12),        // a varint longer than 64 bits
			{0x80, 0x00, 0x00},                    // a varint not in shortest form
			{0x00, 0x05, 'h', 'e', 'l', 'l', 'o'}, // frame type 0
			[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		} {
			qs, err := qc.OpenStreamSync(opCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := qs.Write(garbage); err != nil {
				t.Fatal(err)
			}
			_ = qs.Close()
			err = serverError(qs)
			var e *syncproto.Error
			if !errors.As(err, &e) || e.Code == syncproto.CodeNoError || e.Code == syncproto.CodeInternal {
				t.Fatalf("garbage %q: %v, want a refusal naming the client's mistake", garbage, err)
			}
		}
		pingQUIC(t, qc)
	})

	t.Run("unknown frame types", func(t *testing.T) {
		id, token := p.register(t)
		conn := p.dialAuthed(t, id, token)
		ctx := opCtx(t)
		for _, tc := range []struct {
			ft   syncproto.FrameType
			want error
		}{
			{0x05, syncproto.ErrUnsupported}, // reserved transport type
			{0x7e, syncproto.ErrUnsupported}, // message range, not in the schema
			{0x4000, syncproto.ErrUnsupported},
			{syncproto.FrameChunk, syncproto.ErrBadRequest},
			{syncproto.FrameAuthResponse, syncproto.ErrBadRequest}, // an answer, not a request
		} {
			st, err := conn.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.WriteFrame(ctx, tc.ft, []byte("??")); err != nil {
				t.Fatal(err)
			}
			_ = st.CloseWrite()
			if _, err := readAnswer(ctx, st); !errors.Is(err, tc.want) {
				t.Errorf("frame %s as a request: %v, want %v", tc.ft, err, tc.want)
			}
		}
		// The connection is still authenticated and serving.
		st, err := conn.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := syncproto.WriteMessage(ctx, st, &syncpb.ListRootsRequest{}); err != nil {
			t.Fatal(err)
		}
		_ = st.CloseWrite()
		if err := syncproto.ReadMessage(ctx, st, &syncpb.ListRootsResponse{}); err != nil {
			t.Fatalf("list roots after the unknown frames: %v", err)
		}
	})

	bad := p.session(t)
	if _, err := bad.JoinRoot(opCtx(t), "m", rootPassword); err != nil {
		t.Fatal(err)
	}

	t.Run("chunk that does not match its ID", func(t *testing.T) {
		ctx := opCtx(t)
		genuine := newSingleChunk([]byte("bytes that were really sent"))
		claimed := cas.Sum([]byte("bytes the ID claims"))
		lie := syncproto.Chunk{Codec: syncproto.ChunkRaw, ID: claimed, RawLen: len(genuine.data), Data: genuine.data}
		if err := bad.PutChunks(ctx, "m", []syncproto.Chunk{genuine.chunk(), lie}); !errors.Is(err, syncproto.ErrHashMismatch) {
			t.Fatalf("PutChunks with a lying ID: %v, want ErrHashMismatch", err)
		}
		have, err := good.HaveChunks(ctx, "m", []cas.ID{claimed})
		if err != nil || have[0] {
			t.Fatalf("the lying chunk is stored: %v, %v", have, err)
		}
	})

	t.Run("propose chunks never uploaded", func(t *testing.T) {
		never := newSingleChunk([]byte("never uploaded"))
		_, err := bad.Propose(opCtx(t), never.proposal("m", "ghost.txt"), never.refs())
		if !errors.Is(err, syncproto.ErrMissingChunks) {
			t.Fatalf("Propose of chunks never uploaded: %v, want ErrMissingChunks", err)
		}
		heads, _, err := good.Heads(opCtx(t), "m", 0)
		if err != nil || len(heads) != 0 {
			t.Fatalf("heads after a refused proposal: %v, %v", heads, err)
		}
	})

	t.Run("requests before AuthRequest", func(t *testing.T) {
		conn := p.dialRaw(t)
		ctx := opCtx(t)
		for _, req := range []proto.Message{
			&syncpb.HeadsRequest{Root: "m"},
			&syncpb.ListRootsRequest{Remote: true},
			&syncpb.RegisterRootRequest{Name: "sneaky", RootPassword: rootPassword},
			&syncpb.JoinRootRequest{Name: "m", RootPassword: rootPassword},
			&syncpb.HaveChunksRequest{Root: "m"},
			&syncpb.PutChunksRequest{Root: "m"},
			&syncpb.GetChunksRequest{Root: "m"},
			&syncpb.ChunkListRequest{Root: "m", Path: "x", Hash: make([]byte, 32)},
			&syncpb.ProposeRequest{Root: "m", Path: "x"},
			&syncpb.WatchRequest{},
		} {
			st, err := conn.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := syncproto.WriteMessage(ctx, st, req); err != nil {
				t.Fatal(err)
			}
			_ = st.CloseWrite()
			if _, err := readAnswer(ctx, st); !errors.Is(err, syncproto.ErrUnauthenticated) {
				t.Errorf("%T before AuthRequest: %v, want ErrUnauthenticated", req, err)
			}
		}
		roots, err := good.ListRoots(ctx, true)
		if err != nil || len(roots) != 1 {
			t.Fatalf("roots after unauthenticated requests: %v, %v", roots, err)
		}
	})

	t.Run("200 silent streams", func(t *testing.T) {
		// A stream exists for the server once a later stream of the same
		// connection carries a byte: writing one byte (half a frame
		// header) on the 50th stream of each connection opens all 50 on
		// the server's side, and none of them ever completes a frame.
		const conns, perConn = 4, 50
		var held []*quic.Stream
		for range conns {
			qc := p.dialQUIC(t)
			for i := range perConn {
				qs, err := qc.OpenStreamSync(opCtx(t))
				if err != nil {
					t.Fatalf("open stream %d: %v", i, err)
				}
				held = append(held, qs)
			}
			if _, err := held[len(held)-1].Write([]byte{byte(syncproto.FrameHeadsRequest)}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(100 * time.Millisecond) // the stalled streams reach the server

		// Another client's transactions all go through, each within a
		// bounded time.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := good.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
		fresh := newSingleChunk([]byte("written while 200 streams hang"))
		if err := good.PutChunks(ctx, "m", []syncproto.Chunk{fresh.chunk()}); err != nil {
			t.Fatalf("put chunks: %v", err)
		}
		if _, err := good.Propose(ctx, fresh.proposal("m", "during.txt"), fresh.refs()); err != nil {
			t.Fatalf("propose: %v", err)
		}
		heads, _, err := good.Heads(ctx, "m", 0)
		if err != nil || len(heads) != 1 || heads[0].GetPath() != "during.txt" {
			t.Fatalf("heads: %v, %v", heads, err)
		}
		if _, refs, err := good.ChunkList(ctx, "m", "during.txt", fresh.id); err != nil || len(refs) != 1 || refs[0].ID != fresh.id {
			t.Fatalf("chunk list: %v, %v", refs, err)
		}
		var got []byte
		if err := good.GetChunks(ctx, "m", []cas.ID{fresh.id}, func(c syncproto.Chunk) error {
			d, err := cas.Stored{Codec: cas.Codec(c.Codec), Data: c.Data, RawLen: c.RawLen}.Decode(c.ID)
			got = d
			return err
		}); err != nil || !bytes.Equal(got, fresh.data) {
			t.Fatalf("get chunks: %q, %v", got, err)
		}
		// A new device can still register and authenticate.
		p.session(t)
		for _, qs := range held {
			qs.CancelWrite(0)
			qs.CancelRead(0)
		}
	})

	t.Run("well-behaved qic after all that", func(t *testing.T) {
		a, b := newQicHome(t, "after-a"), newQicHome(t, "after-b")
		a.must("register", "--server", p.addr, "--password", serverPassword)
		b.must("register", "--server", p.addr, "--password", serverPassword)
		a.must("root", "add", a.dir, "--root-password", rootPassword, "--name", "after")
		b.must("root", "join", "after", b.dir, "--root-password", rootPassword)
		content := randomBytes(77, 300<<10)
		a.write("survivor.bin", content, 0o644)
		if s := a.sync(); s.FilesUploaded != 1 || s.ChunksSent == 0 {
			t.Fatalf("upload: %+v", s)
		}
		if s := b.sync(); s.FilesDownloaded != 1 {
			t.Fatalf("download: %+v", s)
		}
		got, err := os.ReadFile(filepath.Join(b.dir, "survivor.bin"))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("b's copy: %d bytes, %v", len(got), err)
		}
	})

	p.assertHealthy(t)
	if _, err := good.Ping(opCtx(t)); err != nil {
		t.Fatalf("the first client's session after everything: %v", err)
	}
}

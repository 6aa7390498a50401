package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/secret"
	"github.com/quic-s/quics/manifest"
	"github.com/quic-s/quics/syncproto"
	"github.com/quic-s/quics/syncproto/syncpb"
)

// MaxClientNameLen bounds a device name, in bytes.
const MaxClientNameLen = 255

// maxAddressLen is what the manifest keeps of a client's address.
const maxAddressLen = 255

// MaxReachablePerSession bounds the chunk IDs a session remembers from
// its ChunkList answers (see GetChunks); the oldest are forgotten first.
const MaxReachablePerSession = 1 << 18

// session is the server's state of one authenticated connection,
// syncproto.Session.State.
type session struct {
	client uuid.UUID
	remote net.Addr
	pins   *PinSet

	// revoked is set when the client is removed: every request of the
	// session fails from then on. It is written under mu (so Watch sees
	// it with ended) and read without it on every request.
	revoked atomic.Bool

	mu        sync.Mutex
	reachable boundedSet
	subs      map[*subscriber]struct{}
	ended     bool
	// roots caches memberRoot's answers for proposals, valid while the
	// manifest's RootsGeneration is the one they were read under.
	roots map[string]memberOf
}

// memberOf is a cached membership check: the root as read (its seq may
// have moved since) and the generation it was read under.
type memberOf struct {
	root manifest.Root
	gen  uint64
}

// sessionOf returns the server state of s for a request: every handler
// method passes here, so a revoked session is refused everywhere.
func sessionOf(s *syncproto.Session) (*session, error) {
	st, err := stateOf(s)
	if err != nil {
		return nil, err
	}
	if st.revoked.Load() {
		return nil, errClientRemoved
	}
	return st, nil
}

// errClientRemoved answers the requests of a removed client's sessions.
var errClientRemoved = fmt.Errorf("%w: the client was removed from the server", syncproto.ErrUnauthenticated)

// stateOf returns the server state of s, revoked or not.
func stateOf(s *syncproto.Session) (*session, error) {
	if s == nil {
		return nil, fmt.Errorf("%w: no session", syncproto.ErrUnauthenticated)
	}
	st, ok := s.State.(*session)
	if !ok || st == nil {
		return nil, fmt.Errorf("%w: session not opened by this server", syncproto.ErrUnauthenticated)
	}
	return st, nil
}

// detach ends the session's watches (with revoke, telling them why) and
// releases its pins. Requests already past sessionOf may pin again;
// SessionEnded releases those.
func (st *session) detach(s *Server, revoke bool) {
	st.mu.Lock()
	if revoke {
		st.revoked.Store(true)
	}
	st.ended = true
	subs := make([]*subscriber, 0, len(st.subs))
	for sub := range st.subs {
		subs = append(subs, sub)
	}
	clear(st.subs)
	st.mu.Unlock()
	var reason error
	if revoke {
		reason = errClientRemoved
	}
	for _, sub := range subs {
		s.broker.unsubscribe(sub, reason)
	}
	st.pins.ReleaseAll()
}

// chunkOrigin is the version a chunk list named chunks in: whom to ask
// for a chunk again when the store finds it damaged. One is shared by all
// the chunks of one ChunkList answer.
type chunkOrigin struct {
	root string
	path string
	hash cas.ID
}

// markReachable remembers that the session was given ids in the chunk list
// of origin.
func (st *session) markReachable(ids []cas.ID, origin *chunkOrigin) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, id := range ids {
		st.reachable.add(id, origin)
	}
}

func (st *session) isReachable(id cas.ID) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.reachable.has(id)
}

// originOf returns the version whose chunk list last named id.
func (st *session) originOf(id cas.ID) (*chunkOrigin, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	o := st.reachable.ids[id]
	return o, o != nil
}

// boundedSet is a set of chunk IDs, each with the version it was last
// named in, that forgets the oldest insertions beyond max. The origins
// are shared per chunk list, so they cost a pointer per ID.
type boundedSet struct {
	max   int
	ids   map[cas.ID]*chunkOrigin
	order []cas.ID
	head  int // order[head:] are the live insertions, oldest first
}

func newBoundedSet(limit int) boundedSet {
	return boundedSet{max: limit, ids: make(map[cas.ID]*chunkOrigin)}
}

func (b *boundedSet) has(id cas.ID) bool { _, ok := b.ids[id]; return ok }

// add inserts id, or moves its origin to the latest chunk list naming it
// (the one a download most likely follows) without renewing its age.
func (b *boundedSet) add(id cas.ID, origin *chunkOrigin) {
	if b.has(id) {
		b.ids[id] = origin
		return
	}
	b.ids[id] = origin
	b.order = append(b.order, id)
	for len(b.ids) > b.max {
		delete(b.ids, b.order[b.head])
		b.head++
	}
	if b.head > 1024 && b.head > len(b.order)/2 {
		b.order = append(b.order[:0:0], b.order[b.head:]...)
		b.head = 0
	}
}

// RegisterClient registers a new device: the server password must match,
// the client's ID must be a fresh UUID, and the answer carries the token
// the device presents from then on (only its hash is stored).
func (s *Server) RegisterClient(ctx context.Context, remote net.Addr, req *syncpb.RegisterClientRequest) (*syncpb.RegisterClientResponse, error) {
	// The password first, so that nothing is learned about client IDs
	// without it.
	if err := s.verifyServerPassword(ctx, req.GetServerPassword()); err != nil {
		return nil, err
	}
	id, err := parseClientID(req.GetClientId())
	if err != nil {
		return nil, err
	}
	name := req.GetName()
	if err := checkClientName(name); err != nil {
		return nil, err
	}
	token, err := secret.NewToken()
	if err != nil {
		return nil, fmt.Errorf("server: register client %s: %w", id, err)
	}
	release, err := acquire(ctx, s.tokenSlots)
	if err != nil {
		return nil, err
	}
	defer release()
	_, err = s.db.RegisterClient(ctx, manifest.NewClient{ID: id, Name: name, Token: token, Address: addressOf(remote)})
	switch {
	case errors.Is(err, manifest.ErrExists):
		return nil, fmt.Errorf("%w: client %s is already registered", syncproto.ErrExists, id)
	case err != nil:
		return nil, fmt.Errorf("server: register client %s: %w", id, err)
	}
	s.log.Info("server: client registered", "client", id, "name", name, "remote", addressOf(remote))
	return &syncpb.RegisterClientResponse{Token: token}, nil
}

func (s *Server) verifyServerPassword(ctx context.Context, password string) error {
	if len(password) > secret.MaxSecretLen {
		return fmt.Errorf("%w: server password", syncproto.ErrBadPassword)
	}
	release, err := acquire(ctx, s.passwordSlots)
	if err != nil {
		return err
	}
	defer release()
	ok, err := secret.Verify(password, *s.passwordHash.Load())
	if err != nil {
		return fmt.Errorf("server: verify server password: %w", err)
	}
	if !ok {
		return fmt.Errorf("%w: server password", syncproto.ErrBadPassword)
	}
	return nil
}

// parseClientID accepts a UUID in its canonical 36-character form only,
// so one device has one spelling; the nil UUID is reserved for the server.
func parseClientID(s string) (uuid.UUID, error) {
	id, err := uuid.Parse(s)
	if err != nil || len(s) != 36 || id == uuid.Nil {
		return uuid.Nil, fmt.Errorf("%w: client id %.40q is not a UUID", syncproto.ErrBadRequest, s)
	}
	return id, nil
}

func checkClientName(name string) error {
	if len(name) > MaxClientNameLen {
		return fmt.Errorf("%w: client name of %d bytes, at most %d", syncproto.ErrBadRequest, len(name), MaxClientNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: client name is not UTF-8", syncproto.ErrBadRequest)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: client name %q has a control character", syncproto.ErrBadRequest, name)
		}
	}
	return nil
}

func addressOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	s := a.String()
	if len(s) > maxAddressLen {
		s = s[:maxAddressLen]
	}
	return strings.ToValidUTF8(s, "")
}

// Authenticate checks a client's ID and token and opens a session. Every
// failure is the same ErrUnauthenticated, and an unknown ID costs as much
// time as a wrong token, so the answer does not reveal which IDs exist.
func (s *Server) Authenticate(ctx context.Context, remote net.Addr, req *syncpb.AuthRequest) (*syncproto.Session, error) {
	refuse := fmt.Errorf("%w: unknown client or wrong token", syncproto.ErrUnauthenticated)
	if len(req.GetToken()) > secret.MaxSecretLen {
		return nil, refuse
	}
	release, err := acquire(ctx, s.tokenSlots)
	if err != nil {
		return nil, err
	}
	defer release()
	id, err := parseClientID(req.GetClientId())
	if err != nil {
		_, _ = secret.Verify(req.GetToken(), s.dummyTokenHash)
		return nil, refuse
	}
	_, err = s.db.AuthenticateClient(ctx, id, req.GetToken())
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		_, _ = secret.Verify(req.GetToken(), s.dummyTokenHash)
		return nil, refuse
	case errors.Is(err, manifest.ErrBadCredentials):
		return nil, refuse
	case err != nil:
		return nil, fmt.Errorf("server: authenticate client %s: %w", id, err)
	}
	st := &session{
		client:    id,
		remote:    remote,
		pins:      s.pins.NewSet(),
		reachable: newBoundedSet(MaxReachablePerSession),
		subs:      make(map[*subscriber]struct{}),
	}
	// Listed before the client record is read again: RemoveClient deletes
	// the record and then revokes the listed sessions, so a session either
	// is listed in time to be revoked or finds the record gone below.
	s.attach(st)
	err = s.db.TouchClient(ctx, id, addressOf(remote))
	switch {
	case errors.Is(err, manifest.ErrNotFound):
		s.unlist(st)
		st.detach(s, true)
		return nil, refuse
	case err != nil:
		// Last-seen bookkeeping must not lock a client out.
		s.log.Warn("server: record client address", "client", id, "err", err)
	}
	s.log.Debug("server: session opened", "client", id, "remote", addressOf(remote))
	return &syncproto.Session{ClientID: id.String(), Remote: remote, State: st}, nil
}

// SessionEnded releases the session's pins and ends its watches.
func (s *Server) SessionEnded(sess *syncproto.Session) {
	st, err := stateOf(sess)
	if err != nil {
		return
	}
	s.unlist(st)
	st.detach(s, false)
	s.log.Debug("server: session ended", "client", st.client)
}

// attach lists a live session.
func (s *Server) attach(st *session) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	s.live[st] = struct{}{}
	s.liveByClient[st.client]++
}

// unlist forgets a session; it may be gone already.
func (s *Server) unlist(st *session) {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if _, ok := s.live[st]; !ok {
		return
	}
	delete(s.live, st)
	if s.liveByClient[st.client] <= 1 {
		delete(s.liveByClient, st.client)
	} else {
		s.liveByClient[st.client]--
	}
}

// ConnectedClients returns how many live sessions each connected client
// has.
func (s *Server) ConnectedClients() map[uuid.UUID]int {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	out := make(map[uuid.UUID]int, len(s.liveByClient))
	for id, n := range s.liveByClient {
		out[id] = n
	}
	return out
}

// liveSessions is the number of live sessions, for the metrics.
func (s *Server) liveSessions() int {
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	return len(s.live)
}

// revokeClient revokes and forgets every live session of client and
// returns how many there were.
func (s *Server) revokeClient(client uuid.UUID) int {
	s.liveMu.Lock()
	var revoked []*session
	for st := range s.live {
		if st.client == client {
			revoked = append(revoked, st)
			delete(s.live, st)
		}
	}
	delete(s.liveByClient, client)
	s.liveMu.Unlock()
	for _, st := range revoked {
		st.detach(s, true)
	}
	return len(revoked)
}

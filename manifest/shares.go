package manifest

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/manifest/internal/recordpb"
)

// Share links: a public URL that downloads one file of a root without a
// client, a limited number of times or until a date. The URL carries a
// random token; the manifest keeps only the token's SHA-256, so reading
// the database gives no working link. People name a link by its ShareID,
// a separate random value.

// Errors of share links.
var (
	// ErrShareGone: the link exists but serves nothing any more: its
	// downloads are used up, it expired, its root was removed or its
	// creator left the root.
	ErrShareGone = errors.New("manifest: share link gone")
	// ErrShareMoved: CountShareDownload found the link serving another
	// content than the caller prepared (the head changed in between).
	ErrShareMoved = errors.New("manifest: share link content changed")
	// ErrNotMember: a client that is not a member of a root tried to share
	// one of its files.
	ErrNotMember = errors.New("manifest: not a member of the root")
)

// ShareIDLen is the size of a ShareID: 48 random bits, plenty to tell a
// server's links apart (a collision is retried at creation).
const ShareIDLen = 6

// ShareID names a share link for people (list, stop). It is random and
// says nothing about the link's token, root or path.
type ShareID [ShareIDLen]byte

// String returns the lower-case hex form people type.
func (id ShareID) String() string { return hex.EncodeToString(id[:]) }

// ParseShareID reads the hex form of a ShareID.
func ParseShareID(s string) (ShareID, error) {
	var id ShareID
	if len(s) != 2*ShareIDLen {
		return id, fmt.Errorf("%w: share id %.40q: want %d hex digits", ErrInvalid, s, 2*ShareIDLen)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: share id %.40q: %v", ErrInvalid, s, err)
	}
	return id, nil
}

// TokenHash is the SHA-256 of a link's token, under which the link is
// stored. A plain hash is enough here, unlike client tokens: link tokens
// are 256 random bits, so nothing is gained by slowing down a guess, and
// a download must find its link with one lookup.
type TokenHash [sha256.Size]byte

// HashShareToken returns the TokenHash of a link's token.
func HashShareToken(token string) TokenHash { return sha256.Sum256([]byte(token)) }

// SharePin is the version a link serves when it does not follow the head.
type SharePin struct {
	Seq   uint64
	Hash  cas.ID
	Size  uint64
	Mode  uint32
	MTime time.Time
}

// Share is a link to one file of a root.
type Share struct {
	ID     ShareID
	Token  TokenHash
	Root   RootID
	Path   string
	Client uuid.UUID // the member who created it
	// Created is when; Expires is when it stops working (zero: never).
	Created time.Time
	Expires time.Time
	// MaxDownloads bounds Downloads (0: no bound).
	MaxDownloads uint64
	Downloads    uint64
	LastDownload time.Time
	// Pin is the version served; nil serves the file's head at download
	// time.
	Pin *SharePin
}

// ShareState says whether a link still serves.
type ShareState string

// Link states.
const (
	ShareActive    ShareState = "active"
	ShareExhausted ShareState = "exhausted" // MaxDownloads reached
	ShareExpired   ShareState = "expired"
	// ShareRevoked: the root was removed or the link's creator is no
	// longer a member of it.
	ShareRevoked ShareState = "revoked"
)

// StateAt is sh's state at now as far as the record alone tells: never
// ShareRevoked, which depends on the root and its members (ListShares
// reports that).
func (sh Share) StateAt(now time.Time) ShareState {
	switch {
	case sh.MaxDownloads > 0 && sh.Downloads >= sh.MaxDownloads:
		return ShareExhausted
	case !sh.Expires.IsZero() && !now.Before(sh.Expires):
		return ShareExpired
	}
	return ShareActive
}

// NewShare is what CreateShare needs.
type NewShare struct {
	Token  TokenHash
	Root   RootID
	Path   string
	Client uuid.UUID
	// Expires is zero for a link that never expires.
	Expires      time.Time
	MaxDownloads uint64
	// PinSeq pins the version with that seq; 0 follows the head.
	PinSeq uint64
}

// CreateShare stores a new link with a fresh ShareID, in one transaction
// that checks what the link relies on: the root exists and ns.Client is a
// member (else ErrNotMember, or ErrNotFound for the root), and the file has
// content now — the pinned version, which must not be a deletion, or for a
// link that follows the head, a head that is not a deletion (else
// ErrNotFound). A token already stored is ErrExists.
//
// Reading the pinned version in the transaction fences the link against
// retention: a concurrent DropVersions that deletes it makes one of the
// two transactions conflict, so a link never pins a version that is gone.
func (db *DB) CreateShare(ctx context.Context, ns NewShare) (Share, error) {
	if err := validPath(ns.Path); err != nil {
		return Share{}, fmt.Errorf("manifest: create share in root %d: %w", ns.Root, err)
	}
	if ns.Client == uuid.Nil {
		return Share{}, fmt.Errorf("manifest: create share: %w: no client", ErrInvalid)
	}
	var out Share
	err := db.update(ctx, "create share", func(txn *badger.Txn) error {
		if _, err := getRoot(txn, ns.Root); err != nil {
			return err
		}
		member, err := exists(txn, memberKey(ns.Root, ns.Client))
		if err != nil {
			return err
		}
		if !member {
			return fmt.Errorf("%w: client %s, root %d", ErrNotMember, ns.Client, ns.Root)
		}
		sh := Share{
			Token: ns.Token, Root: ns.Root, Path: ns.Path, Client: ns.Client, Created: db.now(),
			Expires: ns.Expires, MaxDownloads: ns.MaxDownloads,
		}
		if ns.PinSeq != 0 {
			val, err := getValue(txn, versionKey(ns.Root, ns.Path, ns.PinSeq),
				fmt.Sprintf("version %d of %q in root %d", ns.PinSeq, ns.Path, ns.Root))
			if err != nil {
				return err
			}
			v, err := decodeVersion(val)
			if err != nil {
				return fmt.Errorf("version %d of %q in root %d: %w", ns.PinSeq, ns.Path, ns.Root, err)
			}
			if v.Deleted {
				return fmt.Errorf("%w: version %d of %q in root %d is a deletion", ErrNotFound, v.Seq, ns.Path, ns.Root)
			}
			sh.Pin = &SharePin{Seq: v.Seq, Hash: v.Hash, Size: v.Size, Mode: v.Mode, MTime: v.MTime}
		} else {
			h, found, err := getHead(txn, ns.Root, ns.Path)
			if err != nil {
				return err
			}
			if !found || h.Deleted {
				return fmt.Errorf("%w: file %q in root %d", ErrNotFound, ns.Path, ns.Root)
			}
		}
		if taken, err := exists(txn, shareKey(ns.Token)); err != nil || taken {
			if err == nil {
				err = fmt.Errorf("%w: share token", ErrExists)
			}
			return err
		}
		for {
			if _, err := rand.Read(sh.ID[:]); err != nil {
				return fmt.Errorf("manifest: share id: %w", err)
			}
			taken, err := exists(txn, shareIDKey(sh.ID))
			if err != nil {
				return err
			}
			if !taken {
				break
			}
		}
		if err := putShare(txn, sh); err != nil {
			return err
		}
		if err := txn.Set(shareIDKey(sh.ID), sh.Token[:]); err != nil {
			return fmt.Errorf("manifest: write share %s: %w", sh.ID, err)
		}
		out = sh
		return nil
	})
	return out, err
}

func putShare(txn *badger.Txn, sh Share) error {
	val, err := encodeShare(sh)
	if err != nil {
		return err
	}
	if err := txn.Set(shareKey(sh.Token), val); err != nil {
		return fmt.Errorf("manifest: write share %s: %w", sh.ID, err)
	}
	return nil
}

func getShare(txn *badger.Txn, token TokenHash) (Share, error) {
	val, err := getValue(txn, shareKey(token), "share link")
	if err != nil {
		return Share{}, err
	}
	return decodeShare(token, val)
}

func tokenOfShare(txn *badger.Txn, id ShareID) (TokenHash, error) {
	val, err := getValue(txn, shareIDKey(id), "share %s", id)
	if err != nil {
		return TokenHash{}, err
	}
	if len(val) != len(TokenHash{}) {
		return TokenHash{}, fmt.Errorf("%w: share id %s maps to %d bytes", ErrCorrupt, id, len(val))
	}
	return TokenHash(val), nil
}

// Share returns the link named id.
func (db *DB) Share(ctx context.Context, id ShareID) (Share, error) {
	var out Share
	err := db.view(ctx, "get share", func(txn *badger.Txn) error {
		token, err := tokenOfShare(txn, id)
		if err != nil {
			return err
		}
		out, err = getShare(txn, token)
		return err
	})
	return out, err
}

// ShareByToken returns the link stored under token.
func (db *DB) ShareByToken(ctx context.Context, token TokenHash) (Share, error) {
	var out Share
	err := db.view(ctx, "get share", func(txn *badger.Txn) error {
		var err error
		out, err = getShare(txn, token)
		return err
	})
	return out, err
}

// ListShares calls fn with every link and its state at now, from one
// snapshot, in no particular order. An error from fn stops the walk.
func (db *DB) ListShares(ctx context.Context, now time.Time, fn func(Share, ShareState) error) error {
	return db.view(ctx, "list shares", func(txn *badger.Txn) error {
		return scanShares(ctx, txn, func(sh Share) error {
			st, err := shareState(txn, sh, now)
			if err != nil {
				return err
			}
			return fn(sh, st)
		})
	})
}

func scanShares(ctx context.Context, txn *badger.Txn, fn func(Share) error) error {
	return scan(ctx, txn, []byte{prefixShare}, false, func(key, val []byte) error {
		token, err := parseShareKey(key)
		if err != nil {
			return err
		}
		sh, err := decodeShare(token, val)
		if err != nil {
			return err
		}
		return fn(sh)
	})
}

// shareState is sh's state at now, ShareRevoked included. Reading the root
// and the membership through txn also makes a read-write txn conflict
// with their removal.
func shareState(txn *badger.Txn, sh Share, now time.Time) (ShareState, error) {
	if st := sh.StateAt(now); st != ShareActive {
		return st, nil
	}
	if _, err := getRoot(txn, sh.Root); errors.Is(err, ErrNotFound) {
		return ShareRevoked, nil
	} else if err != nil {
		return "", err
	}
	member, err := exists(txn, memberKey(sh.Root, sh.Client))
	if err != nil {
		return "", err
	}
	if !member {
		return ShareRevoked, nil
	}
	return ShareActive, nil
}

// RemoveShare deletes the link named id and returns it. check, if not nil,
// sees the link inside the transaction and may refuse with an error,
// which RemoveShare returns (only the creator or an admin may stop one).
func (db *DB) RemoveShare(ctx context.Context, id ShareID, check func(Share) error) (Share, error) {
	var out Share
	err := db.update(ctx, "remove share", func(txn *badger.Txn) error {
		token, err := tokenOfShare(txn, id)
		if err != nil {
			return err
		}
		sh, err := getShare(txn, token)
		if err != nil {
			return err
		}
		if check != nil {
			if err := check(sh); err != nil {
				return err
			}
		}
		if err := txn.Delete(shareKey(token)); err != nil {
			return fmt.Errorf("manifest: remove share %s: %w", id, err)
		}
		if err := txn.Delete(shareIDKey(id)); err != nil {
			return fmt.Errorf("manifest: remove share %s: %w", id, err)
		}
		out = sh
		return nil
	})
	return out, err
}

// ShareContent is what a link serves at one moment.
type ShareContent struct {
	Share Share
	Hash  cas.ID
	Size  uint64
	Mode  uint32
	MTime time.Time
	// Chunks is the content's chunk list, empty for the empty file.
	Chunks []Chunk
}

// ResolveShare returns what the link stored under token serves at now,
// without counting a download. An unknown token is ErrNotFound, and so is
// a link that follows the head of a file deleted now; a link used up,
// expired or revoked is ErrShareGone.
func (db *DB) ResolveShare(ctx context.Context, token TokenHash, now time.Time) (ShareContent, error) {
	var out ShareContent
	err := db.view(ctx, "resolve share", func(txn *badger.Txn) error {
		var err error
		out, err = resolveShare(txn, token, now)
		return err
	})
	return out, err
}

// CountShareDownload counts one download of the link stored under token,
// if it serves content want at now, and returns what it serves. The check
// and the count are one transaction, so concurrent downloads never exceed
// MaxDownloads: of two that race for the last one, the second finds the
// link used up (ErrShareGone). If the link now serves other content (a
// head that moved since ResolveShare), nothing is counted and the error is
// ErrShareMoved. The other errors are ResolveShare's.
func (db *DB) CountShareDownload(ctx context.Context, token TokenHash, now time.Time, want cas.ID) (ShareContent, error) {
	var out ShareContent
	err := db.update(ctx, "count share download", func(txn *badger.Txn) error {
		c, err := resolveShare(txn, token, now)
		if err != nil {
			return err
		}
		if c.Hash != want {
			return fmt.Errorf("%w: share %s serves %s, not %s", ErrShareMoved, c.Share.ID, c.Hash.Short(), want.Short())
		}
		c.Share.Downloads++
		c.Share.LastDownload = now
		if err := putShare(txn, c.Share); err != nil {
			return err
		}
		out = c
		return nil
	})
	return out, err
}

func resolveShare(txn *badger.Txn, token TokenHash, now time.Time) (ShareContent, error) {
	sh, err := getShare(txn, token)
	if err != nil {
		return ShareContent{}, err
	}
	st, err := shareState(txn, sh, now)
	if err != nil {
		return ShareContent{}, err
	}
	if st != ShareActive {
		return ShareContent{}, fmt.Errorf("%w: share %s is %s", ErrShareGone, sh.ID, st)
	}
	c := ShareContent{Share: sh}
	if p := sh.Pin; p != nil {
		c.Hash, c.Size, c.Mode, c.MTime = p.Hash, p.Size, p.Mode, p.MTime
	} else {
		h, found, err := getHead(txn, sh.Root, sh.Path)
		if err != nil {
			return ShareContent{}, err
		}
		if !found || h.Deleted {
			return ShareContent{}, fmt.Errorf("%w: share %s: file %q in root %d is deleted", ErrNotFound, sh.ID, sh.Path, sh.Root)
		}
		c.Hash, c.Size, c.Mode, c.MTime = h.Hash, h.Size, h.Mode, h.MTime
	}
	if c.Chunks, err = chunkListTxn(txn, c.Hash, c.Size); err != nil {
		return ShareContent{}, fmt.Errorf("share %s: %w", sh.ID, err)
	}
	return c, nil
}

// chunkListTxn reads the chunk list of a content of size bytes.
func chunkListTxn(txn *badger.Txn, hash cas.ID, size uint64) ([]Chunk, error) {
	if !needsList(size, false) {
		return []Chunk{}, nil
	}
	val, err := getValue(txn, chunkListKey(hash), "chunk list %s", hash)
	if err != nil {
		return nil, err
	}
	chunks, err := decodeChunkList(val)
	if err != nil {
		return nil, fmt.Errorf("chunk list %s: %w", hash, err)
	}
	return chunks, nil
}

// Garbage collection. A link pinned to a version keeps that content alive
// while the link can still serve it, even after retention dropped the
// version: gc asks for these contents along with the versions'.

// PinnedShareContents returns the contents that active pinned links serve
// at now.
func (db *DB) PinnedShareContents(ctx context.Context, now time.Time) (cas.IDSet, error) {
	out := cas.NewIDSet()
	err := db.view(ctx, "pinned share contents", func(txn *badger.Txn) error {
		return pinnedShares(ctx, txn, now, func(sh Share) error {
			out.Insert(sh.Pin.Hash)
			return nil
		})
	})
	return out, err
}

// PinnedSharesTxn runs inside a caller's transaction (gc's deletions, next
// to RefsSince): it calls fn with the content and chunk list of every
// link active at now that pins a version with content. A link created after
// txn's snapshot needs no report: it pins a version that existed in that
// snapshot, which RefsSince or the walk before it reported.
func (db *DB) PinnedSharesTxn(txn *badger.Txn, now time.Time, fn func(Ref, []Chunk) error) error {
	return pinnedShares(context.Background(), txn, now, func(sh Share) error {
		chunks, err := chunkListTxn(txn, sh.Pin.Hash, sh.Pin.Size)
		if err != nil {
			return fmt.Errorf("share %s: %w", sh.ID, err)
		}
		return fn(Ref{Root: sh.Root, Path: sh.Path, Seq: sh.Pin.Seq, Hash: sh.Pin.Hash, Size: sh.Pin.Size}, chunks)
	})
}

// pinnedShares calls fn with every active link that pins a non-empty
// content.
func pinnedShares(ctx context.Context, txn *badger.Txn, now time.Time, fn func(Share) error) error {
	return scanShares(ctx, txn, func(sh Share) error {
		if sh.Pin == nil || !needsList(sh.Pin.Size, false) {
			return nil
		}
		st, err := shareState(txn, sh, now)
		if err != nil || st != ShareActive {
			return err
		}
		return fn(sh)
	})
}

// Share records.

func encodeShare(sh Share) ([]byte, error) {
	if err := sh.validate(); err != nil {
		return nil, fmt.Errorf("manifest: share %s: %w", sh.ID, err)
	}
	m := &recordpb.Share{
		Id:                   sh.ID[:],
		Root:                 uint64(sh.Root),
		Path:                 []byte(sh.Path),
		Client:               sh.Client[:],
		CreatedUnixNano:      nanos(sh.Created),
		ExpiresUnixNano:      nanos(sh.Expires),
		MaxDownloads:         sh.MaxDownloads,
		Downloads:            sh.Downloads,
		LastDownloadUnixNano: nanos(sh.LastDownload),
	}
	if p := sh.Pin; p != nil {
		m.PinnedSeq, m.PinnedHash, m.PinnedSize = p.Seq, p.Hash[:], p.Size
		m.PinnedMode, m.PinnedMtimeUnixNano = p.Mode, nanos(p.MTime)
	}
	return marshal("share", m)
}

func decodeShare(token TokenHash, b []byte) (Share, error) {
	var m recordpb.Share
	if err := unmarshal("share", b, maxRecordLen, &m); err != nil {
		return Share{}, err
	}
	if len(m.Id) != ShareIDLen {
		return Share{}, fmt.Errorf("%w: share id of %d bytes, want %d", ErrCorrupt, len(m.Id), ShareIDLen)
	}
	client, err := decodeUUID("share client", m.Client)
	if err != nil {
		return Share{}, err
	}
	sh := Share{
		ID: ShareID(m.Id), Token: token, Root: RootID(m.Root), Path: string(m.Path), Client: client,
		Created: fromNanos(m.CreatedUnixNano), Expires: fromNanos(m.ExpiresUnixNano),
		MaxDownloads: m.MaxDownloads, Downloads: m.Downloads, LastDownload: fromNanos(m.LastDownloadUnixNano),
	}
	if m.PinnedSeq != 0 || len(m.PinnedHash) != 0 {
		hash, err := decodeID("share pinned hash", m.PinnedHash)
		if err != nil {
			return Share{}, err
		}
		sh.Pin = &SharePin{Seq: m.PinnedSeq, Hash: hash, Size: m.PinnedSize, Mode: m.PinnedMode, MTime: fromNanos(m.PinnedMtimeUnixNano)}
	}
	if err := sh.validate(); err != nil {
		return Share{}, fmt.Errorf("%w: share %s: %w", ErrCorrupt, sh.ID, err)
	}
	return sh, nil
}

func (sh Share) validate() error {
	switch {
	case sh.Root == 0:
		return fmt.Errorf("%w: root id 0", ErrInvalid)
	case sh.Client == uuid.Nil:
		return fmt.Errorf("%w: no client", ErrInvalid)
	}
	if err := validPath(sh.Path); err != nil {
		return err
	}
	if p := sh.Pin; p != nil {
		return checkContent(p.Seq, p.Hash, p.Size, false)
	}
	return nil
}

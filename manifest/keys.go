package manifest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
)

// This file is the whole key schema of package manifest. Keys are binary:
// one prefix byte, then fixed-width big-endian integers (so byte order is
// numeric order and scans come back sorted), then at most one
// variable-length field, a path, which is last or terminated by NUL.
//
// Layout (RootID = 8 bytes BE, ClientID = 16-byte UUID, Seq = 8 bytes BE):
//
//	0x10 "schema"                       → uint32 BE schema version
//	0x11 ClientID                       → Client record
//	0x12 root name                      → RootID (8 bytes BE)
//	0x13 RootID                         → Root record
//	0x14 "next-root-id"                 → uint64 BE, the next RootID to hand out
//	0x15 RootID path                    → Head record
//	0x16 RootID path 0x00 Seq           → Version record
//	0x17 content hash (32 bytes)        → ChunkList record (global, once per hash)
//	0x18 RootID path                    → Conflict record
//	0x19 RootID Seq                     → FeedEntry record (path changed at Seq)
//	0x1A RootID ClientID                → Membership record
//	0x1B ClientID RootID                → empty (reverse membership index)
//	0x1C "server"                       → ServerSettings record
//	0x1D SHA-256(link token) (32 bytes) → Share record
//	0x1E ShareID (6 bytes)              → SHA-256(link token) (index of 0x1D)
//
// Paths never contain NUL, so in a version key the first NUL after the
// RootID ends the path: the range prefix+RootID+path+0x00 holds exactly
// that path's versions, never those of a longer path sharing its bytes.

// Prefixes 0x01 to 0x0F belong to package cas, which keeps its chunk index
// in the same badger database; manifest never writes there.
const (
	casPrefixFirst byte = 0x01
	casPrefixLast       = cas.KeyPrefixLast // 0x0F
)

// Key prefixes owned by package manifest.
const (
	prefixSchema        byte = 0x10
	prefixClient        byte = 0x11
	prefixRootName      byte = 0x12
	prefixRoot          byte = 0x13
	prefixRootMeta      byte = 0x14
	prefixHead          byte = 0x15
	prefixVersion       byte = 0x16
	prefixChunkList     byte = 0x17
	prefixConflict      byte = 0x18
	prefixFeed          byte = 0x19
	prefixMember        byte = 0x1A
	prefixClientMembers byte = 0x1B
	prefixSettings      byte = 0x1C
	prefixShare         byte = 0x1D
	prefixShareID       byte = 0x1E
)

// prefixTable lists every manifest prefix with a name, for the uniqueness
// test and for tools that report per-prefix statistics.
var prefixTable = []struct {
	Prefix byte
	Name   string
}{
	{prefixSchema, "schema"},
	{prefixClient, "client"},
	{prefixRootName, "root-name"},
	{prefixRoot, "root"},
	{prefixRootMeta, "root-meta"},
	{prefixHead, "head"},
	{prefixVersion, "version"},
	{prefixChunkList, "chunk-list"},
	{prefixConflict, "conflict"},
	{prefixFeed, "feed"},
	{prefixMember, "member"},
	{prefixClientMembers, "client-member"},
	{prefixSettings, "settings"},
	{prefixShare, "share"},
	{prefixShareID, "share-id"},
}

// lastPrefix is the highest manifest prefix.
func lastPrefix() byte {
	var last byte
	for _, p := range prefixTable {
		last = max(last, p.Prefix)
	}
	return last
}

// SchemaVersion is the layout this code reads and writes. Open refuses a
// database written by a newer version.
const SchemaVersion uint32 = 1

var (
	schemaKey     = []byte{prefixSchema, 's', 'c', 'h', 'e', 'm', 'a'}
	nextRootIDKey = []byte{prefixRootMeta, 'n', 'e', 'x', 't', '-', 'r', 'o', 'o', 't', '-', 'i', 'd'}
	settingsKey   = []byte{prefixSettings, 's', 'e', 'r', 'v', 'e', 'r'}
)

const (
	rootIDLen   = 8
	seqLen      = 8
	clientIDLen = 16
)

// MaxPathLen bounds a path in bytes; a key must stay far below badger's
// 65000-byte limit.
const MaxPathLen = 4096

// MaxRootNameLen bounds a root name in bytes.
const MaxRootNameLen = 255

func appendUint64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func clientKey(id uuid.UUID) []byte { return append([]byte{prefixClient}, id[:]...) }

func rootNameKey(name string) []byte { return append([]byte{prefixRootName}, name...) }

func rootKey(id RootID) []byte { return appendUint64([]byte{prefixRoot}, uint64(id)) }

// rootScope is prefix+RootID, the range of one root's keys under prefix.
func rootScope(prefix byte, id RootID) []byte {
	return appendUint64([]byte{prefix}, uint64(id))
}

func headKey(root RootID, path string) []byte {
	k := make([]byte, 0, 1+rootIDLen+len(path))
	k = append(k, prefixHead)
	k = appendUint64(k, uint64(root))
	return append(k, path...)
}

// versionScope is the range holding exactly path's versions.
func versionScope(root RootID, path string) []byte {
	k := make([]byte, 0, 1+rootIDLen+len(path)+1+seqLen)
	k = append(k, prefixVersion)
	k = appendUint64(k, uint64(root))
	k = append(k, path...)
	return append(k, 0)
}

func versionKey(root RootID, path string, seq uint64) []byte {
	return appendUint64(versionScope(root, path), seq)
}

func chunkListKey(hash cas.ID) []byte { return append([]byte{prefixChunkList}, hash[:]...) }

func conflictKey(root RootID, path string) []byte {
	k := make([]byte, 0, 1+rootIDLen+len(path))
	k = append(k, prefixConflict)
	k = appendUint64(k, uint64(root))
	return append(k, path...)
}

func feedKey(root RootID, seq uint64) []byte {
	k := make([]byte, 0, 1+rootIDLen+seqLen)
	k = append(k, prefixFeed)
	k = appendUint64(k, uint64(root))
	return appendUint64(k, seq)
}

func memberKey(root RootID, client uuid.UUID) []byte {
	k := make([]byte, 0, 1+rootIDLen+clientIDLen)
	k = append(k, prefixMember)
	k = appendUint64(k, uint64(root))
	return append(k, client[:]...)
}

func clientMemberKey(client uuid.UUID, root RootID) []byte {
	k := make([]byte, 0, 1+clientIDLen+rootIDLen)
	k = append(k, prefixClientMembers)
	k = append(k, client[:]...)
	return appendUint64(k, uint64(root))
}

func shareKey(token TokenHash) []byte { return append([]byte{prefixShare}, token[:]...) }

func shareIDKey(id ShareID) []byte { return append([]byte{prefixShareID}, id[:]...) }

func parseShareKey(key []byte) (TokenHash, error) {
	if len(key) != 1+len(TokenHash{}) || key[0] != prefixShare {
		return TokenHash{}, corruptKey("share", key)
	}
	return TokenHash(key[1:]), nil
}

// validPath checks what the key schema needs of a path: not empty, no NUL
// (NUL ends the path in version keys), at most MaxPathLen bytes. Whether a
// path is safe to materialize on disk is the view writer's concern.
func validPath(path string) error {
	switch {
	case path == "":
		return fmt.Errorf("%w: empty path", ErrInvalid)
	case len(path) > MaxPathLen:
		return fmt.Errorf("%w: path of %d bytes, at most %d", ErrInvalid, len(path), MaxPathLen)
	case bytes.IndexByte([]byte(path), 0) >= 0:
		return fmt.Errorf("%w: path %q contains NUL", ErrInvalid, path)
	}
	return nil
}

// validRootName checks a root name: non-empty UTF-8 without NUL, at most
// MaxRootNameLen bytes.
func validRootName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty root name", ErrInvalid)
	case len(name) > MaxRootNameLen:
		return fmt.Errorf("%w: root name of %d bytes, at most %d", ErrInvalid, len(name), MaxRootNameLen)
	case !utf8.ValidString(name) || bytes.IndexByte([]byte(name), 0) >= 0:
		return fmt.Errorf("%w: root name %q is not UTF-8 without NUL", ErrInvalid, name)
	}
	return nil
}

// Key decoders. They read keys found by scans; a key that does not parse is
// damage, reported as ErrCorrupt with the key.

func corruptKey(kind string, key []byte) error {
	return fmt.Errorf("%w: %s key %x", ErrCorrupt, kind, key)
}

// parseRootPathKey decodes prefix+RootID+path (head and conflict keys).
func parseRootPathKey(prefix byte, key []byte) (RootID, string, error) {
	if len(key) < 1+rootIDLen+1 || key[0] != prefix {
		return 0, "", corruptKey("root/path", key)
	}
	root := RootID(binary.BigEndian.Uint64(key[1:]))
	path := string(key[1+rootIDLen:])
	if validPath(path) != nil {
		return 0, "", corruptKey("root/path", key)
	}
	return root, path, nil
}

func parseVersionKey(key []byte) (RootID, string, uint64, error) {
	const fixed = 1 + rootIDLen + 1 + seqLen
	if len(key) < fixed+1 || key[0] != prefixVersion || key[len(key)-seqLen-1] != 0 {
		return 0, "", 0, corruptKey("version", key)
	}
	root := RootID(binary.BigEndian.Uint64(key[1:]))
	path := string(key[1+rootIDLen : len(key)-seqLen-1])
	seq := binary.BigEndian.Uint64(key[len(key)-seqLen:])
	if validPath(path) != nil {
		return 0, "", 0, corruptKey("version", key)
	}
	return root, path, seq, nil
}

func parseFeedKey(key []byte) (RootID, uint64, error) {
	if len(key) != 1+rootIDLen+seqLen || key[0] != prefixFeed {
		return 0, 0, corruptKey("feed", key)
	}
	return RootID(binary.BigEndian.Uint64(key[1:])), binary.BigEndian.Uint64(key[1+rootIDLen:]), nil
}

func parseMemberKey(key []byte) (RootID, uuid.UUID, error) {
	if len(key) != 1+rootIDLen+clientIDLen || key[0] != prefixMember {
		return 0, uuid.UUID{}, corruptKey("member", key)
	}
	return RootID(binary.BigEndian.Uint64(key[1:])), uuid.UUID(key[1+rootIDLen:]), nil
}

func parseClientMemberKey(key []byte) (uuid.UUID, RootID, error) {
	if len(key) != 1+clientIDLen+rootIDLen || key[0] != prefixClientMembers {
		return uuid.UUID{}, 0, corruptKey("client-member", key)
	}
	return uuid.UUID(key[1 : 1+clientIDLen]), RootID(binary.BigEndian.Uint64(key[1+clientIDLen:])), nil
}

func parseRootKey(key []byte) (RootID, error) {
	if len(key) != 1+rootIDLen || key[0] != prefixRoot {
		return 0, corruptKey("root", key)
	}
	return RootID(binary.BigEndian.Uint64(key[1:])), nil
}

func decodeUint64(kind string, key, val []byte) (uint64, error) {
	if len(val) != 8 {
		return 0, fmt.Errorf("%w: %s value under key %x has %d bytes, want 8", ErrCorrupt, kind, key, len(val))
	}
	return binary.BigEndian.Uint64(val), nil
}

package client

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"
)

// This file is the whole key schema of the local state (see the package
// documentation, "On-disk format"). The database belongs to one client, so
// the prefixes share nothing with the server's.
//
//	0x01 "schema"              → uint32 BE schema version
//	0x02 root                  → root record
//	0x03 root 0x00 path        → file record
//	0x04 root 0x00 path        → chunk list of the file's local content
//	0x05 root 0x00 path        → empty: the path has a pending change
//	0x06 root 0x00 path        → chunk list of the base version, kept while
//	                             the local content differs from it
//
// Neither root names nor paths contain NUL, so the NUL after the root name
// ends it: root+0x00 is a prefix of exactly that root's keys.

// SchemaVersion is the version of the key schema and record formats that
// this package reads and writes.
const SchemaVersion = 1

const (
	prefixSchema  byte = 0x01
	prefixRoot    byte = 0x02
	prefixFile    byte = 0x03
	prefixChunks  byte = 0x04
	prefixPending byte = 0x05
	prefixBase    byte = 0x06
)

// fileKeyPrefixes are the prefixes of every per-file key.
var fileKeyPrefixes = []byte{prefixFile, prefixChunks, prefixPending, prefixBase}

var schemaKey = []byte{prefixSchema, 's', 'c', 'h', 'e', 'm', 'a'}

// MaxRootNameLen bounds a root name in bytes, as the server does.
const MaxRootNameLen = 255

// checkRootName applies the server's root name rule plus nothing: the name
// only has to be storable in a key.
func checkRootName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidRootName)
	case len(name) > MaxRootNameLen:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidRootName, len(name), MaxRootNameLen)
	case !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: %q is not UTF-8 without NUL", ErrInvalidRootName, name)
	}
	return nil
}

func rootKey(root string) []byte {
	return append([]byte{prefixRoot}, root...)
}

// pathPrefix is the prefix of every key of kind p under root.
func pathPrefix(p byte, root string) []byte {
	return appendPathPrefix(make([]byte, 0, 2+len(root)), p, root)
}

func appendPathPrefix(k []byte, p byte, root string) []byte {
	k = append(k, p)
	k = append(k, root...)
	return append(k, 0)
}

func pathKey(p byte, root, path string) []byte {
	return append(appendPathPrefix(make([]byte, 0, 2+len(root)+len(path)), p, root), path...)
}

// pathFromKey returns the path of a key built by pathKey with prefix pre.
func pathFromKey(pre, key []byte) (string, error) {
	if !bytes.HasPrefix(key, pre) || len(key) == len(pre) {
		return "", fmt.Errorf("%w: key %q", ErrCorrupt, key)
	}
	return string(key[len(pre):]), nil
}

func encodeSchema(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

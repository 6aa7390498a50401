package manifest

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/quic-s/quics/cas"
)

func TestPrefixTable(t *testing.T) {
	seen := make(map[byte]string)
	for _, p := range prefixTable {
		if other, dup := seen[p.Prefix]; dup {
			t.Errorf("prefix %#x used by %q and %q", p.Prefix, other, p.Name)
		}
		seen[p.Prefix] = p.Name
		if p.Prefix >= casPrefixFirst && p.Prefix <= casPrefixLast {
			t.Errorf("prefix %#x (%s) is in the range %#x-%#x reserved for cas", p.Prefix, p.Name, casPrefixFirst, casPrefixLast)
		}
		if p.Prefix < 0x10 {
			t.Errorf("prefix %#x (%s) is below 0x10", p.Prefix, p.Name)
		}
		if p.Prefix == '!' {
			t.Errorf("prefix %#x (%s) collides with badger's internal \"!badger!\" keys", p.Prefix, p.Name)
		}
		if p.Name == "" {
			t.Errorf("prefix %#x has no name", p.Prefix)
		}
	}
	// The reserved range covers what cas actually uses.
	if casPrefixLast != 0x0F {
		t.Errorf("cas range ends at %#x, want 0x0F", casPrefixLast)
	}
	for _, p := range []byte{cas.KeyPrefixIndex, cas.KeyPrefixPack, cas.KeyPrefixMeta} {
		if p < casPrefixFirst || p > casPrefixLast {
			t.Errorf("cas prefix %#x is outside the reserved range", p)
		}
		if name, clash := seen[p]; clash {
			t.Errorf("cas prefix %#x is also manifest's %q", p, name)
		}
	}
	// Every key builder must use a prefix from the table.
	id := uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")
	for _, k := range [][]byte{
		schemaKey, nextRootIDKey, clientKey(id), rootNameKey("r"), rootKey(1), headKey(1, "p"),
		versionKey(1, "p", 1), chunkListKey(cas.ID{}), conflictKey(1, "p"), feedKey(1, 1),
		memberKey(1, id), clientMemberKey(id, 1), settingsKey,
	} {
		if _, ok := seen[k[0]]; !ok {
			t.Errorf("key %x has prefix %#x missing from prefixTable", k, k[0])
		}
	}
}

// TestKeyLayout pins the on-disk layout documented in doc.go.
func TestKeyLayout(t *testing.T) {
	id := uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")
	for _, tc := range []struct {
		name string
		key  []byte
		want string
	}{
		{"schema", schemaKey, "10" + hex.EncodeToString([]byte("schema"))},
		{"next root id", nextRootIDKey, "14" + hex.EncodeToString([]byte("next-root-id"))},
		{"client", clientKey(id), "11" + "00112233445566778899aabbccddeeff"},
		{"root name", rootNameKey("docs"), "12" + "646f6373"},
		{"root", rootKey(0x0102), "13" + "0000000000000102"},
		{"head", headKey(7, "a/b"), "15" + "0000000000000007" + "612f62"},
		{"version", versionKey(7, "a/b", 0x0a0b), "16" + "0000000000000007" + "612f62" + "00" + "0000000000000a0b"},
		{"chunk list", chunkListKey(cas.ID{31: 0xff}), "17" + strings.Repeat("00", 31) + "ff"},
		{"conflict", conflictKey(7, "a"), "18" + "0000000000000007" + "61"},
		{"feed", feedKey(7, 9), "19" + "0000000000000007" + "0000000000000009"},
		{"member", memberKey(7, id), "1a" + "0000000000000007" + "00112233445566778899aabbccddeeff"},
		{"client member", clientMemberKey(id, 7), "1b" + "00112233445566778899aabbccddeeff" + "0000000000000007"},
		{"settings", settingsKey, "1c" + hex.EncodeToString([]byte("server"))},
	} {
		if got := hex.EncodeToString(tc.key); got != tc.want {
			t.Errorf("%s key = %s, want %s", tc.name, got, tc.want)
		}
	}
}

// adversarialPaths are pairs that share bytes in every way a naive
// encoding would confuse.
var adversarialPaths = [][2]string{
	{"a", "a\x01"},
	{"a", "a/"},
	{"a", "ab"},
	{"a", "a\xff"},
	{"a/b", "a/b/c"},
	{"a", "a\x01\x02\x03\x04\x05\x06\x07\x08"}, // looks like a seq after "a"
	{"a\x01", "a\x01\x01"},
	{"\x01", "\x01\x01"},
	{"dir", "dir\x7f"},
	{"x y", "x"},
}

func TestVersionScopesDoNotOverlap(t *testing.T) {
	for _, pair := range adversarialPaths {
		a, b := pair[0], pair[1]
		if a == b {
			t.Fatalf("bad fixture: %q twice", a)
		}
		for _, seq := range []uint64{0, 1, 0x0100, 1<<64 - 1} {
			if bytes.HasPrefix(versionKey(1, b, seq), versionScope(1, a)) {
				t.Errorf("version key of %q seq %d falls in the scope of %q", b, seq, a)
			}
			if bytes.HasPrefix(versionKey(1, a, seq), versionScope(1, b)) {
				t.Errorf("version key of %q seq %d falls in the scope of %q", a, seq, b)
			}
		}
		if bytes.Equal(headKey(1, a), headKey(1, b)) {
			t.Errorf("head keys of %q and %q are equal", a, b)
		}
	}
	// Roots are namespaces: the same path in two roots never shares a scope.
	if bytes.HasPrefix(versionKey(2, "a", 1), versionScope(1, "a")) || bytes.HasPrefix(headKey(2, "a"), rootScope(prefixHead, 1)) {
		t.Error("root 2's keys fall in root 1's scope")
	}
}

// TestAdversarialPathsInDB commits every pair and checks that each path
// sees only its own versions, head and conflict.
func TestAdversarialPathsInDB(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	owner := e.client(t, "owner")
	root := e.root(t, "adv", owner)
	var paths []string
	seen := map[string]bool{}
	for _, pair := range adversarialPaths {
		for _, p := range pair {
			if !seen[p] {
				seen[p] = true
				paths = append(paths, p)
			}
		}
	}
	// Two versions each, interleaved so seqs of different paths alternate.
	first := make(map[string]Version)
	for _, p := range paths {
		first[p] = mustCommit(t, e.db, proposal(root.ID, p, nil, newContent("1:"+p), owner.ID))
	}
	second := make(map[string]Version)
	for _, p := range paths {
		base := first[p]
		second[p] = mustCommit(t, e.db, proposal(root.ID, p, &base, newContent("2:"+p), owner.ID))
		if _, err := e.db.AddCandidate(ctx, root.ID, p, Candidate{Kind: CandidateServer, Hash: base.Hash, Size: base.Size}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range paths {
		vs, err := e.db.Versions(ctx, root.ID, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(vs) != 2 || vs[0].Seq != first[p].Seq || vs[1].Seq != second[p].Seq || vs[1].Hash != newContent("2:"+p).hash {
			t.Errorf("versions of %q = %+v, want seqs %d, %d", p, vs, first[p].Seq, second[p].Seq)
		}
		h, err := e.db.Head(ctx, root.ID, p)
		if err != nil || h.Seq != second[p].Seq {
			t.Errorf("head of %q = %+v, %v; want seq %d", p, h, err, second[p].Seq)
		}
		c, err := e.db.Conflict(ctx, root.ID, p)
		if err != nil || len(c.Candidates) != 1 || c.Candidates[0].Hash != first[p].Hash {
			t.Errorf("conflict of %q = %+v, %v", p, c, err)
		}
	}
	n := 0
	err := e.db.ListHeads(ctx, root.ID, func(path string, h Head) error {
		n++
		if h.Seq != second[path].Seq {
			t.Errorf("ListHeads: %q has seq %d, want %d", path, h.Seq, second[path].Seq)
		}
		return nil
	})
	if err != nil || n != len(paths) {
		t.Errorf("ListHeads saw %d heads, %v; want %d", n, err, len(paths))
	}
}

func TestValidPath(t *testing.T) {
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"a", true},
		{"a/b/c.txt", true},
		{"\x01\xff weird but allowed", true},
		{"../escape is the view writer's business", true},
		{strings.Repeat("x", MaxPathLen), true},
		{"", false},
		{"a\x00b", false},
		{"\x00", false},
		{strings.Repeat("x", MaxPathLen+1), false},
	} {
		err := validPath(tc.path)
		if (err == nil) != tc.ok {
			t.Errorf("validPath(%.20q) = %v, want ok=%v", tc.path, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("validPath(%.20q) = %v, want ErrInvalid", tc.path, err)
		}
	}
}

func TestValidRootName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"docs", true},
		{"Fotos 2024 ✓", true},
		{strings.Repeat("r", MaxRootNameLen), true},
		{"", false},
		{"a\x00b", false},
		{"\xff\xfe", false},
		{strings.Repeat("r", MaxRootNameLen+1), false},
	} {
		if err := validRootName(tc.name); (err == nil) != tc.ok {
			t.Errorf("validRootName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// FuzzParseKeys feeds arbitrary bytes to every key decoder: none may
// panic, and a key that decodes must encode back to the same bytes.
func FuzzParseKeys(f *testing.F) {
	id := uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")
	for _, k := range [][]byte{
		headKey(1, "a/b"), versionKey(1, "a/b", 2), versionKey(1<<63, "a\x01", 1<<40), conflictKey(3, "x"),
		feedKey(4, 5), memberKey(6, id), clientMemberKey(id, 7), rootKey(8),
		{prefixVersion, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
	} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		if root, path, err := parseRootPathKey(prefixHead, key); err == nil {
			if !bytes.Equal(headKey(root, path), key) {
				t.Errorf("head key %x re-encodes as %x", key, headKey(root, path))
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("parseRootPathKey(%x): %v is not ErrCorrupt", key, err)
		}
		if root, path, seq, err := parseVersionKey(key); err == nil {
			if !bytes.Equal(versionKey(root, path, seq), key) {
				t.Errorf("version key %x re-encodes as %x", key, versionKey(root, path, seq))
			}
		} else if !errors.Is(err, ErrCorrupt) {
			t.Errorf("parseVersionKey(%x): %v is not ErrCorrupt", key, err)
		}
		if root, seq, err := parseFeedKey(key); err == nil && !bytes.Equal(feedKey(root, seq), key) {
			t.Errorf("feed key %x re-encodes as %x", key, feedKey(root, seq))
		}
		if root, client, err := parseMemberKey(key); err == nil && !bytes.Equal(memberKey(root, client), key) {
			t.Errorf("member key %x re-encodes as %x", key, memberKey(root, client))
		}
		if client, root, err := parseClientMemberKey(key); err == nil && !bytes.Equal(clientMemberKey(client, root), key) {
			t.Errorf("client member key %x re-encodes as %x", key, clientMemberKey(client, root))
		}
		if root, err := parseRootKey(key); err == nil && !bytes.Equal(rootKey(root), key) {
			t.Errorf("root key %x re-encodes as %x", key, rootKey(root))
		}
	})
}

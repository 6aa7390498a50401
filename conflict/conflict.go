package conflict

import (
	"path"
	"strconv"
	"strings"

	"github.com/quic-s/quics/cas"
)

// Head is what the decision needs of a file's current version.
type Head struct {
	// Seq is the root sequence at which the head was committed.
	Seq uint64
	// Hash is the content hash; zero for a deletion.
	Hash    cas.ID
	Deleted bool
	// Mode holds the file's permission bits; ignored for a deletion.
	Mode uint32
}

// Proposal is what the decision needs of a proposed version.
type Proposal struct {
	// BaseSeq and BaseHash name the version the proposal started from;
	// both zero for a file the proposer believes new.
	BaseSeq  uint64
	BaseHash cas.ID
	// Hash is the proposed content hash; zero for a deletion.
	Hash    cas.ID
	Deleted bool
	// Mode holds the proposed permission bits; ignored for a deletion.
	Mode uint32
	// LaterInHistory says that the proposed content (or a deletion, for a
	// deletion) is a version of the file committed after the proposal's
	// base that is not the head: the server accepted it, and then moved
	// on. The server computes it from the file's history.
	LaterInHistory bool
}

// Decision is the outcome of Decide.
type Decision uint8

// Decisions. The zero value is not a decision, so a forgotten assignment
// cannot pass for one.
const (
	// FastForward: the proposal builds on the head; commit it as the new
	// head.
	FastForward Decision = iota + 1
	// Converged: the proposal's content is the head's; nothing to do.
	Converged
	// Conflict: the head moved on since the proposal's base; keep the
	// proposal as a candidate for a person to decide.
	Conflict
	// Superseded: the proposal's content is already in the file's
	// history, after its base, and was replaced since (a resolution kept
	// another side, or someone edited on top of it). Nothing to keep:
	// the proposer takes the head.
	Superseded
)

func (d Decision) String() string {
	switch d {
	case FastForward:
		return "fast-forward"
	case Converged:
		return "converged"
	case Conflict:
		return "conflict"
	case Superseded:
		return "superseded"
	}
	return "Decision(" + strconv.Itoa(int(d)) + ")"
}

// Decide applies the rules of the package documentation to a proposal
// against the file's head; head is nil when the path has never been
// committed.
func Decide(head *Head, p Proposal) Decision {
	if head == nil {
		if p.BaseSeq == 0 && p.BaseHash.IsZero() {
			return FastForward
		}
		return Conflict
	}
	same := sameContent(*head, p)
	if same && (head.Deleted || head.Mode == p.Mode) {
		return Converged
	}
	if p.BaseSeq == head.Seq && p.BaseHash == head.Hash {
		return FastForward
	}
	if same {
		// Only the mode differs, from a stale base: the contents agree,
		// and the proposer will take the head's mode when it pulls.
		return Converged
	}
	if p.LaterInHistory {
		return Superseded
	}
	return Conflict
}

// sameContent compares content only: a deletion equals any deletion, and
// the hash of a deletion is ignored.
func sameContent(h Head, p Proposal) bool {
	if h.Deleted || p.Deleted {
		return h.Deleted == p.Deleted
	}
	return h.Hash == p.Hash
}

// ServerSide is the side name of the server's candidate, the head the
// server held when the conflict arose.
const ServerSide = "server"

// Bounds on the parts of a candidate name, so that the name stays far
// below the 255-byte limit of common file systems.
const (
	maxSideLen = 64
	maxExtLen  = 32
)

// CandidateName names the file that holds one side of a conflict: the
// side's name, a dash, the first 8 hex digits of its content hash, and
// origName's extension. side is ServerSide or a client's name; a client
// name is reduced to ASCII letters, digits, '.', '_' and '-' (anything else
// becomes '_'), cut to 64 bytes, stripped of leading and trailing dots and dashes,
// and replaced by "client" if nothing is
// left. A deletion (zero hash) is named "deleted" instead of a hash. An
// extension longer than 32 bytes, or one that is not made of safe
// characters, is dropped rather than mangled.
func CandidateName(side string, hash cas.ID, origName string) string {
	name := sanitizeSide(side)
	digits := "deleted"
	if !hash.IsZero() {
		digits = hash.Short()
	}
	return name + "-" + digits + extension(origName)
}

// VersionName names the file that holds an exported version of a file:
// "v", the version's seq, a dash, the first 8 hex digits of its content
// hash, and origName's extension (as CandidateName keeps it):
//
//	report.txt, seq 12 → v12-1a2b3c4d.txt
func VersionName(seq uint64, hash cas.ID, origName string) string {
	digits := "deleted"
	if !hash.IsZero() {
		digits = hash.Short()
	}
	return "v" + strconv.FormatUint(seq, 10) + "-" + digits + extension(origName)
}

func sanitizeSide(side string) string {
	var b strings.Builder
	for i := 0; i < len(side) && b.Len() < maxSideLen; i++ {
		c := side[i]
		if safeByte(c) {
			b.WriteByte(c)
			continue
		}
		// One underscore per character, not per byte of its encoding.
		if c < 0x80 || c >= 0xC0 {
			b.WriteByte('_')
		}
	}
	// Dots and dashes at the ends would make hidden files or look like
	// command-line options.
	s := strings.Trim(b.String(), ".-")
	if s == "" {
		return "client"
	}
	return s
}

func safeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// extension returns origName's extension (".txt") if it is short and made
// of safe characters, else "". A leading dot does not start an extension:
// ".bashrc" has none.
func extension(origName string) string {
	base := path.Base(origName)
	dot := strings.LastIndexByte(base, '.')
	if dot <= 0 || dot == len(base)-1 {
		return ""
	}
	ext := base[dot:]
	if len(ext) > maxExtLen {
		return ""
	}
	for i := 1; i < len(ext); i++ {
		if !safeByte(ext[i]) || ext[i] == '.' {
			return ""
		}
	}
	return ext
}

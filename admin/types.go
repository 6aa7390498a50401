package admin

import "time"

// The JSON bodies of the API. Field names are the contract scripts rely on:
// add fields freely, never rename or remove one (docs/admin-api.md).

// ClientInfo is a registered device.
type ClientInfo struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Registered  time.Time  `json:"registered"`
	LastSeen    *time.Time `json:"last_seen,omitempty"`
	LastAddress string     `json:"last_address,omitempty"`
	// Roots are the names of the roots the client is a member of.
	Roots []string `json:"roots"`
	// Connected is true while the client has a session with the running
	// server; Sessions counts them (always 0 offline).
	Connected bool `json:"connected"`
	Sessions  int  `json:"sessions"`
}

// RootInfo is a sync root with its members and what it holds.
type RootInfo struct {
	ID        uint64    `json:"id"`
	Name      string    `json:"name"`
	Owner     string    `json:"owner"`
	OwnerName string    `json:"owner_name,omitempty"`
	Created   time.Time `json:"created"`
	// Seq is the root's logical clock: the seq of its latest version.
	Seq       uint64       `json:"seq"`
	Retention string       `json:"retention"`
	Members   []MemberInfo `json:"members"`
	// Files and Bytes count the files that exist now (deleted ones are
	// Deleted); Versions and HistoryBytes everything history keeps.
	Files        int    `json:"files"`
	Deleted      int    `json:"deleted"`
	Bytes        uint64 `json:"bytes"`
	Versions     int    `json:"versions"`
	HistoryBytes uint64 `json:"history_bytes"`
	Conflicts    int    `json:"conflicts"`
}

// MemberInfo is a client's membership in a root.
type MemberInfo struct {
	ID     string    `json:"id"`
	Name   string    `json:"name,omitempty"`
	Joined time.Time `json:"joined"`
}

// FileInfo is the head version of a file in a root.
type FileInfo struct {
	Path string `json:"path"`
	Seq  uint64 `json:"seq"`
	// Hash is the BLAKE3-256 of the content in hex; "" for a deleted file.
	Hash       string    `json:"hash"`
	Size       uint64    `json:"size"`
	Mode       uint32    `json:"mode"`
	MTime      time.Time `json:"mtime"`
	Deleted    bool      `json:"deleted"`
	Client     string    `json:"client"`
	ClientName string    `json:"client_name,omitempty"`
}

// VersionInfo is one entry of a file's history, oldest first.
type VersionInfo struct {
	Seq        uint64    `json:"seq"`
	Hash       string    `json:"hash"`
	Size       uint64    `json:"size"`
	Mode       uint32    `json:"mode"`
	MTime      time.Time `json:"mtime"`
	Client     string    `json:"client"`
	ClientName string    `json:"client_name,omitempty"`
	// Time is when the server accepted the version.
	Time    time.Time `json:"time"`
	Deleted bool      `json:"deleted"`
}

// VersionResponse describes the server answering.
type VersionResponse struct {
	Version     string    `json:"version"`
	DataDir     string    `json:"data_dir"`
	Fingerprint string    `json:"fingerprint"`
	Running     bool      `json:"running"`
	Started     time.Time `json:"started,omitzero"`
}

// Done is the answer of an action that has nothing else to say.
type Done struct {
	OK bool `json:"ok"`
}

// Requests. Fields named in an endpoint's path travel there; the others go
// in the query string (GET, DELETE) or the JSON body (POST, PUT).

// NoRequest is the request of endpoints that take nothing.
type NoRequest struct{}

// RootRequest names a root.
type RootRequest struct {
	Root string `json:"root"`
}

// FileRequest names a file in a root.
type FileRequest struct {
	Root string `json:"root"`
	Path string `json:"path"`
}

// ClientRequest names a client by ID or by name.
type ClientRequest struct {
	Client string `json:"client"`
}

// PasswordRequest carries a new server password.
type PasswordRequest struct {
	Password string `json:"password"`
}

// ConflictInfo is an unresolved conflict and its sides.
type ConflictInfo struct {
	Root       string          `json:"root"`
	Path       string          `json:"path"`
	Candidates []CandidateInfo `json:"candidates"`
}

// CandidateInfo is one side of a conflict.
type CandidateInfo struct {
	// Side is "server" (the head when the conflict arose) or "client".
	Side       string    `json:"side"`
	Client     string    `json:"client"`
	ClientName string    `json:"client_name,omitempty"`
	Hash       string    `json:"hash"`
	Size       uint64    `json:"size"`
	Mode       uint32    `json:"mode"`
	MTime      time.Time `json:"mtime"`
	Deleted    bool      `json:"deleted"`
	BaseSeq    uint64    `json:"base_seq"`
	Created    time.Time `json:"created"`
	// Name is the side's file name in DATA/sync/<root>/conflict/<path>/.
	Name string `json:"name"`
}

// HeadResult is a file's head after a resolution or a restore.
type HeadResult struct {
	Root string `json:"root"`
	Path string `json:"path"`
	// Committed is false when nothing changed (the head already had the
	// content asked for).
	Committed bool      `json:"committed"`
	Seq       uint64    `json:"seq"`
	Hash      string    `json:"hash"`
	Size      uint64    `json:"size"`
	Deleted   bool      `json:"deleted"`
	Time      time.Time `json:"time"`
}

// ExportResult lists the files a history export wrote.
type ExportResult struct {
	Files []string `json:"files"`
}

// ViewsResult reports a views rebuild.
type ViewsResult struct {
	Roots    int `json:"roots"`
	Latest   int `json:"latest"`
	Conflict int `json:"conflict"`
	Removed  int `json:"removed"`
}

// ConflictsRequest optionally narrows a conflict listing to one root.
type ConflictsRequest struct {
	Root string `json:"root,omitempty"`
}

// ResolveRequest keeps one side of the conflict on a file.
type ResolveRequest struct {
	Root string `json:"root"`
	Path string `json:"path"`
	// Keep is "server", a client name or ID, or a hash prefix of at least
	// 8 hex digits.
	Keep string `json:"keep"`
}

// VersionRequest names a version of a file by a hash prefix (at least 8
// hex digits; "" where every version is meant).
type VersionRequest struct {
	Root string `json:"root"`
	Path string `json:"path"`
	Hash string `json:"hash"`
}

// RetentionRequest sets a root's retention policy: Policy is keep-all,
// keep-last (Value: versions per file), keep-within (Value: a duration such
// as "720h" or "30d") or staggered.
type RetentionRequest struct {
	Root   string `json:"root"`
	Policy string `json:"policy"`
	Value  string `json:"value,omitempty"`
}

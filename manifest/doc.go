// Package manifest is the metadata of quics: registered clients, synced
// roots, and for every file its head, its versions and its conflicts, plus
// a per-root change feed. It lives in the badger database shared with
// package cas, so a commit can check chunk existence in the cas index and
// write a version in one transaction.
//
// # Clients and roots
//
// A client is a device, named by a UUID and authenticated by a token whose
// argon2id hash is stored (see internal/secret). A root is a synced
// directory: a name, an owner, a password hash, the chunking parameters
// its clients must use, a retention policy, and members. Roots are
// namespaces: every file key starts with the root's numeric [RootID],
// handed out in increasing order and never reused.
//
// # The root sequence
//
// Each root has a logical clock, [Root.Seq]. Every accepted version takes
// the next value, so seqs order all changes in a root without trusting any
// wall clock. A file's head remembers the seq of its latest version (the
// LatestSyncTimestamp clients compare with); versions are keyed by it.
//
// # Heads, versions and chunk lists
//
// A [Head] is the latest version of a file, kept apart so that a listing
// reads one record per file. A [Version] is immutable once written: its
// content hash (BLAKE3 of the whole file), size, mode, mtime, the client
// that wrote it and when. A deletion is a version too, with [Head.Deleted]
// set and no hash. The ordered chunks of a content hash are its chunk
// list, stored once for all versions and roots that share the content; the
// empty content's list is implicit ([EmptyHash]).
//
// # Commit is compare-and-swap
//
// [DB.Commit] accepts a [Proposal] only if the head it started from (base
// seq and hash) is still the head, as go-git's CheckAndSetReference does.
// Otherwise it fails with a [*HeadChangedError] ([ErrHeadChanged]) that
// carries the current head: deciding what that means — already converged,
// or a conflict to store with [DB.AddCandidate] — is the caller's business.
// Two different failures are kept apart: badger's ErrConflict (two
// transactions collided) is retried inside this package with a bounded
// number of attempts, and only the compare-and-swap failure reaches the
// caller. Everything a commit changes — root seq, version, head, chunk
// list, feed — is written in one transaction; [Proposal.Check] runs inside
// it for checks that must be atomic with the commit.
//
// Every commit to a root advances the root's seq, so commits to one root
// cannot run in parallel. Instead of letting them collide and retry, the
// DB queues them per root: one caller commits the waiting proposals as a
// group, in one transaction and one fsync, each judged in turn against
// the heads the previous ones left. A proposal that fails writes nothing
// and does not affect the others.
//
// # Conflicts
//
// A conflict holds the candidates for one path: at most one server side
// and one per client, each with the base it started from. They are
// pointers to content, like versions, and keep their chunks alive until a
// resolution commits a winner ([Proposal.ClearConflict]).
//
// A resolution is one commit: [Proposal.Conflict] names the conflict as
// the caller read it, and the commit fails with [ErrConflictChanged] if a
// side was added or replaced since, so no side is dropped unseen;
// [Proposal.History] lists the losing sides, written as versions at the
// seqs just before the winner's, so their content stays in the file's
// history; the winner becomes the head and the conflict is cleared.
//
// # Retention
//
// Every version stays until the root's [Retention] policy drops it:
// keep all (the default), keep the last N per file, keep those within a
// duration, or staggered (Syncthing's: one per 30 s for an hour, per hour
// for a day, per day for 30 days, per week beyond). [Retained] is the
// policy as a pure function of a file's versions and the time; the server
// applies it with [DB.DropVersions], which deletes version records only —
// chunk lists stay for garbage collection — and never the head's version.
// Conflict candidates are pointers of their own, not versions, so the
// content of an unresolved conflict survives any policy; the head is the
// only version a policy must spare, and Retained and DropVersions both do.
//
// # Change feed
//
// The feed maps root seq → path and keeps only each path's latest change:
// a commit adds the entry for its seq and deletes the path's previous one.
// A client that was offline asks [DB.Changes] for everything after the
// last seq it saw and gets each changed path once, in seq order.
//
// # Share links
//
// A [Share] is a public link to one file of a root, created by a member:
// it serves the file's head at download time, or a pinned version, a
// bounded number of times ([Share.MaxDownloads]) until an optional expiry.
// The link's URL carries a random token; the record is keyed by the
// token's SHA-256 ([TokenHash]), so the database holds no working link,
// and people name the link by a separate random [ShareID].
// [DB.CountShareDownload] checks and counts a download in one transaction,
// so concurrent downloads never exceed the bound. A link stops serving
// when it is used up, expired, its root removed or its creator no longer
// a member; its record stays, listed with that [ShareState], until it is
// removed. An active pinned link keeps its content alive for garbage
// collection even after retention dropped the version
// ([DB.PinnedShareContents], [DB.PinnedSharesTxn]).
//
// # On-disk format
//
// Keys are binary: one prefix byte, fixed-width big-endian integers (so
// scans return numeric order), and at most one path, either last in the
// key or terminated by NUL — paths may hold any byte but NUL, so no path's
// keys can be confused with a longer path's. Prefixes 0x01–0x0F belong to
// package cas; manifest's start at 0x10:
//
//	0x10 "schema"                  uint32 BE schema version (SchemaVersion)
//	0x11 ClientID                  Client
//	0x12 root name                 RootID, uint64 BE
//	0x13 RootID                    Root
//	0x14 "next-root-id"            uint64 BE
//	0x15 RootID path               Head
//	0x16 RootID path 0x00 Seq      Version
//	0x17 content hash              ChunkList
//	0x18 RootID path               Conflict
//	0x19 RootID Seq                FeedEntry
//	0x1A RootID ClientID           Membership
//	0x1B ClientID RootID           (empty: reverse index of 0x1A)
//	0x1C "server"                  ServerSettings
//	0x1D SHA-256(link token)       Share
//	0x1E ShareID                   SHA-256(link token), 32 bytes
//
// RootID and Seq are 8 bytes big-endian, ClientID the 16 UUID bytes, a
// content hash 32 bytes. Values are protobuf messages of package
// quics.manifest.v1 (internal/recordpb/records.proto), so fields can be
// added without a migration. Times are Unix nanoseconds, 0 meaning unset.
// A chunk list stores its IDs as one concatenated bytes field and its sizes
// as a packed repeated uint32: about 37 bytes per chunk. Every decoder
// checks lengths and counts before trusting a record; damage is
// [ErrCorrupt].
//
// [Open] writes the schema version on a fresh database and refuses a
// database from a newer version with [ErrSchemaVersion]; an older one
// will be upgraded by migrations run in the same transaction.
package manifest

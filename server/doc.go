// Package server is the quics server: it implements [syncproto.Handler] on
// top of the chunk store (package cas), the metadata (package manifest) and
// the conflict rules (package conflict), and materializes views of the
// synced files for the operator.
//
// # Data directory
//
// [Open] owns one directory, created with mode 0700:
//
//	lock                              held (flock) by the server using the directory
//	db/                               badger: chunk index and manifest
//	cas/packs/…                       pack files holding the chunks
//	tls/cert.pem, tls/key.pem         the self-signed certificate clients pin
//	initial-password                  a generated server password (0600), first start only
//	sync/<root>/latest/<path>         view: each file's head
//	sync/<root>/conflict/<path>/<side>-<hash8><ext>   view: conflict candidates
//	sync/<root>/history/<path>/v<seq>-<hash8><ext>    versions exported on request
//
// The server password is stored only as an argon2id hash (a manifest
// setting). Given with [Options.Password] it replaces the stored one; if
// none was ever set, Open generates one, writes it to initial-password and
// reports it once through [Server.InitialPassword].
//
// One process at a time: Open takes an exclusive, non-blocking flock(2)
// on lock before it opens the database, and Close releases it last. A
// second Open, in another process or in the same one, fails with
// [ErrDataDirInUse]. The kernel drops the lock when its process dies, so
// a crash leaves nothing to clean up. [DataDirInUse] probes the lock
// without creating anything, for tools that either ask the running
// server or open the directory themselves.
//
// # Clients and sessions
//
// A device registers with the server password and its own UUID and gets a
// token; every later connection authenticates with both and becomes a
// session. Authentication failures all look alike, and an unknown ID costs
// as much time as a wrong token, so nobody learns which IDs exist. The
// argon2id work of passwords and tokens runs in a few bounded slots, so a
// burst of logins cannot exhaust memory.
//
// The server lists its live sessions ([Server.ConnectedClients]).
// [Server.RemoveClient] deletes a client and revokes its sessions at once:
// their next request fails with ErrUnauthenticated, wherever it goes,
// their watches end with that error (which stops `qic run`), and their
// pins are released. A session authenticating during the removal either
// is listed in time to be revoked or finds its client gone.
//
// # Roots and membership
//
// A root's name is a directory name under sync/: a valid one-segment sync
// path (internal/relpath). Every root-scoped request first checks that the
// session's client is a member; a root that does not exist is refused
// exactly like one the client is not in (Forbidden), so roots are not
// revealed to non-members. Every path a client sends passes relpath.Check.
//
// [Server.RemoveRoot] deletes a root's metadata, drops it from every
// watch (a watch left with no root ends with Forbidden) and deletes
// sync/<root>/, after discarding the view jobs of the root and waiting
// for a running one, so that none recreates it. Its chunks become
// garbage for gc.
//
// # Uploads, pins and commits
//
// An upload is HaveChunks (which chunks does the server lack), PutChunks
// (the missing ones, stored in the form the client compressed them after
// their hash is verified, then made durable) and Propose. Chunks reported
// present or uploaded are pinned in the session's [PinSet] until the
// commit that uses them or the end of the session; garbage collection
// consults [Pins] and must not delete a pinned chunk. The commit itself
// re-checks every chunk inside its own transaction (cas HasTxn), so a
// chunk deleted anyway turns into a MissingChunks answer and a re-upload,
// never into a version pointing at nothing.
//
// Before content is kept (committed or stored as a candidate), the server
// checks that its chunk list is the one already stored for its hash, or
// that the chunks really hash to it. Chunk lists are shared by all roots,
// so this keeps a client from storing a wrong list under someone else's
// hash, or from claiming a hash it only heard of in order to download the
// content behind it.
//
// # Decisions
//
// Propose reads the file's head, asks [conflict.Decide] and acts:
// converged (nothing written, the head returned), fast-forward (a
// compare-and-swap commit; when another commit wins the race, it decides
// again against the new head), superseded, or conflict: the head becomes
// the server's candidate and the proposal the client's (a client replaces
// its own earlier candidate), the root's watchers get a CONFLICT notice,
// and the proposer a Conflict error naming the path and the head's
// sequence.
//
// Only a proposal that would conflict costs a look at the file's history:
// if its content (or its deletion) is a version committed after its base
// that is not the head, the server had accepted it and moved on — a
// resolution kept another side, or someone edited on top of it. The
// answer is OUTCOME_SUPERSEDED with the head, nothing is written, and the
// client takes the head. That is how a client that was offline while its
// conflict was resolved converges without raising the conflict again;
// an edit it made since is new content, and still conflicts.
//
// # Resolution
//
// A conflict is resolved by keeping one side ([Server.Resolve], or
// ResolveConflict from a member): "server", "client" (the caller's own
// side), a client's ID or device name, or a hex prefix of a side's hash.
// One manifest transaction writes the losing sides whose content is not a
// version yet as versions (so nothing a person wrote is lost), then the
// kept side as the new head, and clears the conflict; it fails and is
// decided again if the head moved or a side was added meanwhile, so a
// side nobody saw is never cleared. Then the conflict view goes, the
// latest view follows, and the root's clients get MUST_SYNC and
// FORCE_SYNC ([Server.ForceSync]): every copy becomes the kept one, and a
// client's own version stays in history. [Server.Conflicts] lists the
// sides with the names their files have in the conflict view.
//
// # History and restore
//
// Every accepted version is a history entry: seq, content hash, size,
// mode, mtime, author and wall time (History for members).
// [Server.FindVersion] resolves a hash prefix of at least 8 hex digits
// as git does (several versions of one content are one answer; several
// contents are an error naming them); [Server.WriteContent] streams a
// content, verifying every chunk and the whole. [Server.RestoreVersion]
// makes an old version the head as a new version — history is never
// rewritten — also for a deleted file, and refuses while the path has a
// conflict. [Server.ExportHistory] materializes versions under history/
// on request, never by default.
//
// # Retention
//
// Each root has a policy (manifest.Retention): keep all (default), keep
// the last N versions per file, keep those within a duration, or
// staggered. [Server.PruneRetention] applies it at the server's clock;
// [Server.SetRootRetention] stores a policy and applies it at once; every
// commit prunes the file it wrote (best effort), and a background loop
// prunes every root each [Options.RetentionInterval]. Dropping removes
// version records only; the chunks are left to gc. A file's head is
// never dropped. Conflict candidates are pointers of their own, not
// versions, so no policy can take the content of an unresolved conflict:
// the head is the only version the rule has to spare.
//
// # Downloads
//
// Heads lists a root's heads, all of them or those changed after a
// cursor (manifest's change feed). ChunkList answers only for a hash that
// is a version of that path in that root, or a candidate of its conflict,
// and remembers the chunk IDs it handed out; GetChunks serves only those,
// in stored form. A client never receives a chunk its roots do not reach.
//
// # Watch
//
// A watch stream subscribes to its roots in a broker. Commits publish
// MUST_SYNC with the new head, conflicts CONFLICT. Each stream has a
// bounded queue; a stream that falls behind loses its queue and gets one
// FULL_SCAN notice per root instead, so a slow client never slows the
// server down. On start, a cursor behind its root gets MUST_SYNC without
// a head, and one ahead of it (the server lost history) FULL_SCAN.
//
// # Views
//
// With [Options.Views], every commit queues an update of
// sync/<root>/latest/<path>, and every conflict one of its candidates'
// files. Writes are atomic (temporary file in the same directory, fsync,
// rename), carry the version's mode (at least owner read/write) and
// mtime, and are confined to the root's folder by relpath.Join. A file in
// the way of a directory, or a directory in the way of a file, is a stale
// projection and is replaced. Updates run in the background, coalesced
// per path, and re-read the manifest when they run, so the last update
// always shows the current head. A failed update is logged; it never
// fails a commit, because views are projections that can be rebuilt.
//
// [Server.RebuildViews] rebuilds them on request, views on or off:
// latest/ for every head that is not a deletion (in commit order, so a
// path that was a file and then a directory ends as the background views
// left it), conflict/ for every side, and it removes what the manifest no
// longer explains; history/ is left alone. After `rm -rf sync` it
// reproduces the same files with the same modes and mtimes. A rebuild
// takes the views' write lock, so no background job runs during it, and
// the removal of a root takes it to delete the root's folder, so that
// neither a rebuild nor an export recreates it.
//
// # Need-content: repairing damaged chunks from clients
//
// The store never hands out bytes that fail their checks. When GetChunks
// or a view update finds a chunk corrupt or missing (cas.ErrCorrupt,
// cas.ErrMissing), the server calls [Server.RequestContent] for the
// version the chunk belongs to: each session remembers, with every chunk
// ID its ChunkList answers made reachable, the (root, path, hash) that
// named it. RequestContent pushes a NEED_CONTENT notice with that
// version's head to the root's watchers, at most once per
// [NeedContentInterval] per (root, hash). The downloader gets
// ErrUnavailable ("damaged on the server; asked clients to re-send it"),
// not Internal and never wrong bytes. A client holding the version
// uploads all its chunks with PutChunks; when such an upload finds the
// chunk already indexed, the server reads its copy back, and if that is
// damaged it drops the index entry and stores the uploaded, verified
// bytes instead (the old record is garbage for the next repack).
//
// # Share links
//
// A member creates a link to a file ([Server.CreateShare]); anyone with
// its URL downloads the file over HTTPS from the share listener
// ([Server.ListenShares]), a separate public listener — TCP for HTTP/1.1
// and HTTP/2, UDP for HTTP/3, one port, the server's certificate — that
// serves GET and HEAD of /s/<token> and nothing else. The token is 32
// random bytes (base64url); the manifest keeps its SHA-256, and the link
// is named for people by a separate random id. Without a running
// listener, creating a link is refused (ErrUnavailable).
//
// A link serves its file's head at download time, or a pinned version.
// Each GET that is answered counts as one download, counted in a
// transaction before the first byte goes out: concurrent downloads never
// exceed the limit, and a download cut short has used its count; HEAD
// counts nothing. Before counting, the chunks are pinned for the
// download, so a collection cannot take them mid-stream, and a pinned
// version is a root of the mark while its link is active, even after
// retention dropped the version. Chunks stream from the store, each
// verified; ranges (http.ServeContent over a seekable chunk reader),
// Content-Type from the extension or sniffed, an ETag of the content hash
// and a Content-Disposition that names the file whatever its characters
// (RFC 2231 when not plain ASCII). A link used up, expired or revoked
// (its root removed, or its creator no longer a member) is a bare 410;
// a stopped link is deleted, so its URL is a bare 404 like an unknown
// token's, or a link to a file deleted now. Expiry is judged by
// [Options.Clock]. Only the link's creator ([Server.StopShare]) or the
// operator ([Server.RemoveShare]) stops a link.
//
// # Metrics
//
// [Options.Metrics] receives one Prometheus collector (unregistered by
// Close). The hot paths only add to atomics; the rest is read per scrape:
//
//	quics_connected_clients          gauge: live sessions
//	quics_uploads_total              versions committed from proposals (deletions too)
//	quics_downloads_total            chunk lists served
//	quics_chunks_in_total            chunks received by PutChunks
//	quics_chunk_bytes_in_total       their bytes as they traveled (stored form)
//	quics_chunks_out_total           chunks sent by GetChunks
//	quics_chunk_bytes_out_total      their bytes as they traveled
//	quics_committed_bytes_total      logical size of the committed content
//	quics_uploaded_bytes_total       uncompressed size of the new chunks received
//	quics_dedup_ratio                gauge: committed / uploaded bytes (1 before any upload)
//	quics_store_bytes                gauge: bytes of pack files (cached for 5 s)
//	quics_store_chunks               gauge: chunks in the store (cached for 5 s)
//	quics_commit_duration_seconds    histogram: manifest commits of proposals
//	quics_conflicts_open             gauge: unresolved conflicts, all roots
//	quics_gc_runs_total              gc runs ([Server.RecordGC])
//	quics_gc_freed_bytes_total       bytes gc freed
//
// Counters start from zero with every Open. A series whose reading fails
// is left out of that scrape and logged, rather than failing the scrape.
package server

// Package gc collects the chunks nothing points at any more, and checks
// that metadata, chunk index and packs agree. It is mark and sweep with
// the policy injected, and it runs while clients upload, commit and
// download: nothing waits for it, and it never takes a chunk a commit
// relies on.
//
// # Roots of the mark
//
// A chunk is live if any of these reaches it through a chunk list (one per
// content hash, in package manifest; the empty content has none):
//
//   - a version of a file: every head is a version, and every version
//     retention kept;
//   - a candidate of an unresolved conflict;
//   - a pin: a chunk an upload session was told the server has, or that it
//     uploaded, and has not committed yet (the server's Pins).
//
// A collection works against three small interfaces declared here: the
// chunk store ([Store], *cas.Store), the references ([References],
// *manifest.DB) and the pins ([Pins]); the policy ([Options]: margin,
// repack threshold, clock, dry run) is passed in. [Run] does one
// collection and returns a [Report].
//
// # Mark
//
// The walk reads every version and candidate from one snapshot and marks
// their content hashes; then it reads the chunk lists of the marked
// contents and marks their chunks. It also records the snapshot's
// watermark: each root's seq.
//
// The marks are not a set of 32-byte IDs, which for a store far larger
// than RAM would not fit: they are a scalable Bloom filter (12 bits per
// ID, about 0.3 % false positives, growing by doubling layers if more IDs
// come than expected), seeded afresh each run. A Bloom filter errs only
// one way, and here that way is safe: a false positive keeps a garbage
// chunk, and the next run, with another seed, almost surely frees it. The
// report gives the filters' size per chunk (mark_bytes_per_chunk, about
// 1.5 bytes plus the contents filter).
//
// # Sweep, and why it is safe while clients commit
//
// The sweep walks the chunk index. An entry is deleted only if it is
// unmarked, not pinned, and its pack was last written at least the margin
// before the collection started. Chunks carry no time of their own; the
// pack's last-write time (cas keeps it in the pack's metadata, moved
// forward in the same transaction as every entry that comes to point into
// the pack) is a bound no chunk in the pack is younger than, so the
// margin errs on the side of keeping. A chunk indexed after the start is
// therefore always kept, even with margin 0.
//
// Three things can happen to a chunk while a collection runs, and each is
// covered:
//
//  1. An upload session is told the chunk is present, or uploads it. The
//     server pins it for the session, before it looks it up or stores it.
//     The collection starts tracking pins before it reads anything, and
//     keeps every chunk pinned at its start or at any moment since, even
//     if the pin was released meanwhile; it asks again in each deletion
//     transaction. A pin that comes after that question but before the
//     deletion commits is not lost either: cas Has and Put of a chunk
//     whose deletion is in flight wait for it, find the chunk gone, and
//     the session uploads it. Tracking also covers conflict candidates
//     stored after the walk: their chunks stay pinned until the candidate
//     is stored.
//  2. A commit lands after the walk's snapshot and references a chunk the
//     walk did not see. Deletions run through cas.Store.DeleteChunksChecked,
//     which calls back inside each deletion transaction; the callback runs
//     manifest.DB.RefsSince in that transaction: it reads every root's
//     record and marks the chunks of every version committed since the
//     watermark, then the batch is decided. Every commit rewrites its
//     root's record (its seq), and every new root the root counter, so
//     badger's serializable transactions leave two cases: the commit
//     committed before the deletion's snapshot, and RefsSince saw and
//     marked it; or it commits after that snapshot, and then one of the
//     two transactions fails with a conflict — the deletion, which is
//     retried and sees the commit, or the commit, which re-checks its
//     chunks in its own transaction (cas HasTxn) and asks the client to
//     upload again what is gone.
//  3. A download reads the chunk while a pack is rewritten. A rewrite
//     copies the live records first, repoints their entries, and only
//     then removes the old file; a reader that looked the chunk up
//     before follows it to its new place (cas Get retries the lookup when
//     the pack vanished under it), and a reader already holding the file
//     open keeps reading it. A chunk deleted under a reader is one nothing
//     references, and reads as not found.
//
// # Repack
//
// After the sweep, liveness is the index's own, read again: a pack with
// no live entry is removed, and a pack whose live records take less than
// the repack threshold of its records is rewritten with every entry still
// indexed (never with the collection's possibly stale view), then
// removed. The pack receiving appends is left alone while it is being
// written; once it has been idle for the margin it is treated like the
// others (the store seals it first), or a quiet server whose data fits in
// one pack would never give space back. Bytes freed are pack bytes on
// disk.
//
// # Dry run
//
// A dry run marks and walks the index the same way, deletes nothing and
// reports what the sweep would delete and what rewriting and removing
// packs would free, from the packs' counters minus the would-be deletions.
//
// # Check
//
// [Check] verifies that the three layers agree: every content a version
// or candidate names has a chunk list, every chunk of it is in the index,
// every index entry points at a valid record of its chunk in a pack
// (cas.Store.Check; with readData every chunk is decoded and re-hashed),
// and the packs' counters match. Chunks indexed but unreferenced are
// counted, not reported: they are garbage for the next collection.
// Problems name what is affected: root, path and version, content, chunk,
// pack. With repair, the index is first rebuilt from the packs
// (cas.Store.RebuildIndex) and the check then lists the versions whose
// chunks are truly lost.
package gc

// Package cas is quics' content-addressed chunk store: every chunk is kept
// once, named by the BLAKE3-256 hash of its bytes, zstd-compressed when that
// helps, in append-only pack files, with an index in the badger database
// that package manifest shares.
//
// # Chunks and IDs
//
// An [ID] is the BLAKE3-256 digest of a chunk's uncompressed bytes. Put
// refuses bytes that do not hash to the ID they are offered under
// ([ErrHashMismatch]), so the store never holds a chunk under a wrong name;
// Get hashes again what it read, so it never hands out wrong bytes
// ([ErrCorrupt]). Storing a chunk twice is a no-op: Put reports stored=false
// and writes nothing, even when two goroutines race with the same chunk.
//
// # Packs
//
// Writing one file per chunk would cost a TB store 16M files and as many
// fsyncs, so chunks are appended as records to pack files of about
// Options.PackSize (32 MiB). A full pack is sealed and a new one started; a
// record never spans packs. Packs are numbered from 1 by a counter kept in
// badger, persisted before a pack is created so that numbers are never
// reused, and sharded by the number's low byte:
//
//	<dir>/packs/<xx>/<16 hex digits>.pack     e.g. packs/2a/000000000000012a.pack
//
// A pack starts with a 16-byte header, then records back to back. All
// integers are little-endian.
//
//	offset size  pack header
//	0      4     magic "QPAK"
//	4      1     pack format version (1)
//	5      3     reserved, zero
//	8      8     pack number (must match the file name)
//
// Every record is self-describing, so the index can be rebuilt from the
// packs alone:
//
//	offset size  record (45-byte header, then the payload)
//	0      1     record format version (1) << 4 | codec (0 raw, 1 zstd)
//	1      32    ID: BLAKE3-256 of the uncompressed chunk
//	33     4     stored length: payload bytes that follow the header
//	37     4     raw length: chunk bytes once decoded
//	41     4     CRC-32C (Castagnoli) of bytes 0..40 and the payload
//	45     n     payload
//
// A raw record has stored length == raw length; a zstd record is written
// only when it is strictly smaller (0 < stored < raw), and its payload is
// one or more zstd frames. Raw length is at most [MaxChunkSizeLimit]
// (16 MiB). These invariants let a reader reject garbage before it
// allocates anything. The CRC detects torn or damaged records cheaply,
// without decompressing; the ID check after decoding is the end-to-end
// check.
//
// # Index and badger keys
//
// The store uses key prefixes 0x01–0x0F of the shared database (manifest
// uses 0x10 and up):
//
//	0x01 ‖ ID            → index entry: byte version<<4|codec, then uvarints
//	                       pack, offset, stored length, raw length (8–20 bytes)
//	0x02 ‖ pack (8, BE)  → pack meta: byte version<<4 (2), then uvarints
//	                       committed length, records, live chunks, live
//	                       stored bytes, live raw bytes, last write (Unix
//	                       ns; version 1 values lack it and read as 0)
//	0x03 0x01            → store format version (1 byte)
//	0x03 0x02            → next pack number (uvarint)
//	0x03 0x03            → present while the index is being rebuilt
//
// A pack's committed length is how much of the file is durable and
// accounted for; its live counters move in the same transaction as the
// index entries they count, so Stats and gc policy read one key per pack.
// Its last-write time moves forward (Options.Clock) in every transaction
// that points an entry into the pack: no entry in the pack is younger, so
// it is the conservative chunk age gc's safety margin is measured with.
//
// # Durability and the Sync contract
//
// Put hashes and compresses outside any lock, then appends the record to
// the active pack with one pwrite under the append lock and remembers the
// chunk as pending in memory; the page cache is the write buffer. A
// pending chunk is visible at once: Has reports it, Get and GetStored read
// it back from the pack file. It is not durable yet and not in the index.
// Every MiB appended, the store asks the kernel to start writing the new
// bytes out (sync_file_range on Linux), so the disk works while the next
// chunks are hashed and the eventual fsync has little left to do. A pack
// that reaches PackSize is sealed; its final fsync is part of the next
// Sync.
//
// Sync makes every Put that returned before the call durable, in this
// order: fsync the pack files written since the last Sync (and, for new
// packs, their directories), then commit in badger the index entries and
// the packs' committed lengths (the lengths in the first transaction). So
// the index never points at bytes that are not on stable storage. Syncs
// are group commits: callers arriving while a round runs share the next
// round, one fsync per pack for all of them.
//
// The contract with package manifest: an upload session Puts its chunks,
// calls Sync, and only then commits a version that references them; the
// commit re-checks every chunk with [Store.HasTxn] inside its own
// transaction. HasTxn sees committed chunks only, never pending ones, and
// a concurrent gc delete of the same key makes one of the transactions
// conflict and retry.
//
// If an fsync fails, the kernel may have dropped the unwritten pages, so
// the store stops accepting writes ([ErrFailed]) until it is reopened,
// which truncates whatever was not committed.
//
// # Recovery
//
// Open compares every pack with badger. Bytes past a pack's committed
// length were never acknowledged (a crash between write and commit): they
// are truncated and reported as torn tail in [OpenReport]. A pack file
// badger does not know was created but never committed to (entries are
// only ever committed with or after their pack's meta): it is deleted. A
// file shorter than its committed length, or missing, has lost committed
// data: Open reports it, reads of the affected chunks fail with
// [ErrMissing], and Check lists them. If the database holds no store at all
// while packs exist (a lost or fresh database), Open touches no pack and
// sets OpenReport.NeedsRebuild; [Store.RebuildIndex] then recreates the
// index from the packs.
//
// Scanning a pack (Check, Repack, RebuildIndex) checks each record's
// header and CRC. When the bytes at some offset are not a valid record
// (torn write, flipped bit, garbage), the length fields cannot be trusted,
// so the scanner resynchronizes: it walks forward byte by byte to the next
// offset that holds a complete valid record (plausible format byte and
// lengths that fit, matching CRC, payload that decodes and hashes to its
// ID) and reports the stretch in between. Because a candidate must hash to
// its own ID, a false match, such as a record embedded in a stored pack
// file, is still a genuine chunk, so resynchronizing can never index wrong
// bytes.
//
// # Reading
//
// Get looks the chunk up (pending set, then index), reads header and
// payload with one pread through a bounded cache of open pack handles,
// checks that the header matches the index entry and the CRC, decodes with
// a shared zstd decoder (bounded by the raw length) and verifies the hash.
// GetStored skips decoding and returns the stored form with its CRC
// checked, so the server can send compressed bytes as they are; the
// receiver verifies with [Stored.Decode].
//
// # Deletion and maintenance
//
// The store has no policy: package gc decides what is garbage and uses
// [Store.ForEachChunk], [Store.Packs], [Store.DeleteChunksChecked] (index
// entries only), [Store.Repack] (copy the live records of a pack to the
// active pack, sync, repoint entries that still point at the old records,
// delete the old file; a pack whose damage hides live records is kept) and
// [Store.RemovePack] (delete a pack no entry points into).
// [Store.DeleteChunks] is the unconditional form. [Store.Check] verifies
// index against packs; [Store.RebuildIndex] recreates the index.
//
// DeleteChunksChecked runs the caller's check inside each deletion
// transaction, before anything is deleted, and deletes only what the check
// does not keep and what is older than a cutoff (the pack's last-write
// time, read in the same transaction). Badger transactions are
// serializable: a commit that writes a key the check read, or that reads
// an index entry the deletion removes (manifest commits call HasTxn),
// makes one of the two fail with a conflict and retry, so gc can fence
// deletions against concurrent commits without a lock (see package gc).
// Has and Put of a chunk whose deletion is in flight wait for that one
// transaction to end: a caller that pinned the chunk after the check ran
// then finds it gone and uploads it, instead of being told it is there a
// moment before it goes.
//
// A reader races maintenance only between looking a chunk up and opening
// its pack: a Repack may move the chunk and remove the pack in between.
// Get and GetStored then look the chunk up again and follow it; a pack
// handle already open stays readable after its file is removed (the
// descriptor keeps the data), so a read in progress always completes.
package cas

// Package client is the device side of quics that needs no network: the
// home directory, the local state, the scanner that finds local changes,
// local chunk reuse for downloads, and atomic writes into a sync root. The
// network side (push and pull over syncproto) builds on it.
//
// # Home directory
//
// Everything a client keeps lives in one home directory, chosen by --home,
// else $QIC_HOME, else ~/.quics-client ([HomeDir]); several homes let
// several clients run on one machine.
//
//	HOME/config.json   client ID (a UUID made at first use), device name,
//	                   server address, pinned certificate fingerprint,
//	                   token; 0600, replaced atomically ([Home.SaveConfig])
//	HOME/db/           badger: the local state
//
// [OpenHome] takes badger's directory lock before it reads or writes the
// config, so a second process opening the same home fails at once with
// [ErrHomeLocked] ("another qic is using this home directory").
//
// # Local state
//
// [State] holds the [Root]s this client syncs (name, absolute local
// directory, chunk parameters, the root seq pulled up to, last sync time)
// and, per root and path, a [FileRecord] with two halves:
//
//   - the base: the server version (seq and content hash) the local file
//     last agreed with;
//   - the local file as last scanned or written: content hash, chunk list,
//     size, mode, mtime and ctime in nanoseconds, inode, device, and the
//     time the stat was taken (ScannedAt).
//
// A local change the server has not accepted yet is pending: the record's
// Pending flag is set and a pending index lists it, so the pusher finds
// the queue without reading every record ([State.PendingFiles]), and a
// change found by a scan survives a crash before it is pushed. A deleted
// file keeps its record, marked Deleted, until the server accepts the
// deletion. [State.Accept] moves the base when the server accepts a
// proposal; the record's LastUpdate (QUIC-S's LastUpdateTimestamp, bumped
// by every local change) tells whether the file changed again meanwhile.
//
// # Change detection
//
// A scan ([Scanner.Scan]) walks the root with filepath.WalkDir and compares
// each regular file's stat with its record. Size, mtime (ns), ctime (ns),
// inode and permission bits all equal means unchanged, and the file is not
// read — except when it is racy. A write in the same timestamp tick as the
// scan that recorded the file, but after it, can leave the stat as it was
// (on file systems with coarse timestamps, or an edit that keeps the size).
// As in git, a file whose mtime is not older than its record's ScannedAt
// minus a margin (2 s by default, [DefaultRacyMargin]) is re-read even when
// its stat matches ([IsRacy]). ScannedAt is taken before the stat, so every
// write after it leaves such an mtime.
//
// A file that is new, changed or racy is read once: the bytes feed the
// BLAKE3 hasher of the whole content (the file hash, equal to cas.Sum of
// the content) and the chunker, with the root's parameters, which yields
// the chunk list. Memory per file is the chunker's buffer, whatever its
// size; several files are read at once by a bounded worker pool. A file
// whose stat changes while it is read is skipped with a warning and looked
// at again by the next scan.
//
// The outcome per file is one of: unchanged; touched (same content hash,
// so only the stat in the record is refreshed and no change is reported);
// new; modified; mode changed (same content, other permission bits); or
// deleted (a record whose file is gone). A rename is a deletion plus a new
// file with the same hash, which costs no chunk transfer.
//
// Walking, reading and recording form one pipeline: the walk hands files
// to the workers and, in walk order, to one recorder, which writes their
// records in batches (1,024 files or 256 MiB read). An interrupted first
// scan of a large tree keeps what it recorded, and memory holds a small
// entry per recorded file, not the tree's chunk lists.
// [Scanner.ScanPaths] limits a scan to some paths and what is under them
// (`qic run` follows file events with it): only the records there can be
// found deleted.
//
// # What a scan skips
//
// Symlinks are never followed nor synced: each is skipped with a
// [Warning] naming it (given to ScanOptions.Warn, or logged with slog). So
// are names the sync path rule (internal/relpath) refuses — a backslash or
// a newline in a name, a name over 255 bytes, invalid UTF-8 — together with
// everything below such a directory; devices, sockets and pipes; and files
// that cannot be read. Names starting with ".qic-tmp-" ([TempPrefix]) are
// the client's own temporary files and are skipped silently. Nothing else
// is skipped: the client keeps nothing inside a root (its state is in the
// home), so a ".quics" directory in a root is ordinary user data.
//
// A file or directory that could not be read keeps its records unchanged;
// it is never reported deleted. A root directory that is missing (an
// unmounted disk) fails the scan with [ErrRootMissing] instead of reporting
// every file deleted.
//
// Directories are not recorded. A directory exists on the other side once
// it holds a file (the writer creates parents); an empty directory is not
// synced, and a directory emptied by pulled deletions is removed.
//
// # Local chunk reuse
//
// [ReuseIndex] maps each chunk ID in the recorded chunk lists to a local
// file and offset. A download asks [ReuseIndex.ReadLocal] before fetching:
// the bytes are read from the local file and used only if their BLAKE3 is
// the chunk ID; a stale location is dropped and the chunk fetched. A root
// with more than about a million chunks is not indexed whole: each
// download then indexes the files it most likely shares chunks with (its
// path's old content, a local file with the same content) while it runs,
// so memory does not grow with the root.
//
// # Sending and fetching only what changed
//
// When the session offers the delta transactions ([DeltaRemote]), a push
// sends a file's chunk list as a delta against a version the server has
// (syncproto.ListDelta): the file's own base, whose chunk list the scan
// keeps when the local content first moves away from it
// ([State.BaseChunks]), or, for a new path, another path whose base has
// the same content (a copy, or the new name of a rename). The chunks of
// that version are the server's already and are not asked about; only new
// chunks are. A new chunk that replaced chunks of the base (an edit inside
// them) travels as a delta against them, built from their block signatures
// ([syncproto.EncodeDelta]), when that is smaller. The server refusing a
// delta (its source gone, a signature that matched wrong bytes) costs a
// second try with everything whole, never a failed push.
//
// A pull whose local file is a server version asks for the head's chunk
// list as a delta against it, and for each chunk that replaced some of its
// chunks names those as dictionaries: it arrives as a delta against bytes
// read (and verified) from the local file. The same holds for a new path
// whose content another local file has.
//
// # Atomic writes
//
// [WriteFileAtomic] writes a pulled file into a temporary file
// ".qic-tmp-<random>" in the target's directory, sets its mode and mtime,
// fsyncs it, renames it over the target and fsyncs the directory: the
// target is always either the old file or the whole new one. Paths go
// through relpath.Join, parents are created one level at a time, and a
// symlink at or above the target is refused, so a write never leaves the
// root. [CleanTemps] removes temporaries a crash left behind. [RemoveFile]
// deletes a file and the parent directories it leaves empty.
//
// A local file modified since its base is never overwritten by a pull:
// the puller calls [SafeToReplace] right before the rename, which re-stats
// (and, when the stat changed or is racy, re-hashes) the local file and
// refuses when it no longer matches its record or the record has a
// pending change. The client then pushes its version and the server
// decides. A write that lands in the few system calls between that check
// and the rename is still replaced: POSIX offers no conditional rename.
//
// # Conflicts, history and superseded changes
//
// A local change the server refuses because the file's head moved since
// its base is a conflict: the server keeps it as a candidate, the local
// file stays as it is, and the record remembers what was kept
// (HasCandidate). Any client of the root resolves it by keeping one side
// ([Engine.ResolveConflict]) or makes an old version the head again
// ([Engine.Rollback]); both bring this client's copy to the new head at
// once, through the force-sync path ([Engine.ForceSync]). The server keeps
// every losing side in the file's history, and [Engine.SaveVersion]
// writes any version or candidate to a file outside the tree, reusing
// local chunks like a pull. These need a session with the conflict and
// history transactions ([Resolver]).
//
// A client that was away during a resolution still holds its losing
// change, pending. When it proposes it, the server finds that content in
// the history after the proposal's base and answers superseded with the
// head: the pusher then replaces the local copy exactly as a force-sync
// would (without proposing it again) and reports it in
// PassResult.SupersededList. A file edited again since the scan is not
// replaced: the next pass pushes that edit, and the server decides.
//
// Commands name files by local path: [State.Locate] maps an absolute or
// relative name to its root (the innermost, when roots nest) and sync
// path, comparing with symlinks resolved when the plain names do not
// match; a name in no root is [ErrOutsideRoots].
//
// # Progress
//
// A command that draws progress bars sets EngineOptions.Progress: each
// pass tells it the bytes it plans to move and has moved, per
// [Direction]. A pull plans the content of all the files it is going to
// write before writing the first (a head carries its size); a push plans
// the chunks the server said it lacks before sending the first batch.
// What was planned and did not move is taken back when the pull or the
// push ends, so a bar always ends full.
//
// # Re-sending content the server lost
//
// When the server finds chunks of a version damaged it pushes a
// need-content notice on the watch stream. [Run] answers it with
// [Engine.ResendContent]: if the local file of that path has exactly that
// content hash and is unchanged on disk (checked like [SafeToReplace]),
// all its chunks are uploaded again without asking HaveChunks first, each
// re-read and checked against its ID. Otherwise ([ErrNotHeld]) nothing is
// sent; another client may hold it.
//
// # On-disk format
//
// The local state is one badger database with binary keys: one prefix
// byte, then the root name, then (for per-file keys) NUL and the path.
// Neither root names nor paths contain NUL, so root+NUL is a prefix of that
// root's keys only.
//
//	0x01 "schema"          uint32 BE schema version ([SchemaVersion], 1)
//	0x02 root              root record
//	0x03 root 0x00 path    file record
//	0x04 root 0x00 path    chunk list of the file's local content
//	0x05 root 0x00 path    empty; present while the file has a pending change
//	0x06 root 0x00 path    chunk list of the base version, kept while the
//	                       local content differs from it
//
// Values start with a format byte (1). Integers are varints
// (encoding/binary); strings are a uvarint length and the bytes.
//
//	root record  1, dir, min, avg, max, cursor (uvarints),
//	             last sync (varint Unix ns, 0 = never)
//	file record  1, flags (bit 0 pending, bit 1 deleted), base seq,
//	             base hash [32], hash [32], size, mode, mtime, ctime,
//	             inode, dev, scanned-at, last update
//	chunk list   1, count (uvarint), count × (id [32], size uint32 BE)
//	base list    1, base hash [32], count (uvarint), count × (id [32],
//	             size uint32 BE); used only while the record's base is
//	             that hash
//
// The chunk list is kept apart from the file record so that a scan, which
// needs only the stat fields, does not read every chunk list. Decoders
// check every length against its bound before allocating and refuse
// trailing bytes; a record that does not decode is [ErrCorrupt]. Opening a
// state written with another schema version fails with [ErrSchemaVersion].
package client

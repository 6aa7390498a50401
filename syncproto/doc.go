// Package syncproto is the quics wire protocol: framing, chunk and error
// frames, error codes that keep their meaning across the wire, QUIC listen,
// dial and serve with limits and deadlines, and on top of them the
// transactions of the message schema (syncpb/sync.proto): a [Server] that
// decodes them and calls a [Handler], and a [Client] that makes them.
//
// # Connections and transactions
//
// A client reaches the server over QUIC (RFC 9000) with TLS 1.3 and the
// application protocol [ALPN] "quics/1", by default on UDP port
// [DefaultPort] 6122; a handshake offering anything else is refused. The
// server's certificate is self-signed and pinned by fingerprint (package
// internal/tlsutil). Every request is a transaction on its own
// bidirectional stream: the client opens it, both sides exchange frames, and
// each side ends its direction (io.EOF for the reader). A long-lived watch
// stream carrying server pushes is just a transaction that lasts.
//
// [Listen] and [Dial] wrap quic-go with the limits in [Config]: handshake
// and idle timeouts, keep-alives, the number of concurrent streams a peer may
// open, and per-stream and per-connection receive windows. [Serve] runs one
// goroutine per stream; a handler that panics is logged and only its stream
// is reset.
//
// # Frames
//
// Both directions of a stream are a sequence of frames:
//
//	type    uvarint   (encoding/binary, shortest form only)
//	length  uvarint   payload length in bytes
//	payload length bytes
//
// A reader checks the length against its limit ([FrameReader],
// [DefaultMaxFramePayload], never above [MaxFramePayloadLimit]) before it
// allocates anything, and grows its buffer only as bytes arrive, so a peer
// claiming 2^62 bytes costs nothing. Varints that are not in shortest form
// or overflow 64 bits are malformed: every frame has exactly one encoding.
//
// Frame types:
//
//	0x00        invalid, never sent
//	0x01        error: the transaction failed (see Errors)
//	0x02        chunk: one chunk's stored bytes
//	0x03-0x0f   reserved for transport frames
//	0x10-0x7f   protobuf messages, one per frame, assigned by the schema
//	            (0x10-0x3b today)
//	0x80-       reserved for extensions
//
// A receiver decides which types it accepts where; an unexpected type is
// answered with [CodeUnsupported] or [CodeBadRequest].
//
// # Chunk frames
//
// A chunk travels in the form it is stored in, so it is compressed once:
//
//	codec      1 byte    0 raw, 1 zstd
//	chunk ID   32 bytes  BLAKE3-256 of the decoded chunk
//	raw length uvarint   length of the decoded chunk
//	data       the rest of the payload
//
// Raw data is exactly raw length bytes; zstd data is non-empty and strictly
// shorter (a chunk that does not shrink is sent raw), the same rules the
// store keeps for its records. [DecodeChunkFrame] bounds the raw length by
// the caller's maximum (the root's largest chunk) and never decompresses or
// hashes: the receiver's store verifies the chunk against its ID before
// acknowledging it.
//
// Codec 0x40, [ChunkDelta], only travels: the chunk as copies from source
// chunks the receiver has (named in the data) and literals, strictly
// shorter than the chunk too. See "Deltas".
//
// # Errors
//
// Errors keep their meaning across the wire. Each [Code] has a sentinel
// ([ErrNotFound], [ErrConflict], ...); an error frame carries
//
//	code     uvarint   never 0
//	message  the rest, valid UTF-8, at most MaxErrorMessageLen (1024) bytes
//
// and the receiver gets an [*Error] that matches the code's sentinel with
// errors.Is. On the sending side [CodeOf] and [WireError] map an error to
// what the peer sees: an *Error as is, an error wrapping a sentinel with its
// own text, context and deadline errors as [CodeTimeout] or
// [CodeCanceled], and anything else as a bare [CodeInternal] so internal
// details stay in the sender's log. The same numbers are the QUIC stream
// reset and connection close codes, and reads and writes translate a reset
// or close from the peer back into an *Error. Codes are never renumbered; a
// code this version does not know is kept in the *Error and matches no
// sentinel.
//
//	code  meaning
//	 0    no error (normal close; never in an error frame)
//	 1    internal
//	 2    bad request (malformed frame or message)
//	 3    frame too large
//	 4    unauthenticated (unknown client ID or wrong token)
//	 5    bad password (server or root password)
//	 6    forbidden (not a member of the root)
//	 7    not found
//	 8    already exists
//	 9    invalid path (the sentinel is relpath.ErrInvalidPath)
//	10    conflict: the head changed since the client's base
//	11    hash mismatch
//	12    missing chunks
//	13    unavailable (overloaded, shutting down: retry later)
//	14    timeout
//	15    unsupported
//	16    canceled
//
// # Deadlines
//
// Every frame read or written on a [Stream] has a deadline: now plus the
// stream's timeout, or the context's deadline if that is sooner, and
// canceling the context interrupts the call. A peer that stops in the middle
// of a frame is cut off with [ErrTimeout] instead of holding a goroutine and
// a buffer forever. After a failed read the stream's position is unknown, so
// the reader refuses further frames; the handler ends the transaction, for
// example with [Stream.Fail].
//
// # Messages
//
// Each protobuf message of the schema travels as one frame whose type the
// schema assigns in a comment ("frame 0x10"); [MessageFrameType] and
// [NewMessage] are that table, and a test keeps it equal to sync.proto.
// [WriteMessage] sends a message; [ReadMessage] reads one of an expected
// type: an error frame comes back as the peer's [*Error], another message
// type is [ErrBadRequest], a type outside the schema [ErrUnsupported], and
// bytes that are not a valid encoding [ErrBadRequest].
//
// Lists are bounded before anything is allocated. Chunk IDs travel
// concatenated, 32 bytes each ([AppendIDs], [ParseIDs] with a maximum
// count); HaveChunks answers with a bitmap, bit i (least significant first)
// for ID i ([AppendBitmap], [ParseBitmap] refuses stray bits). Limits:
//
//	HaveChunksRequest   65536 IDs   (MaxHaveChunksIDs)
//	GetChunksRequest     4096 IDs, each with at most 8 dictionaries
//	                    (MaxGetChunksIDs, MaxDeltaSources)
//	ChunkListPart       65536 entries, at least one (MaxChunkListPart)
//	chunk list           4 Mi entries in all (MaxChunkList)
//	ChunkListBatchRequest 1024 items, 65536 list entries in the answer
//	                    (MaxChunkListBatch, MaxBatchEntries)
//	ChunkListDelta      65536 runs, 65536 new entries (MaxDeltaRuns,
//	                    MaxDeltaEntries)
//	SignaturesRequest     256 chunks, blocks of 64 B to 64 KiB
//	                    (MaxSignatureChunks)
//	delta chunk             8 sources (MaxDeltaSources)
//	chunk               16 MiB decoded (ServerOptions.MaxChunkSize)
//
// # Transactions
//
// A client opens one stream per transaction and sends the request; the
// server routes the stream by the type of that first frame. The simple
// transactions are one request and one answer, after which both sides end
// their direction:
//
//	RegisterClientRequest -> RegisterClientResponse
//	AuthRequest           -> AuthResponse
//	RegisterRootRequest   -> RootInfo
//	JoinRootRequest       -> RootInfo
//	LeaveRootRequest      -> Ack
//	ListRootsRequest      -> ListRootsResponse
//	HaveChunksRequest     -> HaveChunksResponse
//	Ping                  -> Pong   (answered by the Server itself)
//	ListConflictsRequest  -> ListConflictsResponse (at most MaxConflicts)
//	ResolveConflictRequest -> CommitResponse (the new head)
//	HistoryRequest        -> HistoryResponse (at most MaxHistoryEntries, the newest)
//	RestoreRequest        -> CommitResponse
//	SetRetentionRequest   -> Ack
//	CreateShareRequest    -> CreateShareResponse (the link's URL or token)
//	ListSharesRequest     -> ListSharesResponse (at most MaxShares)
//	StopShareRequest      -> StopShareResponse
//	SignaturesRequest     -> SignaturesResponse (see Deltas)
//
// A CommitResponse with OUTCOME_SUPERSEDED answers a proposal whose
// content is already in the file's history after its base (a conflict over
// it was resolved, or it was replaced since): nothing is committed, and the
// client replaces its copy with the head it carries.
//
// The longer flows:
//
//	PutChunksRequest, chunk frames..., end   -> Ack
//	ProposeRequest, ChunkListPart..., end    -> CommitResponse
//	ProposeRequest (delta), ChunkListDelta, end -> CommitResponse
//	ProposeBatchRequest, end                 -> ProposeBatchResponse (one result per item)
//	HeadsRequest                             -> HeadsPart..., the last with done and root_seq
//	ChunkListRequest                         -> ChunkListHeader, ChunkListPart... or ChunkListDelta
//	ChunkListBatchRequest, end               -> ChunkListBatchResponse (one result per item)
//	GetChunksRequest                         -> one chunk frame per ID, in order, end
//	WatchRequest (stream left open)          -> Notice... until the connection ends
//
// Any step may instead be an error frame that ends the transaction. A
// proposal's parts must add up to exactly chunk_count entries, each part
// with as many sizes as IDs, no empty or oversized chunk, and, for a
// non-empty list, sizes that add up to the file size; the client then ends
// its direction, so an extra part is caught too. Uploaded chunks are
// handed to [Handler.PutChunks] one at a time as they arrive; a chunk's
// Data aliases the frame buffer and is valid only until the next call, so
// a Handler stores or copies it first, and the Ack comes only after the
// Handler made every chunk durable. A PutChunksRequest may name whole
// runs ([WholeRun], at most [MaxWholeRuns]): stretches of its chunk frames
// that are, in order, a whole content's chunk list. A Handler that is a
// [WholeRunner] gets them with the chunks and may hash each run as it
// arrives, so that proposing that content with that list needs no reading
// back of its chunks; runs are hints (one that does not hash to its
// content is no error), and a Handler that is not a WholeRunner never sees
// them. The server checks that GetChunks
// emits exactly the requested IDs in order, and the client checks it
// again. A batch (at most [MaxBatchProposals] items and [MaxBatchEntries]
// list entries in all, lists inline, no deltas) is a first sync's many
// small files in one transaction: each item is checked as its own
// proposal and handed to [Handler.Propose], several at once so the
// Handler can commit them together, and an item's failure is its result
// (code and message), not the transaction's. A watch ends when the
// client resets its stream (the server notices through a read it keeps
// pending), when the connection ends, or on shutdown.
//
// # Deltas
//
// A small edit of a large file should cost about the edit, not the file's
// chunk list or the chunks it touched. Three forms say only what changed,
// each against content both sides already have; a [Handler] that is also
// a [DeltaHandler] serves them, one that is not answers [ErrUnsupported]
// (and whole lists and stored chunks for reads), and the client then sends
// everything whole.
//
// A delta manifest ([ListDelta], the ChunkListDelta message) writes a chunk
// list as runs over a source list: skip some entries, copy some, insert
// new ones. Runs only go forward, so they cannot overlap, and
// [ApplyListDelta] checks every count against the source and the announced
// length, in 64-bit arithmetic, before it allocates the result. A proposal
// names its source (a version of its own path, or of another path of the
// root for a copy or a rename) and the Handler resolves it with
// [DeltaHandler.SourceChunkList]: a source the session cannot reach is
// ErrNotFound, which tells nothing about content elsewhere. A ChunkList
// request may name the version the client holds as a base; the answer is
// then a delta against it when that is smaller.
//
// A changed chunk uploads as a [ChunkDelta] against the chunks it most
// likely replaced. The uploader no longer has their bytes (the file was
// edited in place), so it asks for their block signatures first
// (SignaturesRequest: a rolling checksum and a truncated BLAKE3 per block,
// [Sign]) and [EncodeDelta] copies the blocks that match, at any offset. A
// download asks, per chunk, for dictionaries it holds (GetChunksRequest's
// dict_ids); the server has both sides and [EncodeDeltaFrom] matches bytes
// exactly. [DecodeDelta] checks every op against the sources and the
// output length before it copies, and the result against the chunk ID: a
// wrong delta is ErrHashMismatch and nothing is kept. The receiver must
// only build from sources the sender may read (a server: chunks named to
// the session by a signature or chunk list answer), or a delta would be an
// oracle for content the sender cannot see.
//
// # Handshake size
//
// A one-shot sync pays a whole QUIC handshake, so [Dial] keeps it small:
// it offers X25519 alone unless Config.PostQuantumKeyExchange is set (the
// hybrid key share does not fit the first datagram and costs about 2.3 KB
// more), and path MTU discovery is off unless Config.PathMTUDiscovery is
// set (its probes cost both sides about 11 KB in the first seconds,
// against about 12 % fewer packets on bulk transfers). The server's
// certificate is an ECDSA P-256 one of about 450 bytes. Session
// resumption would not shrink the handshake further: datagrams carrying
// Initial packets are padded to the packet size either way. So clients
// keep no session cache, and [Listen] sends no session tickets (one
// would cost every connection about 170 bytes for nothing).
//
// # Authentication and sessions
//
// A connection is unauthenticated until an AuthRequest succeeds:
// [Handler.Authenticate] returns the [Session] every later transaction of
// the connection runs as. Before that only RegisterClientRequest, Ping and
// AuthRequest are served; any other first frame is answered with
// [ErrUnauthenticated], and so are streams opened while the AuthRequest is
// still being checked. A second AuthRequest on an authenticated connection
// is [ErrBadRequest], and after ServerOptions.MaxAuthFailures failed ones
// the connection is closed. [Handler.SessionEnded] runs once the
// connection is gone and every one of its transactions has returned.
//
// Errors a Handler returns reach the client through [WireError]: wrap a
// sentinel around text meant for the client; anything else arrives as a
// bare internal error and is logged by the Server with its cause.
//
// # Client
//
// [Register] makes the one-shot registration connection and reports the
// fingerprint of the certificate it saw (to pin on first use);
// [DialSession] dials and authenticates. Every [Client] method is one
// transaction on its own stream, so calls run concurrently on one
// connection: a client uploads with several PutChunks at once, each a
// stream that one lost packet does not stall for the others. HaveChunks and
// GetChunks split long ID lists into batches within the limits. Each frame
// has the Config's read or write deadline, opening a stream waits at most
// the write timeout, and ctx cancels any call (the stream is then reset
// with [CodeCanceled]).
//
// # Bytes on the wire
//
// [Dial] runs its connection on a quic-go Transport over a UDP socket
// wrapper that counts every datagram's payload ([WireCounter]): what the
// user's network carried, QUIC headers, encryption, acknowledgements and
// retransmissions included, IP and UDP headers not. The wrapper offers the
// same batched and out-of-band reads and writes as the socket itself, so
// quic-go keeps its fast paths. [Conn.WireStats] and [Client.WireStats]
// report one connection; a [Config.Wire] counter shared by several dials
// (registration, then the session) totals them.
package syncproto

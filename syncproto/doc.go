// Package syncproto is the quics wire protocol below the message schema:
// framing, chunk and error frames, error codes that keep their meaning
// across the wire, and QUIC listen, dial and serve with limits and deadlines.
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
package syncproto

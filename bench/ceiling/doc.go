// Package ceiling measures the transport's ceiling: a bulk transfer of a
// given byte count over quic-go on loopback, client and server in this
// process, one stream, TLS 1.3 with a throwaway certificate, and the same
// flow-control windows quics configures (syncproto.DefaultConfig). A sync
// of the same bytes cannot be faster than this without changing the
// transport, so quics' wall time is reported as a multiple of it.
//
// The clock runs from the dial (handshake included, as in a one-shot
// qic sync) until the server has read the last byte and said so.
//
// [TransferOver] runs the same transfer between two sockets the caller
// opened: the benchmark's WAN mode opens them in the server and client
// network namespaces, so the ceiling crosses the same rate-limited link
// as quics and rsync.
package ceiling

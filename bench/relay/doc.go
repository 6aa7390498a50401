// Package relay is a counting UDP relay for the end-to-end benchmark.
//
// # Why a relay
//
// The benchmark wants the bytes quics puts on the wire, handshake included,
// without root (no network namespace, no interface counters). A client is
// therefore pointed at the relay instead of the server: every datagram it
// sends arrives at the relay's socket, is counted and forwarded to the
// server from a socket of its own (one per client address, a "flow"), and
// every answer takes the same way back. QUIC does not notice: the server
// sees one stable peer address per client, the client sees the address it
// dialed.
//
// # What is counted
//
// [Counts] holds UDP payload bytes, that is whole QUIC packets (headers,
// frames, AEAD tags, handshake) but not the 8-byte UDP and 20-byte IPv4
// headers underneath; the datagram counts are there to add those back.
//
// # Cost
//
// Datagrams move in batches (recvmmsg/sendmmsg through x/net/ipv4), so a
// bulk transfer costs the relay a few system calls per hundred packets. It
// still takes CPU the client and server would otherwise have; the
// benchmark measures a raw transfer through the relay as well to show how
// much.
//
// Flows live until the relay closes: the benchmark starts a few dozen
// short-lived clients per relay, not millions.
//
// The benchmark's WAN mode (root) does not use the relay: there the
// interface counters of a network namespace count the same traffic.
package relay

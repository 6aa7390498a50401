// Package harness runs the end-to-end benchmark of issue #7: it writes
// the datasets, starts quics servers and qic clients as processes on
// 127.0.0.1 (each client behind a counting UDP relay) or across a WAN
// link (see below), runs every scenario with quics and with rsync,
// measures a raw quic-go transfer as the ceiling, and fills a report.
//
// # One run
//
// Each run starts from nothing in its own directory: the mixed and small
// trees are written, a server is started for each (so the store size of
// mixed is its own), and the scenarios run in a fixed order, the edit
// scenarios on the state the previous ones left:
//
//   - initial sync of mixed and of small, with the relay; each once more
//     against a fresh server without it (its wall time without the
//     relay's cost, for the time targets: the relay's copies run on the
//     same cores as the client and the server);
//   - first pull of small: a new client joins the small root and pulls
//     every file (rsync: a copy of its module into an empty directory);
//   - nothing changed; insert 100 B in the middle of the big file; append
//     1 MiB to it; overwrite 4 KiB at 10 MiB; rename a 10 MiB file; copy a
//     64 MiB file; rewrite 64 B in 1 % of the small files;
//   - the store size after all of that; restore of the big file's first
//     version with quics restore --output; quics gc after
//     set-retention --keep-last 1 (skipped when the binary has no gc);
//   - propagation: two clients in qic run on a third root, the wire bytes
//     of an idle period, then the latency of edits from A until B's copy
//     has the new content (B is polled every 2 ms).
//
// After each quics edit, rsync pushes the same tree into its daemon,
// plain and with -z --fuzzy, so both tools see the same edit from the
// same state.
//
// # Figures
//
// Wall time is the client process's, start to exit. The harness calls
// sync(2) before starting each process it times, so that no step pays
// for the writeback of the steps before it (quics and rsync alike). Wire bytes are the
// relay's UDP payload counts, handshake included. Peak RSS is VmHWM:
// the server's, reset before each scenario through /proc/PID/clear_refs
// (so it includes what the server kept resident from earlier scenarios),
// and each client process's, polled every 10 ms while it runs (package
// procstat says why not rusage). Store bytes are the apparent size of
// DATA/cas.
//
// # WAN mode
//
// With [Options.WAN] (quics-bench --wan, root only) the same scenarios
// run across a link built by package netns: every quics server (with its
// admin commands, since its admin API is on that namespace's loopback),
// the rsync daemon and the ceiling's quic-go server in the link's server
// namespace; every qic, rsync client and the ceiling's quic-go client in
// the client namespace; a tbf rate limit (100 Mbit/s by default) each
// way, and a netem delay where the kernel has netem (the report's notes
// say whether it did).
//
// No relay is used there: the link's interface counters replace it. Wire
// bytes of quics, rsync and quic-go alike are the client-side veth's tx
// (up) and rx (down) bytes, read before and after each step once the link
// has been quiet for 100 ms, so they include Ethernet, IP and UDP or TCP
// headers; rsync's --stats totals go to the JSON beside them. With no
// relay there is nothing to subtract, so the "quics, no relay" rerun and
// the relayed ceiling row are left out, quics' wall time is compared with
// the one quic-go transfer across the link, and the initial-sync time
// targets taken on loopback are dropped.
package harness

// Package rsyncd runs the benchmark's rsync peer: an rsync daemon on
// 127.0.0.1 with one module per destination, pushed to by the rsync
// client with --stats, whose byte counts are parsed. [StartNet] places
// the daemon and its clients elsewhere (the two ends of the benchmark's
// WAN link).
//
// # Figures
//
// rsync's "Total bytes sent" and "Total bytes received" are the bytes its
// protocol wrote to and read from the TCP connection (after -z's
// compression), without TCP/IP headers: the counterpart of the UDP
// payload bytes counted for quics.
//
// # Variants
//
// [Plain] is rsync -a; [Fuzzy] adds -z --fuzzy, whose basis search finds
// a renamed file's old copy. Both mirror deletions with --delete-delay,
// which keeps a deleted file around as a fuzzy basis until the transfer
// ends.
package rsyncd

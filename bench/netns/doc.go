// Package netns builds the benchmark's WAN link: two network namespaces,
// "server" and "client", joined by a veth pair whose both directions go
// through a token-bucket rate limit (tc tbf), with a netem delay on top
// where the kernel has netem.
//
// # Why namespaces
//
// On loopback a transfer runs at memory speed and the kernel hides how
// many packets and header bytes it took. Two namespaces make the traffic
// cross a real (virtual) interface, where a rate limit applies and the
// interface counters see every frame; processes keep sharing the file
// system, so only the network is split.
//
// # The link
//
// [New] creates the namespaces (names carry this process's ID and a
// sequence number, so runs never collide, and namespaces left by a
// crashed run of the same prefix are removed), turns IPv6 off in both and
// pins each side's neighbor entry, so that nothing but the traffic under
// test crosses the link: no router solicitations, no ARP. GSO is capped
// at one segment per packet on both ends: otherwise a 64 KiB GSO batch
// would cross the veth as one "packet" and its headers would be counted
// once. New returns once the kernel has marked both ends up (before
// that, their queues drop everything). [Pair.Close] deletes both
// namespaces, which deletes the veth pair.
//
// # Counters
//
// [End.Counters] reads /sys/class/net/DEV/statistics inside the
// namespace (through ip netns exec, which mounts that namespace's sysfs).
// veth counts whole Ethernet frames: payload plus 14 bytes of Ethernet,
// 20 of IPv4 and 8 of UDP or 20+ of TCP per packet.
//
// # Running in a namespace
//
// [End.Command] runs a program there with ip netns exec, which execs it in
// place, so its process ID (and /proc/PID) is the program's. [End.Do]
// runs a function on a thread moved into the namespace: sockets it opens
// stay in that namespace after the thread moves back, which is how one
// process can hold a listener on one side and a client on the other.
//
// Everything needs root and the ip and tc commands; [Check] says which is
// missing.
package netns

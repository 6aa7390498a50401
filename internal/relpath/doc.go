// Package relpath decides which paths may travel in the sync protocol and
// turns them into local file names that cannot leave their directory.
//
// A sync path names a file inside a sync root. It comes from the network, so
// it is hostile until checked: the server refuses a bad path, a client skips
// it, and every view writer confines what it writes with [Join].
//
// # The rule
//
// [Check] accepts p only when all of these hold:
//
//   - p is not empty and is at most [MaxPathLen] (4096) bytes;
//   - p is valid UTF-8;
//   - p has no ASCII control character (0x00–0x1F, 0x7F): no NUL, no
//     newline, no tab;
//   - p has no backslash: on Windows it is a separator, so `a\..\b` would
//     climb out of the root there;
//   - p is relative and '/'-separated: it does not start with '/';
//   - p is already clean: no empty segment (so no leading, trailing or double
//     slash) and no "." or ".." segment;
//   - no segment is longer than [MaxSegmentLen] (255) bytes, the limit of
//     common file systems.
//
// Nothing else is refused. Names like "...", "a/..b", "%2e%2e" (literal, never
// URL-decoded), spaces and any Unicode letters are valid.
//
// # Colons
//
// A colon is an ordinary byte on Unix, so "C:/x" and "a:b" are valid sync
// paths. They cannot escape a directory: [Join] puts the path after a
// non-empty base, and filepath.Join only reads a volume name at the start of
// the joined string, which is the base's. On Windows a colon inside a name is
// not a valid file name (or names an alternate data stream of a file inside
// the base); a Windows client must skip such names locally, as it must skip
// reserved names like "CON". That is a portability concern of the client, not
// a confinement rule, so it is not part of [Check].
//
// # Defense in depth
//
// [Join] checks the path, joins it under the base and then verifies that the
// result is still inside the base, so a mistake in the rule above would still
// not let a write escape.
package relpath

// Package conflict holds the pure rules that decide what happens to a
// proposed version of a file, and how the sides of a conflict are named
// when they are written out for people. It does no I/O: the server feeds
// it the head it read and the proposal it received, and acts on the
// answer.
//
// # Proposals and heads
//
// A client proposes a new version of a file together with the version it
// started from, its base (ARCHITECTURE §7): the root sequence and content
// hash of the head it last agreed with the server, or (0, no hash) for a
// file it believes new. The server holds the file's current [Head], or
// none if the path was never committed. A deletion is a version too: its
// Deleted flag is set and it has no hash.
//
// # The decision
//
// [Decide] compares the two and returns one of four outcomes, tried in
// this order:
//
//   - [Converged]: the proposal's content and mode equal the head's (same
//     hash and mode, or both deletions). Nothing is written; both sides
//     already agree, whatever base the client started from.
//   - [FastForward]: the proposal builds on the head. Either the file has
//     no head and the base is (0, no hash), a new file; or the base names
//     the head exactly (sequence and hash). A deleted head has no hash, so
//     recreating a deleted file names the deletion's sequence with no hash.
//     A change of mode alone (chmod +x) fast-forwards like any edit.
//   - [Converged] again when only the mode differs and the base is stale:
//     the contents agree, so there is nothing for a person to decide; the
//     proposer takes the head's mode when it pulls.
//   - [Superseded]: the proposal's content (or deletion) is a version
//     of the file committed after the proposal's base, and not the head
//     ([Proposal.LaterInHistory], which the server computes from the
//     file's history). The server already had it and moved on: a
//     conflict over it was resolved for another side, or someone edited
//     on top of it. Nothing is kept; the proposer takes the head, and its
//     content stays in history. This is how a client that was offline
//     while its conflict was resolved converges without a new conflict.
//   - [Conflict]: anything else. The head moved on since the client's base
//     (or the client names a base the server never had), so accepting the
//     proposal would silently drop someone's change. The server keeps the
//     proposal as a candidate and lets a person pick.
//
// Convergence is checked first so that two devices that made the same
// edit, or deleted the same file, never see a conflict.
//
// # Candidate names
//
// The sides of a conflict are materialized next to each other in a
// directory named after the file. [CandidateName] names each after the
// side it comes from and the start of its content hash, keeping the
// original extension so that the file still opens in the right program:
//
//	report.txt, server side          → server-1a2b3c4d.txt
//	report.txt, client "Jane's Mac"  → Jane_s_Mac-5e6f7a8b.txt
//
// Exported versions of a file are named by [VersionName] after their seq
// and hash, with the same extension rule: v12-1a2b3c4d.txt.
//
// Client names are chosen by people and travel over the network, so they
// are reduced to a safe alphabet and bounded before they become part of a
// file name.
package conflict

// Package chunker splits byte streams into content-defined chunks with
// FastCDC (gear rolling hash, normalized chunking, cut-point skipping).
//
// quics stores and transfers files as chunks named by their hash. How the
// chunks are cut decides how much survives an edit: this package cuts them so
// that an insert or a delete changes only the few chunks around it.
//
// # Content-defined chunking
//
// Cutting a file every 64 KiB would be simple, but one byte inserted at the
// front would shift every later boundary, and every chunk of the file would be
// new. A content-defined chunker instead looks at the bytes themselves: it
// slides a small window over the data and cuts wherever a hash of the window
// has a rare property. A cut point is then a property of the few bytes before
// it, not of its distance from the start of the file.
//
// # The gear hash
//
// The rolling hash is FastCDC's gear hash. For each byte b,
//
//	h = h<<1 + gear[b]
//
// where gear is a fixed table of 256 pseudo-random 64-bit words. Each step
// shifts older bytes one bit further to the left, so after 64 steps a byte has
// left the word: h depends only on the last 64 bytes (the window), and bit k
// of h only on the last k+1. The hash costs a shift, a table load and an add
// per byte, which is why gear-based chunking runs at memory speeds.
//
// A position is a cut candidate when h&mask == 0. As in FastCDC, the mask's
// 1-bits are spread out with zeros between them, here over the top 48 bits of
// the word with bit 63 always among them, so that every candidate depends on
// the whole 64-byte window. With k 1-bits a random position qualifies with
// probability 2^-k.
//
// The table is written literally in gear.go, generated once from splitmix64
// with a fixed seed; a test regenerates it and compares, so it cannot change
// by accident. Nothing else feeds the hash, so the same bytes are cut in the
// same places on every machine, by every version of this package.
//
// # Cut-point skipping and normalization
//
// A chunk is never cut before Min bytes, so the first Min-64 bytes of each
// chunk are not hashed at all; hashing starts just in time to fill the window
// for the first candidate, at length Min. At Max a cut is forced.
//
// Between Min and Max, FastCDC's normalized chunking (level 2) uses two masks
// derived from log2(Avg): a strict one with log2(Avg)+2 bits below length Avg,
// and a loose one with log2(Avg)-2 bits from Avg on. Short chunks become four
// times rarer and long ones are ended four times sooner, so sizes bunch around
// Avg instead of spreading out geometrically. On random data the mean chunk
// is somewhat above Avg (about 1.15×Avg when Min is Avg/4, as in the defaults).
//
// # Why cut points resynchronize after an edit
//
// Whether a position is a candidate depends only on the 64 bytes before it
// (and, through the mask, on whether the chunk is shorter than Avg yet). The
// chunker carries nothing from one chunk to the next: each chunk is cut by
// the first candidate between Min and Max bytes from its start.
//
// Chunks before an insert or a delete are untouched. The chunk holding the
// edit starts where it did and, beyond the 64 bytes after the edit, sees the
// same candidates as before at shifted offsets, so it usually ends at the
// original's cut: one new chunk. If the shift moves that cut below Min or
// across Avg (where the mask changes), it ends at a different candidate and
// the next chunk starts out of step; but as soon as any cut coincides with
// an original one, every later chunk is the same as before. With the default
// parameters that happens within a chunk or two, so an edit typically costs
// one to three new chunks. Only a stretch of more than Max bytes without a
// candidate, where the forced cuts depend on offsets, could delay it, and
// random-looking data practically never has one.
//
// # Parameters
//
// Params holds Min, Avg and Max in bytes. DefaultParams is 16 KiB, 64 KiB and
// 256 KiB: small enough that an edit costs a few chunks on the wire, large
// enough that per-chunk metadata stays near 0.1 % of the data. Avg must be a
// power of two, Min at least 64 and below Avg, Max above Avg and at most
// 16 MiB (Params.Validate).
//
// A root's parameters are fixed when it is created and told to its clients; a
// root never changes them, because new parameters would cut every file
// differently and none of its stored chunks would be reused.
//
// # Streaming
//
// A Chunker reads an io.Reader through one buffer of 2×Max bytes that it
// reuses for every chunk (and, with Reset, for every stream), so a file of any
// size is chunked in O(Max) memory. It decides a cut only once it holds Max
// bytes or the end of the stream, so the cuts do not depend on how the reader
// splits its reads; Boundaries cuts an in-memory slice the same way.
package chunker

// Package dataset generates the benchmark's file trees, the same bytes on
// every run and every machine.
//
// # Datasets
//
// [Mixed] is ≈512 MiB at scale 1: one 256 MiB random file ([BigFile]), a
// 64 MiB and a 10 MiB random file that the copy and rename scenarios use
// ([CopySource], [RenameSource]), more random binary files of varied sizes
// up to 128 MiB of binary in all, and 128 MiB of text-like files of varied
// sizes (1 KiB to 4 MiB) in nested directories. Text and binary each make
// half of what is not the big file.
//
// [Small] is 20,000 text-like files of 1–8 KiB spread over 400 nested
// directories.
//
// A scale shrinks every size and the small file count for a quick run;
// sizes that come out below a floor are raised to it.
//
// # Determinism
//
// A tree is a list of [Entry] values, each carrying its own seed, so
// files can be written in any order or in parallel. Random files are
// ChaCha8 streams; text is words drawn from a fixed vocabulary with a
// Zipf distribution (compressing about 3× with zstd, like prose or code),
// from the PCG generator. Both generators are specified by math/rand/v2
// to give the same output on every platform and Go release.
package dataset

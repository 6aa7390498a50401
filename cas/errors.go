package cas

import "errors"

// Sentinel errors. Every error the store returns wraps one of these (or a
// badger or os error) with context naming the chunk, pack or key involved, so
// callers branch with errors.Is.
var (
	// ErrNotFound: the store has no chunk with that ID.
	ErrNotFound = errors.New("cas: chunk not found")
	// ErrHashMismatch: the bytes offered to Put do not hash to the ID they
	// were offered under; nothing was stored.
	ErrHashMismatch = errors.New("cas: content does not match its id")
	// ErrTooLarge: a chunk is larger than Options.MaxChunkSize.
	ErrTooLarge = errors.New("cas: chunk too large")
	// ErrCorrupt: stored bytes fail their CRC or hash check, or a record
	// does not match its index entry. The store never hands out such bytes.
	ErrCorrupt = errors.New("cas: corrupt chunk data")
	// ErrMissing: the index names bytes that are not on disk (pack file gone
	// or shorter than its committed length).
	ErrMissing = errors.New("cas: chunk data missing")
	// ErrInvalidRecord: bytes are not a well-formed pack record (bad format
	// byte, impossible lengths, truncated). Returned by the record decoder.
	ErrInvalidRecord = errors.New("cas: invalid record")
	// ErrPackInUse: RemovePack was asked to delete a pack that index
	// entries still point into.
	ErrPackInUse = errors.New("cas: pack still holds live chunks")
	// ErrPackNotFound: no pack with that number is known to the store.
	ErrPackNotFound = errors.New("cas: pack not found")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("cas: store closed")
	// ErrFailed: an earlier fsync or write failed, so the durability of
	// buffered bytes is unknown; the store refuses further writes until it
	// is reopened (which truncates whatever was not committed).
	ErrFailed = errors.New("cas: store failed, reopen required")
)

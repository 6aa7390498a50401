// Package s3store keeps quics' sealed pack files in S3-compatible object
// storage (AWS S3, MinIO, Versity Gateway, Ceph RGW, R2, B2, …): a
// [cas.Backend] selected with `quics run --store s3://BUCKET/PREFIX`. The
// S3 protocol is spoken by minio-go; this package decides names, retries,
// integrity checks and the guard against two stores sharing a prefix.
//
// # Layout
//
// Under PREFIX/ (the bucket's root when PREFIX is empty) the bucket holds
//
//	quics-store                       the ID of the store that owns the prefix
//	<xx>/<16 hex digits>.pack         pack files, as cas.PackObjectName names them
//
// Anything else under the prefix is ignored by List, so other tools may
// keep notes there; a store in a sub-prefix of another store's prefix is
// not seen either, since its keys do not parse as pack names.
//
// # One prefix, one store
//
// Packs are numbered per data directory, so two quics servers writing under
// one prefix would overwrite each other's packs. [Open] therefore claims
// the prefix: it writes quics-store with the store's ID when the object is
// absent (with If-None-Match, so two servers racing cannot both win where
// the server supports conditional writes) and refuses to open a prefix
// whose marker names another store ([ErrForeignStore]).
//
// # Configuration
//
// [ParseURL] reads the store URL; [ConfigFromEnv] reads the endpoint,
// region and credentials from QUICS_S3_* variables, then from the usual AWS
// ones; command-line flags override both. The bucket must exist: quics
// never creates one ([ErrNoBucket]), because its region, encryption and
// lifecycle are the owner's choice. Refused credentials are reported as
// [ErrCredentials] with the endpoint, never with the secret.
//
// # Uploads and integrity
//
// A pack up to Config.PartSize (16 MiB by default) is one PUT; a larger
// one is a multipart upload whose parts travel four at a time and retry one
// by one. Every PUT carries the MD5 of its bytes, so the server refuses
// bytes damaged in transit, and Put ends with a HEAD that checks the stored
// size. A failed multipart upload is aborted, even after cancellation, so
// its parts are not left billed; an abort that fails too is reported, and
// a bucket lifecycle rule "abort incomplete multipart uploads after N
// days" cleans up after crashes.
//
// # Retries
//
// minio-go's own retries are turned off, so each attempt is exactly one
// HTTP request and the bound holds: an operation is tried at most 6 times,
// waiting 100 ms, doubling up to 5 s, with jitter, and never past its
// context. Retried: 5xx other than 501 and 505, 408, 429, throttling codes
// (SlowDown and the like), connection refused or reset, timeouts, and a
// response body that ends early. Never retried: any other 4xx, certificate
// errors, unknown host names. A ranged read whose body breaks resumes from
// the first byte it lacks; a listing resumes after the last key it saw.
//
// # Cost
//
// [Backend.Requests] counts requests by kind at the HTTP layer, retries
// included, since providers bill per request: a pack upload costs 2
// requests (PUT and HEAD), or parts+3 multipart; a ranged read costs 1 GET.
package s3store

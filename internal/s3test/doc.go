// Package s3test runs a real S3-compatible server for tests: Versity
// Gateway (versitygw) with its posix backend, on 127.0.0.1, in a temporary
// directory, with random keys. Tests of anything that talks S3 (s3store,
// cas with an S3 backend, the server, end-to-end runs) use it instead of a
// mock, so they exercise real signing, real ranges, real multipart uploads
// and real error codes.
//
// # Finding the binary
//
// [Start] looks for versitygw in this order: the QUICS_VERSITYGW
// environment variable; bin/tools/versitygw under the module root (where
// `make versitygw` installs it); $PATH. When it is nowhere, the test is
// skipped with a message that says how to install it, unless
// QUICS_REQUIRE_S3=1 (CI sets it): then the test fails, so a CI machine
// that lost the binary cannot pass by skipping every S3 test.
//
// # Lifecycle
//
// The server listens on a free port, answers within 30 s or the test
// fails, and is stopped (SIGTERM, then SIGKILL) when the test ends. Its
// output is kept and shown whenever the harness fails. [Server.Stop] and
// [Server.Restart] take it away and bring it back on the same address with
// the same data, for tests of outages.
//
// # Faults at the network edge
//
// [NewProxy] puts a TCP proxy in front of an address and lets a test decide,
// connection by connection, to reset it at once or to cut the response
// after some bytes. versitygw closes every connection after one response, so a
// connection is a request and "reset the first two connections" means
// "fail the first two requests".
package s3test

// Package e2e holds the end-to-end tests of quics: a real server and real
// clients talking QUIC on 127.0.0.1, checked by comparing the content
// hashes of whole directory trees.
//
// # Two kinds of test
//
// inprocess_test.go runs the server (server.Open behind syncproto's
// listener) and the client sync engine (client.Engine) in the test
// process, which lets a test look at a pass's counters and the local state
// directly. binaries_test.go builds bin/quics and bin/qic once (TestMain)
// and runs them as processes, as a user would: `qic register`, `qic root
// add|join`, `qic sync --json`, `qic run`.
//
// # Rules
//
// Every server listens on 127.0.0.1 with a port the system picks. Every
// process a test starts is killed in t.Cleanup, and every wait is bounded.
// The package imports both server and client, which no other package may.
package e2e

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
// add|join`, `qic sync --json`, `qic run`. admin_test.go and
// restore_test.go drive the admin commands (`quics show`, `password set`,
// `client remove`, `stop`, `restore`, `conflict resolve`, `views rebuild`,
// `root set-retention`) against a running server and, after `quics stop`,
// offline on its data directory. docker_test.go checks the Dockerfile and
// the README's docker commands against each other (no Docker engine runs
// here).
//
// # Rules
//
// Every server listens on 127.0.0.1 with ports the system picks (sync
// and admin API alike; admin commands find the API through the data dir). Every
// process a test starts is killed in t.Cleanup, and every wait is bounded.
// The package imports both server and client, which no other package may.
package e2e

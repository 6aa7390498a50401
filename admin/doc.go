// Package admin is the operator's side of a quics server: an HTTP API that
// `quics run` serves on loopback, and the client the `quics` admin commands
// use to reach it, or to do the same work on a data directory no server
// holds.
//
// # One operation, three ways in
//
// Every endpoint is an [Op]: an HTTP method, a path pattern and a Run
// function over a [Backend] (an open *server.Server). [NewHandler] serves
// each Op over HTTP; [Call] runs it through a [Conn], which is either the
// running server's API or the data directory opened directly. Both paths
// decode the answer from its JSON form and turn errors into the same
// sentinels, so a command prints the same thing online and offline. Adding
// an endpoint (conflicts, restore, gc, check …) is one Op and one entry in
// the endpoint list.
//
// # Finding the server
//
// The data directory says everything a local command needs: DATA/lock is
// held by the process that has the directory open ([server.DataDirInUse]),
// DATA/admin-socket names the Unix socket serving the API as plain HTTP/1.1
// (0600; preferred when it answers, since it spares both sides TLS),
// DATA/admin-addr is the URL of its HTTP/1.1 API over TLS, DATA/admin-token the
// bearer token (0600), and DATA/tls/cert.pem the certificate the connection
// is pinned to. [Connect] probes the lock first, so a stale admin-addr left
// by a crash is never trusted: no lock holder means the directory is opened
// here.
//
// # Security
//
// The API listens on loopback by default, over TLS with the server's own
// certificate, on HTTP/1.1 (TCP) and HTTP/3 (UDP), and on a Unix socket in
// the data directory that only the server's user may open. Every endpoint but
// /healthz requires the token; /metrics also answers loopback callers
// without it, for a local Prometheus. Request logs carry method, path and
// status, never headers or bodies: the token and passwords stay out of logs.
// Request bodies and query fields are bounded and strictly decoded.
//
// docs/admin-api.md is the reference for scripts.
package admin

//go:build !unix

package server

import "errors"

// syscallNotDir never matches where ENOTDIR does not exist.
var syscallNotDir = errors.New("server: no ENOTDIR on this platform")

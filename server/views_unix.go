//go:build unix

package server

import "syscall"

// syscallNotDir is the error of a path whose parent is a file.
var syscallNotDir error = syscall.ENOTDIR

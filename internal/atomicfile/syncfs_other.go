//go:build !linux

package atomicfile

import "errors"

// CanSyncFS reports whether SyncFS works here: not on this system, where
// staged files are fsynced one by one (Stage with sync) and their
// directories by SyncDir.
const CanSyncFS = false

// SyncFS is not available on this system.
func SyncFS(string) error { return errors.ErrUnsupported }

package client

import "errors"

// Sentinel errors. Every error of this package that a caller may want to
// tell apart wraps one of these, with the file, root or key it concerns.
var (
	// ErrHomeLocked means another qic process holds the home directory.
	ErrHomeLocked = errors.New("client: another qic is using this home directory")
	// ErrBadConfig means HOME/config.json cannot be read or is invalid.
	ErrBadConfig = errors.New("client: invalid config")
	// ErrSchemaVersion means the local state was written by a newer (or an
	// unknown) version of qic.
	ErrSchemaVersion = errors.New("client: unsupported local state schema version")
	// ErrCorrupt means a local state record does not decode.
	ErrCorrupt = errors.New("client: corrupt local state")
	// ErrInvalidRootName means a root name cannot be stored (empty, too long,
	// not UTF-8, or holding NUL).
	ErrInvalidRootName = errors.New("client: invalid root name")
	// ErrRootNotFound means the local state has no root of that name.
	ErrRootNotFound = errors.New("client: root not found")
	// ErrFileNotFound means the local state has no record for that path.
	ErrFileNotFound = errors.New("client: file record not found")
	// ErrRootMissing means a root's local directory is gone or not a
	// directory. A scan stops instead of reporting every file deleted.
	ErrRootMissing = errors.New("client: root directory missing")

	// ErrSymlink marks a symlink that was skipped or refused: symlinks are
	// never followed, synced or written through.
	ErrSymlink = errors.New("client: symlink")
	// ErrInvalidName marks a local name the sync path rule refuses.
	ErrInvalidName = errors.New("client: name not allowed in a sync path")
	// ErrNotRegular marks a device, socket, pipe or other non-regular file.
	ErrNotRegular = errors.New("client: not a regular file")
	// ErrUnreadable marks a file or directory that could not be read.
	ErrUnreadable = errors.New("client: unreadable")
	// ErrChangedWhileReading marks a file modified while it was hashed.
	ErrChangedWhileReading = errors.New("client: file changed while it was read")

	// ErrTargetIsDir means a write or removal found a directory at the
	// target path.
	ErrTargetIsDir = errors.New("client: target is a directory")
	// ErrParentNotDir means a parent of the target path is not a directory.
	ErrParentNotDir = errors.New("client: parent of target is not a directory")

	// ErrOutsideRoots means a local path given on the command line lies
	// in none of the roots this client syncs (or is a root's directory
	// itself).
	ErrOutsideRoots = errors.New("client: path is not in a synced root")
	// ErrNoResolver means the session cannot run conflict and history
	// transactions.
	ErrNoResolver = errors.New("client: session has no conflict and history transactions")
)

package harness

import (
	"errors"
	"io/fs"
	"path/filepath"
	"syscall"
)

// dirSize adds up the files under dir: apparent sizes, and the blocks
// actually allocated (badger preallocates sparse files, so only the
// latter is honest for DATA/db). A missing dir is empty.
func dirSize(dir string) (apparent, allocated int64, err error) {
	err = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking (a compaction)
			}
			return err
		}
		apparent += info.Size()
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			allocated += st.Blocks * 512
		} else {
			allocated += info.Size()
		}
		return nil
	})
	return apparent, allocated, err
}

// flushDirty writes the machine's dirty pages out before a timed step: a
// sync right after another (the relayed first sync, then the same again
// without the relay, then a baseline's) would otherwise pay for the
// writeback of the one before it, and whichever ran second would look
// slower.
func flushDirty() { syscall.Sync() }

package cas

import (
	"container/list"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
)

const packsDirName = "packs"

// packPath is <dir>/packs/<low byte of num in hex>/<num as 16 hex digits>.pack.
func packPath(dir string, num uint64) string {
	return filepath.Join(dir, packsDirName, shardName(num), fmt.Sprintf("%016x.pack", num))
}

func shardName(num uint64) string { return fmt.Sprintf("%02x", byte(num)) }

// parsePackName returns the pack number of a file named like packPath makes
// in the shard directory shard; ok is false for anything else.
func parsePackName(shard, name string) (uint64, bool) {
	base, found := strings.CutSuffix(name, ".pack")
	if !found || len(base) != 16 || strings.ToLower(base) != base {
		return 0, false
	}
	num, err := strconv.ParseUint(base, 16, 64)
	if err != nil || shardName(num) != shard {
		return 0, false
	}
	return num, true
}

// diskPack is a pack file found on disk.
type diskPack struct {
	num  uint64
	size int64
}

// listPacks returns the pack files under dir/packs, and the paths of files
// there that are not packs (reported, never touched).
func listPacks(dir string) (map[uint64]diskPack, []string, error) {
	return listPackDir(filepath.Join(dir, packsDirName))
}

// listPackDir lists the packs in root's shard directories (the layout of
// packPath and PackObjectName), and the paths of anything else there.
func listPackDir(root string) (map[uint64]diskPack, []string, error) {
	packs := make(map[uint64]diskPack)
	var stray []string
	shards, err := os.ReadDir(root)
	if err != nil {
		return nil, nil, fmt.Errorf("cas: list %s: %w", root, err)
	}
	for _, sh := range shards {
		shardPath := filepath.Join(root, sh.Name())
		if !sh.IsDir() {
			stray = append(stray, shardPath)
			continue
		}
		entries, err := os.ReadDir(shardPath)
		if err != nil {
			return nil, nil, fmt.Errorf("cas: list %s: %w", shardPath, err)
		}
		for _, e := range entries {
			p := filepath.Join(shardPath, e.Name())
			num, ok := parsePackName(sh.Name(), e.Name())
			if !ok || !e.Type().IsRegular() {
				stray = append(stray, p)
				continue
			}
			info, err := e.Info()
			if err != nil {
				return nil, nil, fmt.Errorf("cas: stat %s: %w", p, err)
			}
			packs[num] = diskPack{num: num, size: info.Size()}
		}
	}
	return packs, stray, nil
}

// packWriter is a pack open for appending. All fields are guarded by
// Store.mu except f, whose WriteAt and Sync are safe to call concurrently.
type packWriter struct {
	num     uint64
	f       *os.File
	size    int64  // end of the last complete record written
	records uint64 // records in [0, size)
	synced  int64  // length committed to badger (fsynced before)
	kicked  int64  // early writeback started up to here
	newFile bool   // directory entries not yet fsynced
	sealed  bool   // no further appends
}

// createPack creates pack num with its header. The caller fsyncs the file
// and its directories before committing anything in it.
func createPack(dir string, num uint64) (*packWriter, error) {
	p := packPath(dir, num)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, fmt.Errorf("cas: create pack dir for %d: %w", num, err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cas: create pack %d: %w", num, err)
	}
	var hdr [PackHeaderSize]byte
	putPackHeader(hdr[:], num)
	if _, err := f.WriteAt(hdr[:], 0); err != nil {
		_ = f.Close()
		_ = os.Remove(p)
		return nil, fmt.Errorf("cas: write header of pack %d: %w", num, err)
	}
	return &packWriter{num: num, f: f, size: PackHeaderSize, newFile: true}, nil
}

// reopenPack opens an existing, healthy pack for further appends at its
// committed length.
func reopenPack(dir string, num uint64, m packMeta) (*packWriter, error) {
	p := packPath(dir, num)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("cas: reopen pack %d: %w", num, err)
	}
	var hdr [PackHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cas: read header of pack %d: %w", num, err)
	}
	if got, err := parsePackHeader(hdr[:]); err != nil || got != num {
		_ = f.Close()
		return nil, fmt.Errorf("%w: pack %d header names pack %d (%v)", ErrCorrupt, num, got, err)
	}
	return &packWriter{num: num, f: f, size: m.Committed, records: m.Records, synced: m.Committed, kicked: m.Committed}, nil
}

// fileCache keeps read-only handles of recently used packs so Get is one
// pread. It is bounded; a handle in use when evicted is closed by its last
// user.
type fileCache struct {
	dir string
	max int

	mu     sync.Mutex
	open   map[uint64]*cachedFile
	lru    list.List // of *cachedFile, most recently used first
	closed bool
}

type cachedFile struct {
	num     uint64
	f       *os.File
	refs    int
	elem    *list.Element // nil once evicted
	evicted bool
}

func newFileCache(dir string, maxOpen int) *fileCache {
	return &fileCache{dir: dir, max: maxOpen, open: make(map[uint64]*cachedFile)}
}

// acquire returns an open handle for pack num; release it when done. A
// missing file is reported with an error that wraps fs.ErrNotExist.
func (c *fileCache) acquire(num uint64) (*cachedFile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, ErrClosed
	}
	if cf, ok := c.open[num]; ok {
		cf.refs++
		c.lru.MoveToFront(cf.elem)
		return cf, nil
	}
	f, err := os.Open(packPath(c.dir, num))
	if err != nil {
		return nil, err
	}
	cf := &cachedFile{num: num, f: f, refs: 1}
	cf.elem = c.lru.PushFront(cf)
	c.open[num] = cf
	for c.lru.Len() > c.max {
		victim := c.lru.Back().Value.(*cachedFile)
		if victim == cf {
			break
		}
		c.dropLocked(victim)
	}
	return cf, nil
}

func (c *fileCache) release(cf *cachedFile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cf.refs--
	if cf.evicted && cf.refs == 0 {
		_ = cf.f.Close()
	}
}

// dropLocked removes cf from the cache; it is closed now or by its last user.
func (c *fileCache) dropLocked(cf *cachedFile) {
	c.lru.Remove(cf.elem)
	delete(c.open, cf.num)
	cf.elem = nil
	cf.evicted = true
	if cf.refs == 0 {
		_ = cf.f.Close()
	}
}

// forget drops the handle of pack num, before the file is removed or
// replaced.
func (c *fileCache) forget(num uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cf, ok := c.open[num]; ok {
		c.dropLocked(cf)
	}
}

func (c *fileCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.lru.Len() > 0 {
		c.dropLocked(c.lru.Front().Value.(*cachedFile))
	}
	c.closed = true
}

// readFull reads len(b) bytes at off; a file that ends early yields
// io.ErrUnexpectedEOF.
func readFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// isNotExist reports whether err says a file does not exist.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// HasLocalPacks reports whether the store directory dir holds any pack
// file, without opening the store.
func HasLocalPacks(dir string) (bool, error) {
	packs, _, err := listPacks(dir)
	if isNotExist(err) {
		return false, nil
	}
	return len(packs) > 0, err
}

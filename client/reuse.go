package client

import (
	"context"
	"io"
	"slices"
	"sync"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/chunker"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/syncproto"
)

// maxLocations is how many local copies of one chunk the index remembers:
// enough to survive a stale one or two, without letting a file full of
// identical chunks fill memory.
const maxLocations = 3

// location is where a chunk was when its file was last scanned.
type location struct {
	path string
	off  int64
	size uint32
}

// ReuseIndex maps chunk IDs to places in local files that held them at the
// last scan, so a download copies a chunk from the local tree instead of
// fetching it: a renamed or copied file costs no transfer. Every copy is
// verified against its ID before use, because the file may have changed
// since; a stale location is dropped and the chunk fetched. It is safe for
// concurrent use.
type ReuseIndex struct {
	dir string

	mu   sync.Mutex
	locs map[cas.ID][]location
	// versions maps content hashes to a path whose local content is that
	// server version: a download of the same content elsewhere (a copy, a
	// rename) asks for its chunk list as a delta against it.
	versions map[cas.ID]string
	// partial: the root has more chunks than reuseBudget, and locs holds
	// only those of the files added for the downloads in flight (AddFile),
	// counted in added.
	partial bool
	added   map[string]int
}

// reuseBudget bounds the chunk locations a ReuseIndex holds, about 120
// bytes each: a root of up to some 70 GiB at the default chunk size is
// indexed whole. A larger root is indexed by whole-file versions only
// (some 100 bytes per file), and each download adds the chunks of the
// local files it most likely shares with (AddFile): the old content of
// its path and the local version of the same content (a rename, a copy).
// Without the bound, a pull of one new file into a 1 TB root would hold
// some 1.7 GB. Variable for tests.
var reuseBudget = 1 << 20

// BuildReuseIndex indexes the chunk lists of every live record of root
// (within reuseBudget; see there). Records with pending changes are
// included: their chunk lists describe the local content as scanned,
// which is what a copy reads.
func BuildReuseIndex(ctx context.Context, st *State, root string) (*ReuseIndex, error) {
	r, err := st.Root(ctx, root)
	if err != nil {
		return nil, err
	}
	x := &ReuseIndex{dir: r.Dir, locs: map[cas.ID][]location{}, versions: map[cas.ID]string{}}
	// The chunk count is estimated from the sizes, so that a root too
	// large to index whole is not read whole either.
	avg := int64(max(r.Chunking.Avg, 1))
	chunks := 0
	err = st.Files(ctx, root, false, func(rec FileRecord) error {
		if rec.Deleted || rec.Stat.Size == 0 {
			return nil // no chunks
		}
		if rec.BaseSeq != 0 && rec.Hash == rec.BaseHash {
			x.versions[rec.Hash] = rec.Path
		}
		chunks += int((rec.Stat.Size + avg - 1) / avg)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if chunks > reuseBudget {
		x.partial = true
		return x, nil
	}
	err = st.chunkLists(ctx, root, func(path string, chunks []syncproto.ChunkRef) error {
		x.addChunks(path, chunks)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return x, nil
}

// AddFile adds the chunks of the local file at path, as last scanned, to
// an index that does not hold every file's (see reuseBudget), for one
// download: the returned release removes them once no download that
// added the file is left, so the index holds the sources of the downloads
// in flight and no more.
func (x *ReuseIndex) AddFile(path string, chunks []syncproto.ChunkRef) (release func()) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.partial || len(chunks) == 0 {
		return func() {}
	}
	if x.added == nil {
		x.added = map[string]int{}
	}
	x.added[path]++
	if x.added[path] == 1 {
		x.addChunks(path, chunks)
	}
	return sync.OnceFunc(func() {
		x.mu.Lock()
		defer x.mu.Unlock()
		if x.added[path]--; x.added[path] > 0 {
			return
		}
		delete(x.added, path)
		x.dropPath(path, chunks)
	})
}

// addChunks indexes the chunks of path; callers hold x.mu or own x.
func (x *ReuseIndex) addChunks(path string, chunks []syncproto.ChunkRef) {
	var off int64
	for _, c := range chunks {
		x.add(c.ID, location{path: path, off: off, size: c.Size})
		off += int64(c.Size)
	}
}

func (x *ReuseIndex) add(id cas.ID, loc location) {
	if len(x.locs[id]) < maxLocations && !slices.Contains(x.locs[id], loc) {
		x.locs[id] = append(x.locs[id], loc)
	}
}

// versionPath returns a path whose local content is the server version
// with content hash, as of the last scan.
func (x *ReuseIndex) versionPath(hash cas.ID) (string, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	p, ok := x.versions[hash]
	return p, ok
}

// Len returns how many distinct chunks the index knows.
func (x *ReuseIndex) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.locs)
}

// Locate returns the sync path and offset of a local copy of chunk id, as
// of the last scan; ok is false when there is none.
func (x *ReuseIndex) Locate(id cas.ID) (path string, off int64, ok bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	locs := x.locs[id]
	if len(locs) == 0 {
		return "", 0, false
	}
	return locs[0].path, locs[0].off, true
}

// ReadLocal reads chunk id from a local file and returns it if its BLAKE3
// matches id. Stale locations (changed, truncated, vanished or unreadable
// files) are dropped from the index; ok is false when no location holds
// the chunk any more, and the caller fetches it.
func (x *ReuseIndex) ReadLocal(ctx context.Context, id cas.ID) ([]byte, bool) {
	for ctx.Err() == nil {
		x.mu.Lock()
		locs := x.locs[id]
		if len(locs) == 0 {
			x.mu.Unlock()
			return nil, false
		}
		loc := locs[0]
		x.mu.Unlock()

		if data, ok := x.read(loc, id); ok {
			return data, true
		}
		x.drop(id, loc)
	}
	return nil, false
}

// read reads and verifies one location.
func (x *ReuseIndex) read(loc location, id cas.ID) ([]byte, bool) {
	if loc.size == 0 || loc.size > chunker.LargestMax {
		return nil, false
	}
	name, err := relpath.Join(x.dir, loc.path)
	if err != nil {
		return nil, false
	}
	f, _, err := openRegular(name)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	data := make([]byte, loc.size)
	if n, err := f.ReadAt(data, loc.off); n != len(data) || (err != nil && err != io.EOF) {
		return nil, false // truncated or unreadable
	}
	if cas.Sum(data) != id {
		return nil, false
	}
	return data, true
}

// drop removes a stale location of id.
func (x *ReuseIndex) drop(id cas.ID, loc location) {
	x.mu.Lock()
	defer x.mu.Unlock()
	locs := x.locs[id]
	for i, l := range locs {
		if l == loc {
			locs = append(locs[:i:i], locs[i+1:]...)
			break
		}
	}
	if len(locs) == 0 {
		delete(x.locs, id)
	} else {
		x.locs[id] = locs
	}
}

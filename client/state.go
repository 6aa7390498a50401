package client

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"

	"github.com/quic-s/quics/cas"
	"github.com/quic-s/quics/internal/relpath"
	"github.com/quic-s/quics/syncproto"
)

// State is the client's local state: its roots and, per root and path, a
// [FileRecord]. It lives in the home directory's badger database; every
// method is safe for concurrent use.
type State struct {
	db *badger.DB
}

// Flush puts what was committed on stable storage: the database does not
// wait for it on every commit (see OpenHome).
func (s *State) Flush() error {
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("client: flush state: %w", err)
	}
	return nil
}

// batchSize is how many records one transaction writes at most; a batch
// that badger finds too big is split further.
const batchSize = 512

// maxConflictRetries bounds retries of a transaction that collided with a
// concurrent one (badger.ErrConflict).
const maxConflictRetries = 10

// openState checks the schema version of db, writing it into an empty
// database.
func openState(db *badger.DB) (*State, error) {
	err := db.Update(func(txn *badger.Txn) error {
		item, err := txn.Get(schemaKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			if !isEmpty(txn) {
				return fmt.Errorf("%w: local state has records but no schema version", ErrSchemaVersion)
			}
			return txn.Set(schemaKey, encodeSchema(SchemaVersion))
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 4 {
				return fmt.Errorf("%w: schema key holds %d bytes", ErrSchemaVersion, len(v))
			}
			if got := binary.BigEndian.Uint32(v); got != SchemaVersion {
				return fmt.Errorf("%w: found %d, this qic reads %d", ErrSchemaVersion, got, SchemaVersion)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("local state: %w", err)
	}
	return &State{db: db}, nil
}

func isEmpty(txn *badger.Txn) bool {
	it := txn.NewIterator(badger.IteratorOptions{})
	defer it.Close()
	it.Rewind()
	return !it.Valid()
}

// update runs fn in a read-write transaction, retrying when it collided
// with a concurrent transaction.
func (s *State) update(ctx context.Context, fn func(txn *badger.Txn) error) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := s.db.Update(fn)
		if !errors.Is(err, badger.ErrConflict) || attempt == maxConflictRetries {
			return err
		}
	}
}

// updateInBatches runs fn(txn, i) for every i in [0, n), batchSize at a
// time, halving a batch that badger finds too big. fn must only touch the
// transaction: a failed batch is run again from its start.
func (s *State) updateInBatches(ctx context.Context, n int, fn func(txn *badger.Txn, i int) error) error {
	size := batchSize
	for start := 0; start < n; {
		end := min(start+size, n)
		err := s.update(ctx, func(txn *badger.Txn) error {
			for i := start; i < end; i++ {
				if err := fn(txn, i); err != nil {
					return err
				}
			}
			return nil
		})
		if errors.Is(err, badger.ErrTxnTooBig) && end-start > 1 {
			size = (end - start) / 2
			continue
		}
		if err != nil {
			return err
		}
		start = end
	}
	return nil
}

func (s *State) view(ctx context.Context, fn func(txn *badger.Txn) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

// PutRoot creates or replaces the root r. Dir must be absolute and the
// chunk parameters valid. Creating a root clears any records left by an
// earlier root of the same name whose removal was interrupted.
func (s *State) PutRoot(ctx context.Context, r Root) error {
	if err := checkRootName(r.Name); err != nil {
		return err
	}
	if !filepath.IsAbs(r.Dir) || len(r.Dir) > maxDirLen {
		return fmt.Errorf("client: root %q: directory %q is not an absolute path", r.Name, r.Dir)
	}
	if err := r.Chunking.Validate(); err != nil {
		return fmt.Errorf("client: root %q: %w", r.Name, err)
	}
	r.Dir = filepath.Clean(r.Dir)
	if _, err := s.Root(ctx, r.Name); errors.Is(err, ErrRootNotFound) {
		if err := s.dropFiles(r.Name); err != nil {
			return err
		}
	}
	err := s.update(ctx, func(txn *badger.Txn) error {
		return txn.Set(rootKey(r.Name), encodeRoot(r))
	})
	if err != nil {
		return fmt.Errorf("client: put root %q: %w", r.Name, err)
	}
	return nil
}

// Root returns the root called name, or an error wrapping ErrRootNotFound.
func (s *State) Root(ctx context.Context, name string) (Root, error) {
	if err := checkRootName(name); err != nil {
		return Root{}, err
	}
	var r Root
	err := s.view(ctx, func(txn *badger.Txn) error {
		item, err := txn.Get(rootKey(name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: %q", ErrRootNotFound, name)
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) (err error) {
			r, err = decodeRoot(name, v)
			return err
		})
	})
	return r, err
}

// UpdateRoot changes the root called name with fn in one transaction (for
// the cursor and the last sync time). fn must not change the name.
func (s *State) UpdateRoot(ctx context.Context, name string, fn func(*Root) error) error {
	if err := checkRootName(name); err != nil {
		return err
	}
	return s.update(ctx, func(txn *badger.Txn) error {
		item, err := txn.Get(rootKey(name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: %q", ErrRootNotFound, name)
		}
		if err != nil {
			return err
		}
		var r Root
		if err := item.Value(func(v []byte) (err error) {
			r, err = decodeRoot(name, v)
			return err
		}); err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
		if r.Name != name {
			return fmt.Errorf("client: update root %q: the name cannot change (to %q)", name, r.Name)
		}
		if err := r.Chunking.Validate(); err != nil {
			return fmt.Errorf("client: update root %q: %w", name, err)
		}
		return txn.Set(rootKey(name), encodeRoot(r))
	})
}

// Roots returns every root, in name order.
func (s *State) Roots(ctx context.Context) ([]Root, error) {
	var roots []Root
	err := s.view(ctx, func(txn *badger.Txn) error {
		pre := []byte{prefixRoot}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			name := string(it.Item().Key()[1:])
			if err := it.Item().Value(func(v []byte) error {
				r, err := decodeRoot(name, v)
				roots = append(roots, r)
				return err
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return roots, err
}

// DeleteRoot forgets the root called name and all its file records. The
// local directory is not touched.
func (s *State) DeleteRoot(ctx context.Context, name string) error {
	if err := checkRootName(name); err != nil {
		return err
	}
	err := s.update(ctx, func(txn *badger.Txn) error {
		if _, err := txn.Get(rootKey(name)); errors.Is(err, badger.ErrKeyNotFound) {
			return fmt.Errorf("%w: %q", ErrRootNotFound, name)
		}
		return txn.Delete(rootKey(name))
	})
	if err != nil {
		return err
	}
	// The root record goes first: records without a root are invisible and
	// cleared by the next PutRoot of that name if this is interrupted.
	return s.dropFiles(name)
}

// dropFiles deletes every file, chunk list, pending key and kept base of
// root.
func (s *State) dropFiles(root string) error {
	var pres [][]byte
	for _, p := range fileKeyPrefixes {
		pre := pathPrefix(p, root)
		found := false
		_ = s.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: pre})
			defer it.Close()
			it.Rewind()
			found = it.Valid()
			return nil
		})
		if found {
			pres = append(pres, pre)
		}
	}
	if len(pres) == 0 {
		return nil
	}
	if err := s.db.DropPrefix(pres...); err != nil {
		return fmt.Errorf("client: drop records of root %q: %w", root, err)
	}
	return nil
}

// checkFile validates what PutFile stores.
func checkFile(root string, rec *FileRecord) error {
	if err := checkRootName(root); err != nil {
		return err
	}
	if err := relpath.Check(rec.Path); err != nil {
		return fmt.Errorf("client: file record in root %q: %w", root, err)
	}
	if len(rec.Chunks) > MaxChunks {
		return fmt.Errorf("client: file record %q: %d chunks, at most %d", rec.Path, len(rec.Chunks), MaxChunks)
	}
	if rec.Stat.Size < 0 || rec.Stat.Mode > 0o777 {
		return fmt.Errorf("client: file record %q: size %d, mode %#o", rec.Path, rec.Stat.Size, rec.Stat.Mode)
	}
	return nil
}

// putFileTxn writes rec's record, chunk list and pending marker.
func putFileTxn(txn *badger.Txn, root string, rec *FileRecord) error {
	if err := txn.Set(pathKey(prefixFile, root, rec.Path), encodeFile(rec)); err != nil {
		return err
	}
	ck := pathKey(prefixChunks, root, rec.Path)
	if len(rec.Chunks) == 0 {
		if err := txn.Delete(ck); err != nil {
			return err
		}
	} else if err := txn.Set(ck, encodeChunks(rec.Chunks)); err != nil {
		return err
	}
	if err := putBaseTxn(txn, root, rec); err != nil {
		return err
	}
	return putPendingTxn(txn, root, rec)
}

// putPendingTxn writes or removes rec's pending marker.
func putPendingTxn(txn *badger.Txn, root string, rec *FileRecord) error {
	pk := pathKey(prefixPending, root, rec.Path)
	if rec.Pending {
		return txn.Set(pk, nil)
	}
	return txn.Delete(pk)
}

// putBaseTxn drops the kept base chunk list (see keepBaseTxn) once it
// cannot be needed: the local content is the base again, or there is no
// base. A list kept for a base that moved since is left for now; BaseChunks
// checks the base it was kept for.
func putBaseTxn(txn *badger.Txn, root string, rec *FileRecord) error {
	if dropsBase(rec) {
		return txn.Delete(pathKey(prefixBase, root, rec.Path))
	}
	return nil
}

// dropsBase reports whether rec has no use for a kept base chunk list:
// it has no base, or its content is the base's.
func dropsBase(rec *FileRecord) bool {
	return rec.BaseSeq == 0 || (!rec.Deleted && rec.Hash == rec.BaseHash)
}

// keepBaseTxn runs before a scan replaces the record before (encoded) with
// rec: when the local content was the base and no longer is, the chunk
// list about to be replaced is the base's, and is kept as such, so a push
// can send only what changed (a delta proposal, delta chunks).
func keepBaseTxn(txn *badger.Txn, root string, before []byte, rec *FileRecord) error {
	if before == nil || rec.BaseSeq == 0 || rec.Hash == rec.BaseHash {
		return nil
	}
	old, err := decodeFile(rec.Path, before)
	if err != nil || old.Deleted || old.Hash != old.BaseHash || old.BaseHash != rec.BaseHash {
		return nil //nolint:nilerr // the scan compared these bytes already; nothing to keep
	}
	item, err := txn.Get(pathKey(prefixChunks, root, rec.Path))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil // the empty file: no chunks to keep
	}
	if err != nil {
		return err
	}
	return item.Value(func(v []byte) error {
		chunks, err := decodeChunks(rec.Path, v)
		if err != nil {
			return err
		}
		return txn.Set(pathKey(prefixBase, root, rec.Path), encodeBase(rec.BaseHash, chunks))
	})
}

// BaseChunks returns the chunk list of rec's base version when the local
// state knows it: rec's own list when the local content is the base, the
// list a scan kept when the content changed from it, else nil.
func (s *State) BaseChunks(ctx context.Context, root string, rec *FileRecord) ([]syncproto.ChunkRef, error) {
	switch {
	case rec.BaseSeq == 0:
		return nil, nil
	case !rec.Deleted && rec.Hash == rec.BaseHash:
		return rec.Chunks, nil
	}
	var chunks []syncproto.ChunkRef
	err := s.view(ctx, func(txn *badger.Txn) error {
		item, err := txn.Get(pathKey(prefixBase, root, rec.Path))
		switch {
		case errors.Is(err, badger.ErrKeyNotFound):
			return nil
		case err != nil:
			return err
		}
		return item.Value(func(v []byte) error {
			hash, list, err := decodeBase(rec.Path, v)
			if err == nil && hash == rec.BaseHash {
				chunks = list
			}
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("client: base chunk list of %q: %w", rec.Path, err)
	}
	return chunks, nil
}

func deleteFileTxn(txn *badger.Txn, root, path string) error {
	for _, p := range fileKeyPrefixes {
		if err := txn.Delete(pathKey(p, root, path)); err != nil {
			return err
		}
	}
	return nil
}

// getFileTxn reads the record of path with its chunk list.
func getFileTxn(txn *badger.Txn, root, path string) (FileRecord, error) {
	rec, err := getRecordTxn(txn, root, path)
	if err != nil {
		return FileRecord{}, err
	}
	return rec, loadChunksTxn(txn, root, &rec)
}

// getRecordTxn reads the record of path without its chunk list.
func getRecordTxn(txn *badger.Txn, root, path string) (FileRecord, error) {
	item, err := txn.Get(pathKey(prefixFile, root, path))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return FileRecord{}, fmt.Errorf("%w: %q in root %q", ErrFileNotFound, path, root)
	}
	if err != nil {
		return FileRecord{}, err
	}
	var rec FileRecord
	if err := item.Value(func(v []byte) (err error) {
		rec, err = decodeFile(path, v)
		return err
	}); err != nil {
		return FileRecord{}, err
	}
	return rec, nil
}

func loadChunksTxn(txn *badger.Txn, root string, rec *FileRecord) error {
	item, err := txn.Get(pathKey(prefixChunks, root, rec.Path))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return item.Value(func(v []byte) (err error) {
		rec.Chunks, err = decodeChunks(rec.Path, v)
		return err
	})
}

// PutFile creates or replaces the record of rec.Path in root.
func (s *State) PutFile(ctx context.Context, root string, rec FileRecord) error {
	return s.PutFiles(ctx, root, []FileRecord{rec})
}

// PutFiles writes many records, in as few transactions as badger allows.
// Each record is written whole, but a failure can leave the records before
// it written.
func (s *State) PutFiles(ctx context.Context, root string, recs []FileRecord) error {
	for i := range recs {
		if err := checkFile(root, &recs[i]); err != nil {
			return err
		}
	}
	err := s.updateInBatches(ctx, len(recs), func(txn *badger.Txn, i int) error {
		return putFileTxn(txn, root, &recs[i])
	})
	if err != nil {
		return fmt.Errorf("client: put file records in root %q: %w", root, err)
	}
	return nil
}

// File returns the record of path in root, with its chunk list, or an
// error wrapping ErrFileNotFound.
func (s *State) File(ctx context.Context, root, path string) (FileRecord, error) {
	var rec FileRecord
	err := s.view(ctx, func(txn *badger.Txn) (err error) {
		rec, err = getFileTxn(txn, root, path)
		return err
	})
	return rec, err
}

// DeleteFile removes the record of path in root; a missing record is not
// an error.
func (s *State) DeleteFile(ctx context.Context, root, path string) error {
	return s.update(ctx, func(txn *badger.Txn) error {
		return deleteFileTxn(txn, root, path)
	})
}

// Files calls fn with every record of root in path (byte) order. Chunk
// lists are loaded only when withChunks is set: change detection needs the
// stat fields only, and a large tree's chunk lists are most of the state.
// fn runs inside a read transaction and must not write to s.
func (s *State) Files(ctx context.Context, root string, withChunks bool, fn func(FileRecord) error) error {
	return s.files(ctx, root, "", withChunks, func(rec FileRecord, _ []byte) error { return fn(rec) })
}

// files is Files for the records whose path starts with under (bytes, not
// path components: "a" also gives "ab"), also giving fn each record's
// stored bytes (valid during the call only).
func (s *State) files(ctx context.Context, root, under string, withChunks bool, fn func(FileRecord, []byte) error) error {
	return s.view(ctx, func(txn *badger.Txn) error {
		return eachPathTxn(ctx, txn, prefixFile, root, under, func(path string, v []byte) error {
			rec, err := decodeFile(path, v)
			if err == nil && withChunks {
				err = loadChunksTxn(txn, root, &rec)
			}
			if err != nil {
				return err
			}
			return fn(rec, v)
		})
	})
}

// chunkLists calls fn, in path order, with the path and chunk list of every
// record of root that has one (a live, non-empty file): the records
// themselves are not read.
func (s *State) chunkLists(ctx context.Context, root string, fn func(path string, chunks []syncproto.ChunkRef) error) error {
	return s.view(ctx, func(txn *badger.Txn) error {
		return eachPathTxn(ctx, txn, prefixChunks, root, "", func(path string, v []byte) error {
			chunks, err := decodeChunks(path, v)
			if err != nil {
				return err
			}
			return fn(path, chunks)
		})
	})
}

// eachPathTxn calls fn, in path order, with the path and value (valid
// during the call only) of every key pathKey(p, root, path) whose path
// starts with under.
func eachPathTxn(ctx context.Context, txn *badger.Txn, p byte, root, under string, fn func(path string, v []byte) error) error {
	pre := pathPrefix(p, root)
	it := txn.NewIterator(badger.IteratorOptions{Prefix: pathKey(p, root, under), PrefetchValues: true, PrefetchSize: 100})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		path, err := pathFromKey(pre, it.Item().Key())
		if err != nil {
			return err
		}
		if err := it.Item().Value(func(v []byte) error { return fn(path, v) }); err != nil {
			return err
		}
	}
	return nil
}

// PendingFiles calls fn, in path order, with every record of root that has
// a local change the server has not accepted yet, with its chunk list. It
// reads the pending index, not every record. fn runs inside a read
// transaction and must not write to s.
func (s *State) PendingFiles(ctx context.Context, root string, fn func(FileRecord) error) error {
	return s.pendingFiles(ctx, root, "", true, fn)
}

// PendingPage returns, in path order, the pending records of root whose
// path sorts after after ("" for the first), with their chunk lists: at
// least one, and then as many as fit in maxFiles records and maxChunks
// chunk list entries. more reports whether pending records remain past
// the page.
func (s *State) PendingPage(ctx context.Context, root, after string, maxFiles, maxChunks int) (recs []FileRecord, more bool, err error) {
	chunks := 0
	errFull := errors.New("page full")
	err = s.pendingFiles(ctx, root, after, true, func(rec FileRecord) error {
		if len(recs) > 0 && (len(recs) == maxFiles || chunks+len(rec.Chunks) > maxChunks) {
			return errFull
		}
		recs = append(recs, rec)
		chunks += len(rec.Chunks)
		return nil
	})
	if errors.Is(err, errFull) {
		return recs, true, nil
	}
	return recs, false, err
}

// pendingFiles calls fn with the pending records of root whose path sorts
// after after, with their chunk lists if withChunks.
func (s *State) pendingFiles(ctx context.Context, root, after string, withChunks bool, fn func(FileRecord) error) error {
	pre := pathPrefix(prefixPending, root)
	return s.view(ctx, func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: pre})
		defer it.Close()
		start := pre
		if after != "" {
			// The first key past after's: after itself followed by a 0.
			start = append(pathKey(prefixPending, root, after), 0)
		}
		for it.Seek(start); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			path, err := pathFromKey(pre, it.Item().Key())
			if err != nil {
				return err
			}
			rec, err := getRecordTxn(txn, root, path)
			if err == nil && withChunks {
				err = loadChunksTxn(txn, root, &rec)
			}
			if err != nil {
				return fmt.Errorf("pending %q: %w", path, err)
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
		return nil
	})
}

// MarkCandidate records that the server kept the record's change, made at
// lastUpdate with content hash, as a conflict candidate. A record changed
// since (a newer local edit) is left alone: that edit is not on the server.
func (s *State) MarkCandidate(ctx context.Context, root, path string, lastUpdate uint64, hash cas.ID) error {
	return s.update(ctx, func(txn *badger.Txn) error {
		rec, err := getFileTxn(txn, root, path)
		if err != nil {
			return err
		}
		if rec.LastUpdate != lastUpdate {
			return nil
		}
		rec.HasCandidate, rec.Candidate = true, hash
		return putFileTxn(txn, root, &rec)
	})
}

// Accept records that the server accepted (committed, or found converged)
// the local change of path that the caller proposed from the record with
// LastUpdate lastUpdate, as version seq with content hash. The base moves
// to that version. If no newer local change was found since, the change is
// no longer pending, and an accepted deletion removes the record.
func (s *State) Accept(ctx context.Context, root, path string, lastUpdate, seq uint64, hash cas.ID) error {
	return s.AcceptMany(ctx, root, []Acceptance{{Path: path, LastUpdate: lastUpdate, Seq: seq, Hash: hash}})
}

// Acceptance is one accepted change for AcceptMany: the arguments of
// Accept.
type Acceptance struct {
	Path       string
	LastUpdate uint64
	Seq        uint64
	Hash       cas.ID
}

// AcceptMany is Accept for many paths of root, in few transactions: a
// batch of proposals is settled without one commit per file.
func (s *State) AcceptMany(ctx context.Context, root string, acc []Acceptance) error {
	return s.updateInBatches(ctx, len(acc), func(txn *badger.Txn, i int) error {
		a := &acc[i]
		old, err := getRecordTxn(txn, root, a.Path)
		if err != nil {
			return err
		}
		rec := old
		rec.BaseSeq, rec.BaseHash = a.Seq, a.Hash
		if rec.LastUpdate == a.LastUpdate {
			if rec.Deleted {
				return deleteFileTxn(txn, root, a.Path)
			}
			rec.Pending = false
		}
		return putRecordTxn(txn, root, &rec, &old)
	})
}

// putRecordTxn replaces old, the stored record of rec.Path, with rec,
// which has the same content (its chunk list stays as it is): it writes
// the record, and the pending marker and kept base only where they
// change. Accepting a batch of new files then costs two writes a file,
// not four.
func putRecordTxn(txn *badger.Txn, root string, rec, old *FileRecord) error {
	if err := txn.Set(pathKey(prefixFile, root, rec.Path), encodeFile(rec)); err != nil {
		return err
	}
	// putFileTxn dropped the kept base of a record without one; a scan
	// keeps one only for a record that has one (see keepBaseTxn).
	if !dropsBase(old) {
		if err := putBaseTxn(txn, root, rec); err != nil {
			return err
		}
	}
	if rec.Pending == old.Pending {
		return nil
	}
	return putPendingTxn(txn, root, rec)
}

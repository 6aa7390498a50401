package kv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// A crash right after badger created a memtable's log file, before it gave
// the file its size, leaves an empty .mem file: the database must open all
// the same, with everything committed before.
func TestOpenAfterCrashLeftEmptyMemtable(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{SmallFootprint: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	maxFid := 0
	for _, e := range entries {
		if name, ok := strings.CutSuffix(e.Name(), ".mem"); ok {
			if fid, err := strconv.Atoi(name); err == nil && fid > maxFid {
				maxFid = fid
			}
		}
	}
	empty := filepath.Join(dir, fmt.Sprintf("%05d.mem", maxFid+1)) // badger's name for the next memtable
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	db, err = Open(dir, Options{SmallFootprint: true})
	if err != nil {
		t.Fatalf("open after the crash: %v", err)
	}
	defer db.Close()
	err = db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte("k"))
		if err != nil {
			return err
		}
		v, err := item.ValueCopy(nil)
		if err == nil && string(v) != "v" {
			err = errors.New("value " + string(v))
		}
		return err
	})
	if err != nil {
		t.Fatalf("read after the crash: %v", err)
	}
}

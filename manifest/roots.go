package manifest

import (
	"context"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/secret"
)

// NewRoot is what CreateRoot needs. The password is hashed before it is
// stored.
type NewRoot struct {
	Name      string
	Owner     uuid.UUID
	Password  string
	Chunking  ChunkParams
	Retention Retention
}

// CreateRoot stores a new root with the next RootID and makes its owner,
// which must be a registered client, its first member. A name in use is
// ErrExists.
func (db *DB) CreateRoot(ctx context.Context, nr NewRoot) (Root, error) {
	defer db.rootsChanged()
	if err := validRootName(nr.Name); err != nil {
		return Root{}, fmt.Errorf("manifest: create root: %w", err)
	}
	pwHash, err := secret.Hash(nr.Password, db.passwordParams)
	if err != nil {
		return Root{}, fmt.Errorf("manifest: create root %q: %w", nr.Name, err)
	}
	now := db.now()
	r := Root{Name: nr.Name, Owner: nr.Owner, PasswordHash: pwHash, Chunking: nr.Chunking, Created: now, Retention: nr.Retention}
	r.ID = 1 // validated with a placeholder; the real id comes from the counter
	if err := r.validate(); err != nil {
		return Root{}, fmt.Errorf("manifest: create root %q: %w", nr.Name, err)
	}
	membership, err := encodeMembership(now)
	if err != nil {
		return Root{}, err
	}
	var out Root
	err = db.update(ctx, "create root", func(txn *badger.Txn) error {
		if _, err := getClient(txn, nr.Owner); err != nil {
			return fmt.Errorf("owner of root %q: %w", nr.Name, err)
		}
		taken, err := exists(txn, rootNameKey(nr.Name))
		if err != nil {
			return err
		}
		if taken {
			return fmt.Errorf("%w: root %q", ErrExists, nr.Name)
		}
		id := RootID(1)
		raw, found, err := lookup(txn, nextRootIDKey)
		if err != nil {
			return err
		}
		if found {
			next, err := decodeUint64("next root id", nextRootIDKey, raw)
			if err != nil {
				return err
			}
			id = RootID(next)
		}
		root := r
		root.ID = id
		val, err := encodeRoot(root)
		if err != nil {
			return err
		}
		for _, kv := range []struct{ k, v []byte }{
			{nextRootIDKey, appendUint64(nil, uint64(id)+1)},
			{rootNameKey(root.Name), appendUint64(nil, uint64(id))},
			{rootKey(id), val},
			{memberKey(id, root.Owner), membership},
			{clientMemberKey(root.Owner, id), nil},
		} {
			if err := txn.Set(kv.k, kv.v); err != nil {
				return fmt.Errorf("manifest: create root %q: %w", root.Name, err)
			}
		}
		out, err = decodeRoot(val)
		return err
	})
	return out, err
}

// RootByID returns the root with id.
func (db *DB) RootByID(ctx context.Context, id RootID) (Root, error) {
	var r Root
	err := db.view(ctx, "get root", func(txn *badger.Txn) error {
		var err error
		r, err = getRoot(txn, id)
		return err
	})
	return r, err
}

// RootByName returns the root called name.
func (db *DB) RootByName(ctx context.Context, name string) (Root, error) {
	var r Root
	err := db.view(ctx, "get root", func(txn *badger.Txn) error {
		id, err := rootIDByName(txn, name)
		if err != nil {
			return err
		}
		r, err = getRoot(txn, id)
		return err
	})
	return r, err
}

func rootIDByName(txn *badger.Txn, name string) (RootID, error) {
	key := rootNameKey(name)
	raw, err := getValue(txn, key, "root %q", name)
	if err != nil {
		return 0, err
	}
	id, err := decodeUint64("root name", key, raw)
	return RootID(id), err
}

func getRoot(txn *badger.Txn, id RootID) (Root, error) {
	val, err := getValue(txn, rootKey(id), "root %s", id)
	if err != nil {
		return Root{}, err
	}
	r, err := decodeRoot(val)
	if err != nil {
		return Root{}, fmt.Errorf("root %d: %w", id, err)
	}
	if r.ID != id {
		return Root{}, fmt.Errorf("%w: record under root key %d has id %d", ErrCorrupt, id, r.ID)
	}
	return r, nil
}

func putRoot(txn *badger.Txn, r Root) error {
	val, err := encodeRoot(r)
	if err != nil {
		return err
	}
	if err := txn.Set(rootKey(r.ID), val); err != nil {
		return fmt.Errorf("manifest: write root %d: %w", r.ID, err)
	}
	return nil
}

// ListRoots returns every root in id order.
func (db *DB) ListRoots(ctx context.Context) ([]Root, error) {
	var out []Root
	err := db.view(ctx, "list roots", func(txn *badger.Txn) error {
		return scan(ctx, txn, []byte{prefixRoot}, false, func(key, val []byte) error {
			id, err := parseRootKey(key)
			if err != nil {
				return err
			}
			r, err := decodeRoot(val)
			if err != nil {
				return fmt.Errorf("root %d: %w", id, err)
			}
			if r.ID != id {
				return fmt.Errorf("%w: record under root key %d has id %d", ErrCorrupt, id, r.ID)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// VerifyRootPassword returns nil if password is the root's password and
// ErrBadCredentials if not.
func (db *DB) VerifyRootPassword(ctx context.Context, id RootID, password string) error {
	r, err := db.RootByID(ctx, id)
	if err != nil {
		return err
	}
	return verifyRootPassword(r, password)
}

func verifyRootPassword(r Root, password string) error {
	ok, err := secret.Verify(password, r.PasswordHash)
	if err != nil {
		return fmt.Errorf("manifest: root %d password: %w", r.ID, err)
	}
	if !ok {
		return fmt.Errorf("%w: password of root %q", ErrBadCredentials, r.Name)
	}
	return nil
}

// Join makes client a member of the root called name if password is the
// root's password, and returns the root. The slow password check runs
// outside any transaction.
func (db *DB) Join(ctx context.Context, name string, client uuid.UUID, password string) (Root, error) {
	r, err := db.RootByName(ctx, name)
	if err != nil {
		return Root{}, err
	}
	if err := verifyRootPassword(r, password); err != nil {
		return Root{}, err
	}
	if err := db.AddMember(ctx, r.ID, client); err != nil {
		return Root{}, err
	}
	return r, nil
}

// AddMember makes a registered client a member of a root, without a
// password (the server decides who may). An existing membership is
// ErrExists.
func (db *DB) AddMember(ctx context.Context, root RootID, client uuid.UUID) error {
	defer db.rootsChanged()
	val, err := encodeMembership(db.now())
	if err != nil {
		return err
	}
	return db.update(ctx, "add member", func(txn *badger.Txn) error {
		if _, err := getRoot(txn, root); err != nil {
			return err
		}
		if _, err := getClient(txn, client); err != nil {
			return err
		}
		found, err := exists(txn, memberKey(root, client))
		if err != nil {
			return err
		}
		if found {
			return fmt.Errorf("%w: client %s in root %d", ErrExists, client, root)
		}
		if err := txn.Set(memberKey(root, client), val); err != nil {
			return fmt.Errorf("manifest: add client %s to root %d: %w", client, root, err)
		}
		if err := txn.Set(clientMemberKey(client, root), nil); err != nil {
			return fmt.Errorf("manifest: add client %s to root %d: %w", client, root, err)
		}
		return nil
	})
}

// RemoveMember ends a client's membership of a root (leaving). A client
// that is not a member is ErrNotFound. The owner may leave too; it stays
// recorded as owner.
func (db *DB) RemoveMember(ctx context.Context, root RootID, client uuid.UUID) error {
	defer db.rootsChanged()
	return db.update(ctx, "remove member", func(txn *badger.Txn) error {
		found, err := exists(txn, memberKey(root, client))
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: client %s in root %d", ErrNotFound, client, root)
		}
		return deleteMembership(txn, root, client)
	})
}

// IsMember reports whether client is a member of root.
func (db *DB) IsMember(ctx context.Context, root RootID, client uuid.UUID) (bool, error) {
	var found bool
	err := db.view(ctx, "is member", func(txn *badger.Txn) error {
		var err error
		found, err = exists(txn, memberKey(root, client))
		return err
	})
	return found, err
}

// Member is one client's membership of a root.
type Member struct {
	Client uuid.UUID
	Joined time.Time
}

// MembersOfRoot returns the members of root in client id order.
func (db *DB) MembersOfRoot(ctx context.Context, root RootID) ([]Member, error) {
	var out []Member
	err := db.view(ctx, "members of root", func(txn *badger.Txn) error {
		if _, err := getRoot(txn, root); err != nil {
			return err
		}
		return scan(ctx, txn, rootScope(prefixMember, root), false, func(key, val []byte) error {
			_, client, err := parseMemberKey(key)
			if err != nil {
				return err
			}
			joined, err := decodeMembership(val)
			if err != nil {
				return fmt.Errorf("member %s of root %d: %w", client, root, err)
			}
			out = append(out, Member{Client: client, Joined: joined})
			return nil
		})
	})
	return out, err
}

// RootsOfClient returns the roots client belongs to, in id order.
func (db *DB) RootsOfClient(ctx context.Context, client uuid.UUID) ([]Root, error) {
	var out []Root
	err := db.view(ctx, "roots of client", func(txn *badger.Txn) error {
		prefix := append([]byte{prefixClientMembers}, client[:]...)
		return scan(ctx, txn, prefix, true, func(key, _ []byte) error {
			_, id, err := parseClientMemberKey(key)
			if err != nil {
				return err
			}
			r, err := getRoot(txn, id)
			if err != nil {
				return fmt.Errorf("root of client %s: %w", client, err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// RemoveRoot deletes a root with its files, versions, conflicts, feed and
// memberships. Chunk lists are shared between roots and stay for GC.
//
// The root record, its name and memberships go in one transaction, so the
// root disappears atomically and commits to it fail from then on. The
// per-file keys follow in batches; if that is interrupted, the leftovers
// sit under a RootID that is never handed out again and are unreachable.
func (db *DB) RemoveRoot(ctx context.Context, id RootID) error {
	defer db.rootsChanged()
	err := db.update(ctx, "remove root", func(txn *badger.Txn) error {
		r, err := getRoot(txn, id)
		if err != nil {
			return err
		}
		var members []uuid.UUID
		err = scan(ctx, txn, rootScope(prefixMember, id), true, func(key, _ []byte) error {
			_, client, err := parseMemberKey(key)
			members = append(members, client)
			return err
		})
		if err != nil {
			return err
		}
		for _, client := range members {
			if err := deleteMembership(txn, id, client); err != nil {
				return err
			}
		}
		if err := txn.Delete(rootNameKey(r.Name)); err != nil {
			return fmt.Errorf("manifest: remove root %d: %w", id, err)
		}
		return txn.Delete(rootKey(id))
	})
	if err != nil {
		return err
	}
	for _, prefix := range []byte{prefixHead, prefixVersion, prefixConflict, prefixFeed} {
		if err := db.deleteRange(ctx, rootScope(prefix, id)); err != nil {
			return fmt.Errorf("manifest: remove root %d: %w", id, err)
		}
	}
	return nil
}

// deleteRange deletes every key under prefix, in as many batches as badger
// needs.
func (db *DB) deleteRange(ctx context.Context, prefix []byte) error {
	wb := db.kv.NewWriteBatch()
	defer wb.Cancel()
	err := db.view(ctx, "delete range", func(txn *badger.Txn) error {
		return scan(ctx, txn, prefix, true, func(key, _ []byte) error {
			return wb.Delete(append([]byte(nil), key...))
		})
	})
	if err != nil {
		return err
	}
	return wb.Flush()
}

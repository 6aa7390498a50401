package manifest

import (
	"bytes"
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
	"github.com/google/uuid"

	"github.com/quic-s/quics/internal/secret"
)

// NewClient is what RegisterClient needs. The token is the plain secret
// the client will present (see secret.NewToken); only its hash is stored.
type NewClient struct {
	ID      uuid.UUID
	Name    string
	Token   string
	Address string
}

// RegisterClient stores a new client with its token hashed. It fails with
// ErrExists if the id is taken.
func (db *DB) RegisterClient(ctx context.Context, nc NewClient) (Client, error) {
	tokenHash, err := secret.Hash(nc.Token, db.tokenParams)
	if err != nil {
		return Client{}, fmt.Errorf("manifest: register client %s: %w", nc.ID, err)
	}
	now := db.now()
	c := Client{ID: nc.ID, Name: nc.Name, TokenHash: tokenHash, LastAddress: nc.Address, Registered: now, LastSeen: now}
	if err := c.validate(); err != nil {
		return Client{}, fmt.Errorf("manifest: register client %s: %w", nc.ID, err)
	}
	val, err := encodeClient(c)
	if err != nil {
		return Client{}, err
	}
	err = db.update(ctx, "register client", func(txn *badger.Txn) error {
		found, err := exists(txn, clientKey(c.ID))
		if err != nil {
			return err
		}
		if found {
			return fmt.Errorf("%w: client %s", ErrExists, c.ID)
		}
		return txn.Set(clientKey(c.ID), val)
	})
	if err != nil {
		return Client{}, err
	}
	return decodeClient(val) // normalizes times as a later read would
}

// Client returns the client with id.
func (db *DB) Client(ctx context.Context, id uuid.UUID) (Client, error) {
	var c Client
	err := db.view(ctx, "get client", func(txn *badger.Txn) error {
		var err error
		c, err = getClient(txn, id)
		return err
	})
	return c, err
}

func getClient(txn *badger.Txn, id uuid.UUID) (Client, error) {
	val, err := getValue(txn, clientKey(id), "client %s", id)
	if err != nil {
		return Client{}, err
	}
	c, err := decodeClient(val)
	if err != nil {
		return Client{}, fmt.Errorf("client %s: %w", id, err)
	}
	if c.ID != id {
		return Client{}, fmt.Errorf("%w: record under client key %s has id %s", ErrCorrupt, id, c.ID)
	}
	return c, nil
}

// AuthenticateClient checks a client's token and returns the client.
// A wrong token is ErrBadCredentials, an unknown client ErrNotFound.
func (db *DB) AuthenticateClient(ctx context.Context, id uuid.UUID, token string) (Client, error) {
	c, err := db.Client(ctx, id)
	if err != nil {
		return Client{}, err
	}
	ok, err := secret.Verify(token, c.TokenHash)
	if err != nil {
		return Client{}, fmt.Errorf("manifest: client %s token: %w", id, err)
	}
	if !ok {
		return Client{}, fmt.Errorf("%w: client %s token", ErrBadCredentials, id)
	}
	return c, nil
}

// ListClients returns every client in id order.
func (db *DB) ListClients(ctx context.Context) ([]Client, error) {
	var out []Client
	err := db.view(ctx, "list clients", func(txn *badger.Txn) error {
		return scan(ctx, txn, []byte{prefixClient}, false, func(key, val []byte) error {
			c, err := decodeClient(val)
			if err != nil {
				return fmt.Errorf("key %x: %w", key, err)
			}
			if !bytes.Equal(key[1:], c.ID[:]) {
				return fmt.Errorf("%w: record under client key %x has id %s", ErrCorrupt, key, c.ID)
			}
			out = append(out, c)
			return nil
		})
	})
	return out, err
}

// TouchClient records that the client was just seen at addr.
func (db *DB) TouchClient(ctx context.Context, id uuid.UUID, addr string) error {
	if err := checkString("client address", addr, maxAddressLen); err != nil {
		return fmt.Errorf("manifest: touch client %s: %w", id, err)
	}
	now := db.now()
	return db.update(ctx, "touch client", func(txn *badger.Txn) error {
		c, err := getClient(txn, id)
		if err != nil {
			return err
		}
		c.LastAddress, c.LastSeen = addr, now
		val, err := encodeClient(c)
		if err != nil {
			return err
		}
		return txn.Set(clientKey(id), val)
	})
}

// RemoveClient deletes a client and its memberships. Roots it owns stay,
// with an owner that no longer resolves, and so do versions it wrote.
func (db *DB) RemoveClient(ctx context.Context, id uuid.UUID) error {
	defer db.rootsChanged()
	return db.update(ctx, "remove client", func(txn *badger.Txn) error {
		if _, err := getClient(txn, id); err != nil {
			return err
		}
		var roots []RootID
		prefix := append([]byte{prefixClientMembers}, id[:]...)
		err := scan(ctx, txn, prefix, true, func(key, _ []byte) error {
			_, root, err := parseClientMemberKey(key)
			roots = append(roots, root)
			return err
		})
		if err != nil {
			return err
		}
		for _, root := range roots {
			if err := deleteMembership(txn, root, id); err != nil {
				return err
			}
		}
		return txn.Delete(clientKey(id))
	})
}

func deleteMembership(txn *badger.Txn, root RootID, client uuid.UUID) error {
	if err := txn.Delete(memberKey(root, client)); err != nil {
		return fmt.Errorf("manifest: remove client %s from root %d: %w", client, root, err)
	}
	if err := txn.Delete(clientMemberKey(client, root)); err != nil {
		return fmt.Errorf("manifest: remove client %s from root %d: %w", client, root, err)
	}
	return nil
}

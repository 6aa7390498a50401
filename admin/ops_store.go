package admin

import (
	"context"

	"github.com/quic-s/quics/server"
)

// OpStore reports where the chunk store keeps its packs.
var OpStore = Op[NoRequest, server.StoreStatus]{"GET", "/v1/store", storeStatus}

func storeStatus(ctx context.Context, b *Backend, _ NoRequest) (server.StoreStatus, error) {
	return b.Server.StoreStatus(ctx)
}

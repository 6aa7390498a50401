package main

import (
	"errors"
	"testing"
)

func TestStoreFlagsOptions(t *testing.T) {
	for _, tc := range []struct {
		pack, cache string
		wantPack    int64
		wantCache   int64
		usage       bool
	}{
		{"32MiB", "1GiB", 32 << 20, 1 << 30, false},
		{"256KiB", "0", 256 << 10, -1, false},
		{"1GiB", "64MiB", 1 << 30, 64 << 20, false},
		{"512", "1GiB", 0, 0, true},
		{"2GiB", "1GiB", 0, 0, true},
		{"lots", "1GiB", 0, 0, true},
		{"32MiB", "-1", 0, 0, true},
		{"32MiB", "9EiB", 0, 0, true},
	} {
		sf := storeFlags{packSize: tc.pack, cache: tc.cache}
		so, err := sf.options()
		var ue usageError
		if tc.usage {
			if !errors.As(err, &ue) {
				t.Errorf("--pack-size %s --store-cache %s: err %v, want a usage error", tc.pack, tc.cache, err)
			}
			continue
		}
		if err != nil || so.PackSize != tc.wantPack || so.CacheBytes != tc.wantCache {
			t.Errorf("--pack-size %s --store-cache %s = %d, %d, %v; want %d, %d", tc.pack, tc.cache, so.PackSize, so.CacheBytes, err, tc.wantPack, tc.wantCache)
		}
	}
}

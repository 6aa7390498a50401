//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x))

package cas

import "os"

// startWriteback is a no-op where sync_file_range is not available.
func startWriteback(*os.File, int64, int64) {}

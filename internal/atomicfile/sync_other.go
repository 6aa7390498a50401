//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || ppc64le || s390x))

package atomicfile

import "os"

func syncData(f *os.File) error { return f.Sync() }

func dropCache(*os.File, int64) {}

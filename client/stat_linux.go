package client

import (
	"io/fs"
	"syscall"
)

func platformStat(fi fs.FileInfo, st *FileStat) {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.CTime = sys.Ctim.Nano()
		st.Inode = uint64(sys.Ino)
		st.Dev = uint64(sys.Dev) //nolint:unconvert // Dev is uint32 on some architectures
	}
}

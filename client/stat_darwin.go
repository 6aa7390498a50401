package client

import (
	"io/fs"
	"syscall"
)

func platformStat(fi fs.FileInfo, st *FileStat) {
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.CTime = sys.Ctimespec.Nano()
		st.Inode = sys.Ino
		st.Dev = uint64(sys.Dev)
	}
}

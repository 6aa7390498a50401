package relay

import (
	"net"
	"syscall"
)

// growBuffers asks for socketBuffer on both buffers. Above the system's
// rmem_max/wmem_max only a privileged process gets it (the FORCE options),
// which is attempted and silently given up, as quic-go does.
func growBuffers(conn *net.UDPConn) {
	_ = conn.SetReadBuffer(socketBuffer)
	_ = conn.SetWriteBuffer(socketBuffer)
	raw, err := conn.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, socketBuffer)
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUFFORCE, socketBuffer)
	})
}

//go:build !linux

package relay

import "net"

// growBuffers asks for socketBuffer on both buffers; the system may grant
// less.
func growBuffers(conn *net.UDPConn) {
	_ = conn.SetReadBuffer(socketBuffer)
	_ = conn.SetWriteBuffer(socketBuffer)
}

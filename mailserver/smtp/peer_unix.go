//go:build unix

package smtp

import (
	"crypto/tls"
	"net"
	"syscall"
)

// peerClosed reports whether the client has closed its side of the connection: its data is all
// read and the next read would see end of file. It peeks at the socket without consuming or
// waiting, so it never takes bytes meant for go-smtp's reader.
func peerClosed(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	_ = raw.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err == syscall.ECONNRESET
		return true // never wait for readability
	})
	return closed
}

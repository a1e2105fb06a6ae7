//go:build !unix

package smtp

import "net"

// peerClosed cannot tell on this platform; see peer_unix.go.
func peerClosed(net.Conn) bool { return false }

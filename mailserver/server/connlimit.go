package server

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// Connection limits per listener: enough for a busy MX, few enough that one client (or a
// flood) cannot exhaust file descriptors and memory. RFC 5321 4.5.3.2 lets a server refuse
// with 421 when it is busy; a client retries later.
const (
	defaultMaxConns       = 2000
	defaultMaxConnsPerIP  = 50
	busyReplyWriteTimeout = 2 * time.Second
)

// limitListener refuses connections past its limits with busyReply and closes them, so a
// well-behaved client knows to come back later instead of timing out. Loopback clients (a
// webmail or a local script on the same host or pod) count only against the total, as Postfix
// exempts $mynetworks from its per-client limit.
type limitListener struct {
	net.Listener
	maxConns, maxPerIP int
	busyReply          []byte

	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int
}

func newLimitListener(ln net.Listener, maxConns, maxPerIP int, busyReply string) *limitListener {
	return &limitListener{Listener: ln, maxConns: maxConns, maxPerIP: maxPerIP, busyReply: []byte(busyReply), perIP: map[netip.Addr]int{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c.RemoteAddr())
		if l.acquire(ip) {
			return &limitedConn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		go l.refuse(c)
	}
}

func (l *limitListener) acquire(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.maxConns || !ip.IsLoopback() && l.perIP[ip] >= l.maxPerIP {
		return false
	}
	l.total++
	l.perIP[ip]++
	return true
}

func (l *limitListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

func (l *limitListener) refuse(c net.Conn) {
	defer c.Close()
	if len(l.busyReply) > 0 {
		c.SetWriteDeadline(time.Now().Add(busyReplyWriteTimeout))
		c.Write(l.busyReply)
	}
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

func clientIP(addr net.Addr) netip.Addr {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

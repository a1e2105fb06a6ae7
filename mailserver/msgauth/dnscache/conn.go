package dnscache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// conn is what Go's resolver gets from Dial: it writes one query and reads one answer. It is not
// a net.PacketConn, so the resolver uses the stream framing (RFC 1035 4.2.2: a two-octet length
// before each message) whether it asked for "udp" or "tcp"; network says which transport the
// query goes upstream over, so a truncated UDP answer still makes the resolver ask over TCP.
type conn struct {
	cache   *Cache
	ctx     context.Context
	network string
	addr    string

	mu       sync.Mutex
	deadline time.Time
	wbuf     []byte
	rbuf     []byte // the framed answer, what is left of it to read
	answered bool
	closed   bool
}

var errClosed = errors.New("dnscache: connection closed")

func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return 0, errClosed
	}
	c.wbuf = append(c.wbuf, p...)
	if len(c.wbuf) < 2 || len(c.wbuf) < 2+int(binary.BigEndian.Uint16(c.wbuf)) {
		c.mu.Unlock()
		return len(p), nil
	}
	query := c.wbuf[2 : 2+int(binary.BigEndian.Uint16(c.wbuf))]
	c.wbuf = nil
	ctx, deadline := c.ctx, c.deadline
	c.mu.Unlock()
	if !deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline)
		defer cancel()
	}
	resp, err := c.cache.exchange(ctx, c.network, c.addr, query)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	c.rbuf, c.answered = resp, true
	c.mu.Unlock()
	return len(p), nil
}

func (c *conn) Read(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, errClosed
	}
	if !c.answered {
		return 0, io.ErrUnexpectedEOF // read before a whole query was written
	}
	if len(c.rbuf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.rbuf)
	c.rbuf = c.rbuf[n:]
	return n, nil
}

func (c *conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	return nil
}

func (c *conn) SetReadDeadline(time.Time) error  { return nil }
func (c *conn) SetWriteDeadline(time.Time) error { return nil }
func (c *conn) LocalAddr() net.Addr              { return cacheAddr{c.network} }
func (c *conn) RemoteAddr() net.Addr             { return cacheAddr{c.network} }

type cacheAddr struct{ network string }

func (a cacheAddr) Network() string { return a.network }
func (a cacheAddr) String() string  { return "dnscache" }

// forward sends query to the name server at addr over network and returns its answer: over
// UDP the first datagram with the query's ID and question (others are ignored, as RFC 5452 9.1
// asks), over TCP the first message. It ends with ctx.
func forward(ctx context.Context, network, addr string, query []byte, q question) ([]byte, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	resp, err := roundTrip(nc, network, query, q)
	if err != nil && ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// Cancelled rather than timed out: say so, as the resolver does.
		return nil, &net.OpError{Op: "read", Net: network, Err: ctx.Err()}
	}
	return resp, err
}

func roundTrip(nc net.Conn, network string, query []byte, q question) ([]byte, error) {
	if !strings.HasPrefix(network, "udp") {
		msg := make([]byte, 2+len(query))
		binary.BigEndian.PutUint16(msg, uint16(len(query)))
		copy(msg[2:], query)
		if _, err := nc.Write(msg); err != nil {
			return nil, err
		}
		var l [2]byte
		if _, err := io.ReadFull(nc, l[:]); err != nil {
			return nil, err
		}
		resp := make([]byte, binary.BigEndian.Uint16(l[:]))
		if _, err := io.ReadFull(nc, resp); err != nil {
			return nil, err
		}
		return resp, nil
	}
	if _, err := nc.Write(query); err != nil {
		return nil, err
	}
	// Go's resolver offers 1232 octets (EDNS0); a server that ignores it sends at most 512.
	buf := make([]byte, 4096)
	for {
		n, err := nc.Read(buf)
		if err != nil {
			return nil, err
		}
		if n < headerLen || !bytes.Equal(buf[:2], query[:2]) || buf[2]&0x80 == 0 {
			continue
		}
		if rq, err := readQuestion(buf[:n]); err == nil && q.key != "" && rq.key != q.key {
			continue
		}
		return append([]byte(nil), buf[:n]...), nil
	}
}

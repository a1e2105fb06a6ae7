package dnscache

import (
	"container/list"
	"context"
	"encoding/binary"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxBytes       = 4 << 20
	DefaultMaxTTL         = 24 * time.Hour
	DefaultMaxNegativeTTL = time.Hour
)

// maxAnswer is the largest answer kept: TXT records of big SPF includes are a few KiB at most.
const maxAnswer = 16 << 10

// entryOverhead is what an entry costs beyond its key and answer (list element, map slot,
// offsets), counted against MaxBytes.
const entryOverhead = 160

// Options configure a Cache; the zero value takes the defaults.
type Options struct {
	MaxBytes       int           // answers and keys kept; 0 means DefaultMaxBytes
	MaxTTL         time.Duration // longest a positive answer is kept; 0 means DefaultMaxTTL
	MaxNegativeTTL time.Duration // longest a negative answer is kept; 0 means DefaultMaxNegativeTTL
	// Now is the clock; nil means time.Now. Tests move it instead of sleeping.
	Now func() time.Time
}

// Cache keeps DNS answers for the resolvers it makes (see the package doc). It is safe for
// concurrent use.
type Cache struct {
	opts Options

	mu       sync.Mutex
	entries  map[string]*list.Element // key -> *entry, most recently used at the front
	lru      list.List
	bytes    int
	inflight map[string]*call // transport + key -> the query sent for it

	hits, misses atomic.Int64
}

type entry struct {
	key     string
	resp    []byte
	ttlOffs []int
	stored  time.Time
	expires time.Time
}

func (e *entry) size() int { return len(e.key) + len(e.resp) + 8*len(e.ttlOffs) + entryOverhead }

// call is a query on its way to the name server; others asking the same wait for it.
type call struct {
	done chan struct{}
	resp []byte // nil when it failed
}

// New returns an empty cache.
func New(opts Options) *Cache {
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.MaxTTL <= 0 {
		opts.MaxTTL = DefaultMaxTTL
	}
	if opts.MaxNegativeTTL <= 0 {
		opts.MaxNegativeTTL = DefaultMaxNegativeTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cache{opts: opts, entries: map[string]*list.Element{}, inflight: map[string]*call{}}
}

// Resolver returns Go's resolver with its queries answered through the cache: sent to upstream
// ("HOST:PORT") when it is not empty, else to the name servers of /etc/resolv.conf.
func (c *Cache) Resolver(upstream string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
			if upstream != "" {
				address = upstream
			}
			return &conn{cache: c, ctx: ctx, network: network, addr: address}, nil
		},
	}
}

// Stats are counts since the cache was made.
type Stats struct {
	Hits, Misses int64 // queries answered from memory; queries sent to the name server
	Entries      int
	Bytes        int
}

// Stats returns the cache's counts.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: len(c.entries), Bytes: c.bytes}
}

// framed returns msg behind its two-octet length (RFC 1035 4.2.2), as the resolver reads it.
func framed(msg []byte) []byte {
	out := make([]byte, 2+len(msg))
	binary.BigEndian.PutUint16(out, uint16(len(msg)))
	copy(out[2:], msg)
	return out
}

// exchange answers one query (wire format) from the cache or from the name server at addr; the
// answer is framed.
func (c *Cache) exchange(ctx context.Context, network, addr string, query []byte) ([]byte, error) {
	q, err := readQuestion(query)
	if err != nil || len(query) < headerLen || query[2]&0x80 != 0 {
		// Not a query the cache understands: passed on as it is.
		resp, err := forward(ctx, network, addr, query, q)
		if err != nil {
			return nil, err
		}
		return framed(resp), nil
	}
	c.mu.Lock()
	if resp := c.lookup(q, query); resp != nil {
		c.mu.Unlock()
		c.hits.Add(1)
		return resp, nil
	}
	flight := network + "\x00" + q.key
	if cl := c.inflight[flight]; cl != nil {
		c.mu.Unlock()
		select {
		case <-cl.done:
			if cl.resp != nil {
				c.hits.Add(1)
				resp := framed(cl.resp)
				patch(resp[2:], nil, query, q, 0)
				return resp, nil
			}
			// It failed: perhaps only its own deadline was too short; try ourselves.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
	cl := &call{done: make(chan struct{})}
	c.inflight[flight] = cl
	c.mu.Unlock()
	c.misses.Add(1)

	resp, err := forward(ctx, network, addr, query, q)
	c.mu.Lock()
	if c.inflight[flight] == cl {
		delete(c.inflight, flight)
	}
	if err == nil {
		cl.resp = resp
		c.store(q, resp)
	}
	c.mu.Unlock()
	close(cl.done)
	if err != nil {
		return nil, err
	}
	return framed(resp), nil
}

// lookup returns the cached answer to query, made its answer and framed, or nil. Call with c.mu
// held.
func (c *Cache) lookup(q question, query []byte) []byte {
	el := c.entries[q.key]
	if el == nil {
		return nil
	}
	e := el.Value.(*entry)
	now := c.opts.Now()
	if !now.Before(e.expires) {
		c.remove(el)
		return nil
	}
	c.lru.MoveToFront(el)
	resp := framed(e.resp)
	patch(resp[2:], e.ttlOffs, query, q, uint32(now.Sub(e.stored)/time.Second))
	return resp
}

// store keeps resp when it may be kept (see the package doc). Call with c.mu held.
func (c *Cache) store(q question, resp []byte) {
	if len(resp) > maxAnswer {
		return
	}
	a, err := analyze(resp)
	if err != nil || !a.cache || a.q.key != q.key {
		return
	}
	ttl := time.Duration(a.ttl) * time.Second
	limit := c.opts.MaxTTL
	if a.neg {
		limit = c.opts.MaxNegativeTTL
	}
	now := c.opts.Now()
	e := &entry{key: q.key, resp: resp, ttlOffs: a.ttlOffs, stored: now, expires: now.Add(min(ttl, limit))}
	if old := c.entries[q.key]; old != nil {
		c.remove(old)
	}
	if e.size() > c.opts.MaxBytes {
		return
	}
	c.entries[q.key] = c.lru.PushFront(e)
	c.bytes += e.size()
	for c.bytes > c.opts.MaxBytes {
		c.remove(c.lru.Back())
	}
}

func (c *Cache) remove(el *list.Element) {
	e := c.lru.Remove(el).(*entry)
	delete(c.entries, e.key)
	c.bytes -= e.size()
}

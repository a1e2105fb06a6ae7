package dnscache

import (
	"encoding/binary"
	"errors"
)

// DNS message layout (RFC 1035 4.1): a 12-octet header, then the question and the answer,
// authority and additional sections of resource records.
const (
	headerLen = 12

	flagQR   = 1 << 15
	flagTC   = 1 << 9
	opcodeQ  = 0 // standard query
	rcodeOK  = 0 // NOERROR
	rcodeNX  = 3 // NXDOMAIN
	typeCNAM = 5
	typeSOA  = 6
	typeDNAM = 39
	typeOPT  = 41 // EDNS pseudo-record (RFC 6891): its TTL field holds flags, not a TTL
)

var errMalformed = errors.New("dnscache: malformed DNS message")

// question is the one question of a query or an answer.
type question struct {
	key   string // lowercased wire-format name, then type and class: the cache key
	qtype uint16
	end   int // offset just past the question
}

// readQuestion reads the question that starts the message after the header. The name must not
// be compressed (a question is the first name in a message: nothing to point back to).
func readQuestion(b []byte) (question, error) {
	if len(b) < headerLen || binary.BigEndian.Uint16(b[4:]) != 1 {
		return question{}, errMalformed
	}
	off := headerLen
	for {
		if off >= len(b) {
			return question{}, errMalformed
		}
		l := int(b[off])
		if l == 0 {
			off++
			break
		}
		if l > 63 {
			return question{}, errMalformed
		}
		off += 1 + l
	}
	if off+4 > len(b) || off-headerLen > 255 {
		return question{}, errMalformed
	}
	// Names compare without case (RFC 1035 2.3.3, RFC 4343). A length octet is at most 63,
	// below 'A', so lowering every octet of the name changes letters only.
	key := make([]byte, off+4-headerLen)
	for i, c := range b[headerLen : off+4] {
		if 'A' <= c && c <= 'Z' && i < off-headerLen {
			c += 'a' - 'A'
		}
		key[i] = c
	}
	return question{key: string(key), qtype: binary.BigEndian.Uint16(b[off:]), end: off + 4}, nil
}

// skipName returns the offset just past the (possibly compressed) name at off.
func skipName(b []byte, off int) (int, error) {
	for {
		if off >= len(b) {
			return 0, errMalformed
		}
		l := int(b[off])
		switch {
		case l == 0:
			return off + 1, nil
		case l&0xC0 == 0xC0: // a pointer ends the name (RFC 1035 4.1.4)
			if off+2 > len(b) {
				return 0, errMalformed
			}
			return off + 2, nil
		case l > 63:
			return 0, errMalformed
		}
		off += 1 + l
	}
}

// answer is what the cache needs to know of a response.
type answer struct {
	id      uint16
	q       question
	tc      bool
	ttl     uint32 // how long it may be kept, when cacheable
	cache   bool
	neg     bool  // NXDOMAIN or NODATA
	ttlOffs []int // offsets of the TTL fields of every record but OPT
}

// analyze reads a response: its question, whether it may be cached and for how long (see the
// package doc), and where its TTLs are.
func analyze(b []byte) (answer, error) {
	q, err := readQuestion(b)
	if err != nil {
		return answer{}, err
	}
	flags := binary.BigEndian.Uint16(b[2:])
	a := answer{id: binary.BigEndian.Uint16(b), q: q, tc: flags&flagTC != 0}
	if flags&flagQR == 0 {
		return answer{}, errMalformed
	}
	counts := [3]int{int(binary.BigEndian.Uint16(b[6:])), int(binary.BigEndian.Uint16(b[8:])), int(binary.BigEndian.Uint16(b[10:]))}
	const none = ^uint32(0)
	minAnswer, soaTTL, hasType, hasSOA := none, none, false, false
	off := q.end
	for section, n := range counts {
		for range n {
			if off, err = skipName(b, off); err != nil {
				return answer{}, err
			}
			if off+10 > len(b) {
				return answer{}, errMalformed
			}
			rtype := binary.BigEndian.Uint16(b[off:])
			ttl := binary.BigEndian.Uint32(b[off+4:])
			rdlen := int(binary.BigEndian.Uint16(b[off+8:]))
			rdata := off + 10
			if rdata+rdlen > len(b) {
				return answer{}, errMalformed
			}
			if rtype != typeOPT {
				a.ttlOffs = append(a.ttlOffs, off+4)
			}
			switch {
			case section == 0:
				minAnswer = min(minAnswer, ttl)
				if rtype == q.qtype {
					hasType = true
				} else if rtype != typeCNAM && rtype != typeDNAM {
					// An answer record of another type: an odd server; keep nothing.
					minAnswer = 0
				}
			case section == 1 && rtype == typeSOA && rdlen >= 22:
				// RFC 2308 5: the negative TTL is the SOA's own TTL or its MINIMUM field (the
				// last 4 octets of its data), whichever is smaller.
				hasSOA = true
				soaTTL = min(soaTTL, ttl, binary.BigEndian.Uint32(b[rdata+rdlen-4:]))
			}
			off = rdata + rdlen
		}
	}
	rcode := flags & 0xF
	opcode := (flags >> 11) & 0xF
	if a.tc || opcode != opcodeQ {
		return a, nil
	}
	switch {
	case rcode == rcodeOK && hasType:
		a.ttl, a.cache = minAnswer, true
	case (rcode == rcodeOK || rcode == rcodeNX) && hasSOA:
		a.ttl, a.cache, a.neg = min(minAnswer, soaTTL), true, true
	}
	if a.ttl == 0 {
		a.cache = false
	}
	return a, nil
}

// patch makes a stored answer the answer to a query: the query's ID and question, and every
// TTL less age seconds (not below 0).
func patch(resp []byte, ttlOffs []int, query []byte, q question, age uint32) {
	copy(resp[:2], query[:2])
	// Same name but for case: the question has the same length in both.
	copy(resp[headerLen:q.end], query[headerLen:q.end])
	if age == 0 {
		return
	}
	for _, o := range ttlOffs {
		ttl := binary.BigEndian.Uint32(resp[o:])
		binary.BigEndian.PutUint32(resp[o:], ttl-min(ttl, age))
	}
}

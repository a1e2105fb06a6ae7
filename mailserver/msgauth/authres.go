package msgauth

import (
	"bytes"
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// header formats the Authentication-Results field (RFC 8601), one result per line:
//
//	Authentication-Results: mx.b.test;
//		spf=pass smtp.mailfrom=alice@a.test;
//		dkim=pass header.d=a.test header.i=@a.test;
//		dmarc=pass header.from=a.test;
//		iprev=pass policy.iprev=192.0.2.1
func (v *Verifier) header(res *Result) []byte {
	var results []authres.Result
	s := res.SPF
	spfRes := &authres.SPFResult{Value: authres.ResultValue(s.Result), Reason: clean(s.Reason)}
	if s.MailFrom != "" {
		spfRes.From = clean(s.MailFrom)
	} else {
		spfRes.Helo = clean(s.Helo)
	}
	results = append(results, spfRes)
	if len(res.DKIM) == 0 {
		results = append(results, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, d := range res.DKIM {
		results = append(results, &authres.DKIMResult{Value: d.Value, Reason: clean(d.Reason), Domain: clean(d.Domain), Identifier: clean(d.Identifier)})
	}
	if len(res.DMARC) == 0 {
		results = append(results, &authres.DMARCResult{Value: authres.ResultNone, Reason: "no From: domain"})
	}
	for _, d := range res.DMARC {
		reason := d.Reason
		if reason == "" && d.Policy != "" {
			reason = "p=" + string(d.Policy)
		}
		results = append(results, &authres.DMARCResult{Value: d.Value, Reason: clean(reason), From: clean(d.From)})
	}
	if c := res.IPRev; c != nil {
		// RFC 8601 2.7.3: policy.iprev is the address checked.
		results = append(results, &authres.IPRevResult{Value: c.Result, Reason: clean(c.Reason), IP: c.IP.String()})
	}
	id := clean(v.Hostname)
	b := make([]byte, 0, 256)
	b = append(b, "Authentication-Results: "...)
	b = append(b, id...)
	for _, r := range results {
		// Format one result at a time, so the fold never falls inside a quoted reason.
		one := strings.TrimPrefix(authres.Format(id, []authres.Result{r}), id+"; ")
		b = append(b, ";\r\n\t"...)
		b = append(b, strings.TrimSpace(one)...)
	}
	b = append(b, "\r\n"...)
	return b
}

// clean removes control characters (CR and LF above all) from text that came from the client
// or from DNS, so that it cannot end the header field.
func clean(s string) string {
	if strings.IndexFunc(s, isCtl) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isCtl(r) {
			return ' '
		}
		return r
	}, s)
}

func isCtl(r rune) bool { return r < 0x20 || r == 0x7f }

// RemoveOwnResults returns the message start head without the Authentication-Results fields
// that carry our authserv-id: they came from outside and would forge our verdict (RFC 8601 5:
// a border MTA deletes them). head must hold the whole header section (up to the blank line);
// when it does not, it is returned unchanged. removed counts the fields taken out.
func (v *Verifier) RemoveOwnResults(head []byte) (out []byte, removed int) {
	type span struct{ start, end int }
	var drop []span
	cur := -1 // start of the Authentication-Results field being read, or -1
	for i := 0; ; {
		j := bytes.IndexByte(head[i:], '\n')
		if j < 0 {
			return head, 0 // the header does not end within head
		}
		j += i
		line := head[i : j+1]
		cont := len(line) > 0 && (line[0] == ' ' || line[0] == '\t')
		if !cont && cur >= 0 {
			if ownResults(string(head[cur:i]), v.Hostname) {
				drop = append(drop, span{cur, i})
			}
			cur = -1
		}
		if string(line) == "\r\n" || string(line) == "\n" {
			break
		}
		if !cont && len(line) > 23 && strings.EqualFold(string(line[:23]), "Authentication-Results:") {
			cur = i
		}
		i = j + 1
	}
	if len(drop) == 0 {
		return head, 0
	}
	out = make([]byte, 0, len(head))
	prev := 0
	for _, d := range drop {
		out = append(out, head[prev:d.start]...)
		prev = d.end
	}
	return append(out, head[prev:]...), len(drop)
}

// ownResults reports whether an Authentication-Results field names id as its authserv-id (the
// first token of the value, RFC 8601 2.2; comments before it are not expected and not skipped).
func ownResults(fieldText, id string) bool {
	_, value, _ := strings.Cut(fieldText, ":")
	value, _, _ = strings.Cut(value, ";")
	fields := strings.Fields(value)
	return len(fields) > 0 && strings.EqualFold(strings.TrimSuffix(fields[0], "."), strings.TrimSuffix(id, "."))
}

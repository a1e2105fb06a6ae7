package msgauth

import (
	"strings"

	"github.com/emersion/go-msgauth/authres"
)

// header formats the Authentication-Results field (RFC 8601), one result per line:
//
//	Authentication-Results: mx.b.test;
//		spf=pass smtp.mailfrom=alice@a.test;
//		dkim=pass header.d=a.test header.i=@a.test;
//		dmarc=pass header.from=a.test
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

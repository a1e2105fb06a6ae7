package mtasts

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	good := []struct {
		name, body string
		mode       Mode
		mx         []string
		maxAge     time.Duration
	}{
		{"gmail, CRLF", "version: STSv1\r\nmode: enforce\r\nmx: gmail-smtp-in.l.google.com\r\nmx: *.gmail-smtp-in.l.google.com\r\nmax_age: 86400\r\n",
			Enforce, []string{"gmail-smtp-in.l.google.com", "*.gmail-smtp-in.l.google.com"}, 86400 * time.Second},
		{"LF, no final newline, spaces", "  version:STSv1\nmode:   testing \nmx: MX.Example.COM.\nmax_age: 0", Testing, []string{"mx.example.com"}, 0},
		{"none without mx", "version: STSv1\nmode: none\nmax_age: 60\n", None, nil, time.Minute},
		{"unknown fields ignored", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 60\nx-ext: anything: here\n", Enforce, []string{"mx.example.com"}, time.Minute},
		{"max_age cut to a year", "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 9999999999\n", Enforce, []string{"mx.example.com"}, MaxMaxAge},
	}
	for _, tc := range good {
		p, err := Parse([]byte(tc.body))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if p.Mode != tc.mode || !slices.Equal(p.MX, tc.mx) || p.MaxAge != tc.maxAge {
			t.Errorf("%s: got mode %q mx %q max_age %v", tc.name, p.Mode, p.MX, p.MaxAge)
		}
	}
	bad := map[string]string{
		"empty":              "",
		"HTML error page":    "<html><body>Not here</body></html>",
		"version STSv2":      "version: STSv2\nmode: enforce\nmx: mx.example.com\nmax_age: 60\n",
		"no version":         "mode: enforce\nmx: mx.example.com\nmax_age: 60\n",
		"field names case":   "Version: STSv1\nMode: enforce\nmx: mx.example.com\nmax_age: 60\n",
		"unknown mode":       "version: STSv1\nmode: strict\nmx: mx.example.com\nmax_age: 60\n",
		"two modes":          "version: STSv1\nmode: testing\nmode: enforce\nmx: mx.example.com\nmax_age: 60\n",
		"no max_age":         "version: STSv1\nmode: enforce\nmx: mx.example.com\n",
		"negative max_age":   "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: -1\n",
		"11-digit max_age":   "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 10000000000\n",
		"enforce without mx": "version: STSv1\nmode: enforce\nmax_age: 60\n",
		"wildcard inside":    "version: STSv1\nmode: enforce\nmx: mx.*.example.com\nmax_age: 60\n",
		"partial wildcard":   "version: STSv1\nmode: enforce\nmx: mx*.example.com\nmax_age: 60\n",
		"two wildcards":      "version: STSv1\nmode: enforce\nmx: *.*.example.com\nmax_age: 60\n",
		"wildcard TLD":       "version: STSv1\nmode: enforce\nmx: *.com\nmax_age: 60\n",
		"line without colon": "version: STSv1\nmode: enforce\nmx mx.example.com\nmax_age: 60\n",
		"binary":             "version: STSv1\x00\xff\nmode: enforce\n",
		"too large":          "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 60\n" + strings.Repeat("x-pad: y\n", MaxPolicySize/9+1),
	}
	for name, body := range bad {
		if p, err := Parse([]byte(body)); err == nil {
			t.Errorf("%s: parsed as %+v, want an error", name, p)
		}
	}
}

func TestParseRecord(t *testing.T) {
	good := map[string][]string{
		"20160831085700Z": {"v=STSv1; id=20160831085700Z;"},
		"abc":             {"v=STSv1;id=abc", "v=spf1 -all"},
		"x1":              {"v=STSv1 ; id=x1 ; ext=value;"},
	}
	for want, txts := range good {
		if id, err := ParseRecord(txts); err != nil || id != want {
			t.Errorf("%q: id %q, %v; want %q", txts, id, err, want)
		}
	}
	bad := map[string][]string{
		"none":            {"v=spf1 -all"},
		"two records":     {"v=STSv1; id=a;", "v=STSv1; id=b;"},
		"no id":           {"v=STSv1;"},
		"id too long":     {"v=STSv1; id=" + strings.Repeat("a", 33)},
		"id with a dash":  {"v=STSv1; id=2016-08-31"},
		"two ids":         {"v=STSv1; id=a; id=b"},
		"version glued":   {"v=STSv10; id=a"},
		"field without =": {"v=STSv1; id=a; junk"},
	}
	for name, txts := range bad {
		if id, err := ParseRecord(txts); err == nil {
			t.Errorf("%s: id %q, want no record", name, id)
		}
	}
}

func TestMatch(t *testing.T) {
	p := &Policy{MX: []string{"mx1.example.com", "*.mail.example.net"}}
	for host, want := range map[string]bool{
		"mx1.example.com":         true,
		"MX1.Example.Com.":        true,
		"mx2.example.com":         false,
		"a.mail.example.net":      true,
		"a.b.mail.example.net":    false, // the wildcard is one label
		"mail.example.net":        false,
		"evilmail.example.net":    false,
		"a.mail.example.net.evil": false,
	} {
		if got := p.Match(host); got != want {
			t.Errorf("Match(%q) = %v, want %v", host, got, want)
		}
	}
}

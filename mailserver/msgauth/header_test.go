package msgauth

import (
	"bufio"
	"slices"
	"strings"
	"testing"
)

func TestFromDomains(t *testing.T) {
	for in, want := range map[string][]string{
		"From: Alice <alice@A.Test>\r\n\r\n":                                   {"a.test"},
		"From: a@x.test, \"B, C\" <b@y.test>\r\nFrom: c@X.test\r\n\r\n":        {"x.test", "y.test"},
		"From: =?koi8-r?B?8NLJ18XU?= <p@z.test>\r\n\r\n":                       {"z.test"},
		"From: Bank <ceo@bank.test\r\n\r\n":                                    {"bank.test"}, // unparseable
		"From:\r\n ceo@bank.test (folded)\r\n\r\n":                             {"bank.test"},
		"From: x@b\u00fccher.test\r\n\r\n":                                     {"xn--bcher-kva.test"},
		"Subject: none\r\n\r\n":                                                nil,
		"From: ceo@bank.test\r\nSubject: header only, no blank line\r\n":       {"bank.test"},
		"X-From: a@x.test\r\nFrom : spaced@colon.test\r\nTo: t@t.test\r\n\r\n": {"colon.test"},
	} {
		_, fields, _, err := readHeader(bufio.NewReader(strings.NewReader(in)))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := fromDomains(fields); !slices.Equal(got, want) {
			t.Errorf("fromDomains(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRemoveOwnResults(t *testing.T) {
	v := &Verifier{Hostname: "mx.b.test"}
	in := "Authentication-Results: mx.b.test; dkim=pass\r\nAuthentication-Results: other.test;\r\n spf=pass\r\n" +
		"authentication-results:MX.B.TEST.;\r\n\tdmarc=pass\r\nSubject: s\r\n\r\nAuthentication-Results: mx.b.test; body\r\n"
	out, n := v.RemoveOwnResults([]byte(in))
	want := "Authentication-Results: other.test;\r\n spf=pass\r\nSubject: s\r\n\r\nAuthentication-Results: mx.b.test; body\r\n"
	if n != 2 || string(out) != want {
		t.Errorf("removed %d: %q\nwant %q", n, out, want)
	}
	// A header that does not end within what is held is left alone.
	partial := "Authentication-Results: mx.b.test; dkim=pass\r\nSubject: s\r\n"
	if out, n := v.RemoveOwnResults([]byte(partial)); n != 0 || string(out) != partial {
		t.Errorf("partial header changed: %q", out)
	}
}

package builder

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"testing"
)

func TestDNSRecords(t *testing.T) {
	md := sampleDomain()
	md.Spec.Domain = "Example.TEST."
	golden(t, "dns-records", DNSRecords(md, "v=DKIM1; k=rsa; p=MIIB", []string{"192.0.2.25", "2001:db8::25", "lb.example.net"}))
	lb := DNSRecords(md, "", []string{"lb.example.net"})
	if lb[1].Type != "CNAME" || lb[1].Value != "lb.example.net." {
		t.Errorf("a load balancer known by name: records %+v, want a CNAME to it", lb)
	}
	// Without an external address or a DKIM key there is nothing to say about them.
	for _, r := range DNSRecords(md, "", nil) {
		if r.Type != "MX" && r.Type != "TXT" || strings.Contains(r.Name, "_domainkey") {
			t.Errorf("unexpected record %+v", r)
		}
	}
}

func TestDKIMRecordPublishesThePublicKey(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, DKIMKeyBits)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := EncodeDKIMKey(key)
	if err != nil {
		t.Fatal(err)
	}
	value, err := DKIMRecordValue(keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := strings.CutPrefix(value, "v=DKIM1; k=rsa; p=")
	if !ok {
		t.Fatalf("record %q lacks the v=DKIM1; k=rsa; p= tags", value)
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatal(err)
	}
	if !key.PublicKey.Equal(pub) {
		t.Error("the record publishes another key")
	}
	if _, err := DKIMRecordValue([]byte("not a key")); err == nil {
		t.Error("DKIMRecordValue accepted garbage")
	}
	s := BuildDKIMSecret(sampleDomain(), keyPEM)
	if string(s.Data[DKIMSelectorKey]) != DKIMSelector || s.Name != "example-test-dkim" {
		t.Errorf("DKIM Secret %s has selector %q", s.Name, s.Data[DKIMSelectorKey])
	}
}

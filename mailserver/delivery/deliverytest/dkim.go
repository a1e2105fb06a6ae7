package deliverytest

import (
	"context"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/msgauth"
)

// Signer is the real msgauth.Signer with a fresh Ed25519 key per domain, counting the
// signatures it made.
type Signer struct {
	*msgauth.Signer
	n atomic.Int32
}

// NewSigner returns a Signer for the domains of live, with its keys in a temp dir.
func NewSigner(t testing.TB, live *config.Live) *Signer {
	keys := msgauth.NewKeys(t.TempDir(), msgauth.KeysOptions{Type: msgauth.Ed25519})
	return &Signer{Signer: &msgauth.Signer{Keys: keys, Live: live}}
}

// Sign signs as msgauth.Signer does and counts a signature made.
func (s *Signer) Sign(ctx context.Context, r io.Reader) ([]byte, error) {
	sig, err := s.Signer.Sign(ctx, r)
	if len(sig) > 0 {
		s.n.Add(1)
	}
	return sig, err
}

// Count is how many signatures s has made.
func (s *Signer) Count() int { return int(s.n.Load()) }

// Verify fails the test unless msg, as a receiver got it, carries one DKIM signature, by domain,
// that verifies against s's key for domain.
func (s *Signer) Verify(t testing.TB, domain, msg string) {
	t.Helper()
	name, value, err := s.Keys.DNSRecord(domain)
	if err != nil {
		t.Fatal(err)
	}
	verifs, err := dkim.VerifyWithOptions(strings.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT: func(n string) ([]string, error) {
			if strings.TrimSuffix(n, ".")+"." == name {
				return []string{value}, nil
			}
			return nil, &net.DNSError{Err: "no such host", Name: n, IsNotFound: true}
		}})
	if err != nil || len(verifs) != 1 || verifs[0].Err != nil || verifs[0].Domain != domain {
		t.Fatalf("DKIM verification at the receiver: %+v, %v\n%s", verifs, err, msg)
	}
}

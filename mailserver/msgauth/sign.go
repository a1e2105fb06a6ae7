package msgauth

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-msgauth/dkim"

	"github.com/kubemail/kubemail/mailserver/config"
)

// signedFields are the header fields signed when present, as RFC 6376 5.4.1 recommends; From is
// signed once more than it occurs ("oversigned", RFC 6376 8.15) so that no From: can be added.
var signedFields = []string{"From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To",
	"MIME-Version", "Content-Type", "Content-Transfer-Encoding", "In-Reply-To", "References"}

// Signer signs outbound mail with the DKIM key of the domain of its From: address.
type Signer struct {
	Keys *Keys
	// Live tells our domains: a message is signed only when its From: domain is one of them.
	Live *config.Live
}

// Sign reads a whole message (header and body, CRLF line ends) and returns the DKIM-Signature
// header field to put in front of it, CRLF-terminated; nil when the message is not ours to sign
// (its first From: address is not in one of our domains, or it has no header/body separator).
func (s *Signer) Sign(ctx context.Context, r io.Reader) ([]byte, error) {
	br := getReader(r)
	defer putReader(br)
	raw, fields, complete, err := readHeader(br)
	if err != nil || !complete {
		return nil, err
	}
	domains := fromDomains(fields)
	if len(domains) == 0 || s.Live.Load().Domain(domains[0]) == nil {
		return nil, nil
	}
	domain := domains[0]
	key, err := s.Keys.Key(domain)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, name := range signedFields {
		n := count(fields, strings.ToLower(name))
		if name == "From" {
			n++
		}
		for range n {
			keys = append(keys, name)
		}
	}
	signer, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 domain,
		Selector:               s.Keys.Selector(),
		Signer:                 key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             keys,
	})
	if err != nil {
		return nil, fmt.Errorf("DKIM signing for %s: %w", domain, err)
	}
	_, err = signer.Write(raw)
	if err == nil {
		_, err = io.Copy(signer, ctxReader{ctx, br})
	}
	if cerr := signer.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("DKIM signing for %s: %w", domain, err)
	}
	return []byte(signer.Signature()), nil
}

// ctxReader stops a long read when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

package delivery

import (
	"bytes"
	"context"
	"io"
)

// Signer adds a DKIM signature to outbound mail; *msgauth.Signer satisfies it. Sign reads the
// whole message and returns the DKIM-Signature field to prepend (CRLF-terminated), or nil when
// the message is not ours to sign.
type Signer interface {
	Sign(ctx context.Context, r io.Reader) ([]byte, error)
}

// signed returns m with a DKIM signature in front, made once here for every remote
// destination of this attempt (see the package doc). A message that cannot be signed goes out
// unsigned, with an error in the log.
func (c *Client) signed(ctx context.Context, m *Message) *Message {
	r, err := m.Open()
	if err != nil {
		// Every transaction would fail to read it too, and say so in its result.
		return m
	}
	sig, err := c.opts.DKIM.Sign(ctx, r)
	r.Close()
	if err != nil {
		c.log.Error("Failed signing message with DKIM; sending it unsigned", "id", m.ID, "from", m.From, "err", err)
		return m
	}
	if len(sig) == 0 {
		return m
	}
	sm := *m
	sm.Size += int64(len(sig))
	sm.Open = func() (io.ReadCloser, error) {
		r, err := m.Open()
		if err != nil {
			return nil, err
		}
		return prefixed{Reader: io.MultiReader(bytes.NewReader(sig), r), Closer: r}, nil
	}
	return &sm
}

type prefixed struct {
	io.Reader
	io.Closer
}

package delivery

import (
	"bytes"
	"context"
	"io"
	"sync"
)

// Signer adds a DKIM signature to outbound mail; *msgauth.Signer satisfies it. Sign reads the
// whole message and returns the DKIM-Signature field to prepend (CRLF-terminated), or nil when
// the message is not ours to sign.
type Signer interface {
	Sign(ctx context.Context, r io.Reader) ([]byte, error)
}

// signLater returns m to be DKIM-signed when a transaction is about to send it (Message.ready):
// once for every remote destination of this attempt, and not at all when no server could be
// reached (see the package doc).
func (c *Client) signLater(ctx context.Context, m *Message) *Message {
	lm := *m
	lm.lazy = &lazySignature{}
	lm.lazy.sign = func() *Message { return c.signed(ctx, m) }
	return &lm
}

// lazySignature is the signing of a message, done once, at its first transaction.
type lazySignature struct {
	once sync.Once
	sign func() *Message
	msg  *Message
}

// ready returns the message as it is to be sent: signed now if it is to be signed.
func (m *Message) ready() *Message {
	if m.lazy == nil {
		return m
	}
	m.lazy.once.Do(func() { m.lazy.msg = m.lazy.sign() })
	return m.lazy.msg
}

// signed returns m with a DKIM signature in front, signed as it is read from the queue (the
// queue signs the messages it can hold in memory as they arrive; this is for the larger ones).
// The Signer stops after the header of a message that is not ours to sign. A message that
// cannot be signed goes out unsigned, with an error in the log.
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
	return m.withSignature(sig)
}

// withSignature returns m with the DKIM-Signature field sig in front (m itself for none).
func (m *Message) withSignature(sig []byte) *Message {
	if len(sig) == 0 {
		return m
	}
	sm := *m
	sm.Signature, sm.lazy = nil, nil
	sm.Size += int64(len(sig))
	open := m.Open
	sm.Open = func() (io.ReadCloser, error) {
		r, err := open()
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

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

// inMemory is the largest message signed from memory: read once, signed, and sent from the same
// bytes by every transaction of the attempt. Larger ones are read from the queue twice. The
// queue's workers bound how many are held at once.
const inMemory = 256 << 10

// signed returns m with a DKIM signature in front. A message that cannot be signed goes out
// unsigned, with an error in the log.
func (c *Client) signed(ctx context.Context, m *Message) *Message {
	r, err := m.Open()
	if err != nil {
		// Every transaction would fail to read it too, and say so in its result.
		return m
	}
	open := m.Open
	var src io.Reader = r
	if m.Size > 0 && m.Size <= inMemory {
		// One read of the size the queue gave, and one more to see the end (ReadAll would read
		// in growing pieces, a system call each).
		data := make([]byte, m.Size+1)
		n, err := io.ReadFull(r, data)
		data = data[:n]
		if err == io.ErrUnexpectedEOF && int64(n) == m.Size {
			open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
			src = bytes.NewReader(data)
		} else {
			// Not what the queue said it was: sign it as it reads.
			r.Close()
			if r, err = m.Open(); err != nil {
				return m
			}
			src = r
		}
	}
	sig, err := c.opts.DKIM.Sign(ctx, src)
	r.Close()
	sm := *m
	sm.Open = open
	if err != nil {
		c.log.Error("Failed signing message with DKIM; sending it unsigned", "id", m.ID, "from", m.From, "err", err)
		return &sm
	}
	return sm.withSignature(sig)
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

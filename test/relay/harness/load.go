package harness

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// Load sends Messages messages over Sessions concurrent SMTP sessions with go-smtp's client,
// several messages per connection. Message i has the subject "<Tag> <i>" and the Message-ID
// "<i.Tag@load.test>", and Size bytes in all (at least its headers).
type Load struct {
	Addr     string
	STARTTLS bool   // STARTTLS (without certificate verification) before MAIL
	Username string // AUTH PLAIN when set (needs STARTTLS on kubemail's submission ports)
	Password string
	From     string
	To       func(i int) string
	Tag      string
	Messages int
	Sessions int
	Size     int

	// Accepted counts the 250 replies to the end of data so far; a caller may watch it.
	Accepted atomic.Int64
}

// Result says what happened to each message.
type Result struct {
	Accepted []bool  // the server answered 250 to the end of data
	Sent     []bool  // the whole message was written (the reply may not have come)
	Errors   []error // the first errors, at most 10
}

// Message is message i of the load, CRLF line ends.
func (l *Load) Message(i int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: <%s>\r\nTo: <%s>\r\nSubject: %s %d\r\nMessage-ID: <%d.%s@load.test>\r\nDate: %s\r\n\r\n",
		l.From, l.To(i), l.Tag, i, i, l.Tag, time.Now().Format(time.RFC1123Z))
	line := strings.Repeat("x", 76) + "\r\n"
	for b.Len()+len(line) <= l.Size {
		b.WriteString(line)
	}
	return b.String()
}

// Run sends the load. A worker whose connection fails reconnects once per failure and stops
// when it cannot connect; every message is tried at most once. Run is bounded by deadline.
func (l *Load) Run(deadline time.Time) *Result {
	r := &Result{Accepted: make([]bool, l.Messages), Sent: make([]bool, l.Messages)}
	var next atomic.Int64
	var mu sync.Mutex
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if len(r.Errors) < 10 {
			r.Errors = append(r.Errors, err)
		}
	}
	var wg sync.WaitGroup
	for range l.Sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c *gosmtp.Client
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for {
				i := int(next.Add(1) - 1)
				if i >= l.Messages || time.Now().After(deadline) {
					return
				}
				if c == nil {
					var err error
					if c, err = l.dial(deadline); err != nil {
						fail(fmt.Errorf("message %d: connecting: %w", i, err))
						return
					}
				}
				sent, err := l.send(c, i)
				r.Sent[i] = sent
				if err != nil {
					fail(fmt.Errorf("message %d: %w", i, err))
					c.Close()
					c = nil
					continue
				}
				r.Accepted[i] = true
				l.Accepted.Add(1)
			}
		}()
	}
	wg.Wait()
	return r
}

func (l *Load) dial(deadline time.Time) (*gosmtp.Client, error) {
	conn, err := net.DialTimeout("tcp", l.Addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(deadline)
	var c *gosmtp.Client
	if l.STARTTLS {
		if c, err = gosmtp.NewClientStartTLS(conn, &tls.Config{InsecureSkipVerify: true}); err != nil {
			conn.Close()
			return nil, err
		}
	} else {
		c = gosmtp.NewClient(conn)
		if err := c.Hello("load.test"); err != nil {
			c.Close()
			return nil, err
		}
	}
	if l.Username != "" {
		if err := c.Auth(sasl.NewPlainClient("", l.Username, l.Password)); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// send runs one transaction; sent says the whole message was written.
func (l *Load) send(c *gosmtp.Client, i int) (sent bool, err error) {
	if err := c.Mail(l.From, nil); err != nil {
		return false, err
	}
	if err := c.Rcpt(l.To(i), nil); err != nil {
		c.Reset()
		return false, err
	}
	w, err := c.Data()
	if err != nil {
		return false, err
	}
	if _, err := w.Write([]byte(l.Message(i))); err != nil {
		return false, err
	}
	// Close writes the final dot and reads the reply: only nil is a 250.
	err = w.Close()
	return true, err
}

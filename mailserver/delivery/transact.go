package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// maxRcptsPerTransaction is the recipient count every server must take (RFC 5321 4.5.3.1.8).
const maxRcptsPerTransaction = 100

// transact sends m to rcpts over cn, in as many transactions as the recipient count needs, and
// then keeps cn idle or closes it. ok is false, with cn closed and nothing sent, when a reused
// connection turned out to be dead (or closing, 421) before it took anything.
func (c *Client) transact(ctx context.Context, h *hostState, cn *conn, m *Message, rcpts []string) (results []Result, ok bool) {
	stop := context.AfterFunc(ctx, func() { cn.raw.Close() })
	defer stop()
	reused := cn.messages > 0
	results = make([]Result, len(rcpts))
	todo := make([]int, len(rcpts))
	for i := range todo {
		todo[i] = i
	}
	healthy, first := true, true
	for len(todo) > 0 {
		chunk := todo[:min(maxRcptsPerTransaction, len(todo))]
		todo = todo[len(chunk):]
		addrs := make([]string, len(chunk))
		for j, i := range chunk {
			addrs[j] = rcpts[i]
		}
		res, alive, sentNothing := c.transaction(cn, m, addrs)
		if !alive && reused && sentNothing && first {
			cn.close()
			return nil, false
		}
		first = false
		var tooMany []int
		progress := false
		for j, i := range chunk {
			results[i] = res[j]
			if res[j].Delivered() {
				progress = true
			}
			// RFC 5321 4.5.3.1.10: 452 "too many recipients" asks for another transaction.
			if res[j].Code == 452 {
				tooMany = append(tooMany, i)
			}
		}
		if !alive {
			healthy = false
			for _, i := range todo {
				results[i] = local(rcpts[i], "4.4.2", "Connection to %s lost", cn.host)
			}
			break
		}
		if progress && len(tooMany) > 0 {
			todo = append(tooMany, todo...)
		}
	}
	if healthy && ctx.Err() == nil {
		c.putIdle(h, cn)
	} else {
		cn.close()
	}
	return results, true
}

// transaction is one MAIL, RCPT..., DATA exchange. alive says the session can go on; sentNothing
// says the connection died before the server replied to anything.
func (c *Client) transaction(cn *conn, m *Message, rcpts []string) (results []Result, alive, sentNothing bool) {
	t := c.opts.Timeouts
	m = m.ready() // signed now, with a server waiting, if it is to be signed
	results = make([]Result, len(rcpts))
	all := func(r Result) []Result {
		for i := range results {
			results[i] = r
			results[i].Rcpt = rcpts[i]
		}
		return results
	}
	utf8Needed := !isASCII(m.From) || !allASCII(rcpts)
	if utf8Needed {
		if ok, _ := cn.cl.Extension("SMTPUTF8"); !ok {
			// RFC 6531 3.5: a UTF-8 address cannot be downgraded.
			return all(local("", "5.6.7", "%s does not support SMTPUTF8, which the addresses need", cn.host)), true, false
		}
	}
	opts := &gosmtp.MailOptions{Size: m.Size, UTF8: utf8Needed}
	if err := cn.cl.Mail(m.From, opts); err != nil {
		r := replyResult(cn.host, err, "4.4.2", "MAIL FROM")
		if !isReply(err) || is421(err) {
			return all(r), false, true
		}
		return all(r), c.reset(cn, err), false
	}
	var accepted []int
	for i, rcpt := range rcpts {
		err := cn.cl.Rcpt(rcpt, nil)
		if err == nil {
			accepted = append(accepted, i)
			continue
		}
		results[i] = replyResult(cn.host, err, "4.4.2", "RCPT TO")
		results[i].Rcpt = rcpt
		if !isReply(err) || is421(err) {
			for j := i + 1; j < len(rcpts); j++ {
				results[j] = local(rcpts[j], "4.4.2", "Connection to %s lost", cn.host)
			}
			for _, j := range accepted {
				results[j] = local(rcpts[j], "4.4.2", "Connection to %s lost", cn.host)
			}
			return results, false, false
		}
	}
	if len(accepted) == 0 {
		return results, c.reset(cn, nil), false
	}
	setAccepted := func(r Result) {
		for _, j := range accepted {
			results[j] = r
			results[j].Rcpt = rcpts[j]
		}
	}
	body, err := m.Open()
	if err != nil {
		setAccepted(local("", "4.3.0", "Reading the queued message failed: %v", err))
		return results, c.reset(cn, nil), false
	}
	defer body.Close()
	cn.cl.CommandTimeout = t.DataInit // RFC 5321 4.5.3.2.4
	w, err := cn.cl.Data()
	cn.cl.CommandTimeout = t.Command
	if err != nil {
		setAccepted(replyResult(cn.host, err, "4.4.2", "DATA"))
		if !isReply(err) || is421(err) {
			return results, false, false
		}
		return results, c.reset(cn, nil), false
	}
	if _, err := io.Copy(w, body); err != nil {
		setAccepted(local("", "4.4.2", "Sending the message to %s failed: %v", cn.host, err))
		return results, false, false
	}
	resp, err := w.CloseWithResponse() // RFC 5321 4.5.3.2.6: SubmissionTimeout, 10 min
	if err != nil {
		setAccepted(replyResult(cn.host, err, "4.4.2", "end of DATA"))
		return results, isReply(err) && !is421(err), false
	}
	setAccepted(Result{Code: 250, Status: enhanced(250, resp.StatusText), Text: stripEnhanced(resp.StatusText), RemoteMTA: cn.host})
	return results, true, false
}

// reset ends a failed transaction with RSET so the connection can carry the next one.
func (c *Client) reset(cn *conn, cause error) bool {
	if cause != nil && is421(cause) {
		return false
	}
	return cn.cl.Reset() == nil
}

func isReply(err error) bool {
	var se *gosmtp.SMTPError
	return errors.As(err, &se)
}

func is421(err error) bool {
	var se *gosmtp.SMTPError
	return errors.As(err, &se) && se.Code == 421
}

// replyResult turns a go-smtp error into a Result: the server's reply when there was one, else a
// local failure with status fallback.
func replyResult(host string, err error, fallback, during string) Result {
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		status := fmt.Sprintf("%d.0.0", se.Code/100)
		if ec := se.EnhancedCode; ec[0] == se.Code/100 && ec[1] >= 0 && ec[2] >= 0 {
			status = fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
		}
		if se.Code/100 != 4 && se.Code/100 != 5 {
			// Not a failure reply where one was expected (e.g. 3xx to RCPT): retry later.
			status = "4.5.0"
		}
		return Result{Code: se.Code, Status: status, Text: se.Message, RemoteMTA: host}
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		return replyResult(host, &gosmtp.SMTPError{Code: te.Code, Message: te.Msg, EnhancedCode: parseEnhanced(te.Msg)}, fallback, during)
	}
	return local("", fallback, "%s failed at %s: %v", during, orLocal(host), err)
}

func orLocal(host string) string {
	if host == "" {
		return "the remote server"
	}
	return host
}

// parseEnhanced reads a leading "x.y.z" of a reply text (RFC 2034), or returns NoEnhancedCode.
func parseEnhanced(text string) gosmtp.EnhancedCode {
	var a, b, c int
	if n, _ := fmt.Sscanf(text, "%d.%d.%d", &a, &b, &c); n == 3 {
		return gosmtp.EnhancedCode{a, b, c}
	}
	return gosmtp.NoEnhancedCode
}

func enhanced(code int, text string) string {
	if ec := parseEnhanced(text); ec[0] == code/100 {
		return fmt.Sprintf("%d.%d.%d", ec[0], ec[1], ec[2])
	}
	return fmt.Sprintf("%d.0.0", code/100)
}

func stripEnhanced(text string) string {
	if ec := parseEnhanced(text); ec != gosmtp.NoEnhancedCode {
		if _, rest, ok := cut(text, ' '); ok {
			return rest
		}
	}
	return text
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func allASCII(ss []string) bool {
	for _, s := range ss {
		if !isASCII(s) {
			return false
		}
	}
	return true
}

func saslPlain(user, pass string) sasl.Client { return sasl.NewPlainClient("", user, pass) }

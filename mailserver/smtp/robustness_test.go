package smtp

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

func TestMXIdleTimeout(t *testing.T) {
	s := startServer(t, false, false, withReadTimeout(300*time.Millisecond))
	c := dialRaw(t, s.addr)
	c.expect(220)
	start := time.Now()
	c.expect(421, "4.4.2")
	c.expectClosed()
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Errorf("closed after %v, before the timeout", d)
	}
}

// TestMXDataTimeout: a client that stops in the middle of the data gets 421 and no copy is
// kept; one that keeps sending slowly for longer than the timeout gets through.
func TestMXDataTimeout(t *testing.T) {
	// The timeout leaves the slow client's 100 ms pace 1.4 s of slack, for loaded machines.
	s := startServer(t, false, false, withReadTimeout(1500*time.Millisecond))
	c := greeted(t, s.addr)
	c.write("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("Subject: stalled\r\n\r\nhalf a mess")
	c.expect(421, "4.4.2")
	c.expectClosed()
	if n := len(s.maildir("alice@example.test")); n != 0 {
		t.Fatalf("%d copies of a stalled message", n)
	}
	s.waitLog("Rejected message", "code=421", `reason="timeout waiting for data"`)

	c = greeted(t, s.addr)
	c.write("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write("Subject: slow\r\n\r\n")
	line := strings.Repeat("s", 78) + "\r\n"
	chunk := strings.Repeat(line, 256) // 20 KiB
	start := time.Now()
	for time.Since(start) < 2500*time.Millisecond { // well past the timeout, in total
		c.write(chunk)
		time.Sleep(100 * time.Millisecond) // the client's pace, the point of the test
	}
	c.write(".\r\n")
	c.expect(250)
	s.only("alice@example.test")
}

// TestMXSlowClientsDoNotBlockOthers holds connections open in every state a client can stall
// in, and sends messages alongside them.
func TestMXSlowClientsDoNotBlockOthers(t *testing.T) {
	s := startServer(t, false, false)
	silent := dialRaw(t, s.addr) // never says anything
	silent.expect(220)
	inData := greeted(t, s.addr)
	inData.write("MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
	inData.expect(250)
	inData.expect(250)
	inData.expect(354)
	inData.write("Subject: slow\r\n\r\nand then noth")
	inBDAT := greeted(t, s.addr)
	inBDAT.write("MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT 100000 LAST\r\npartial")
	inBDAT.expect(250)
	inBDAT.expect(250)
	unread := greeted(t, s.addr) // sends commands but never reads the replies
	unread.write(strings.Repeat("NOOP\r\n", 1000))

	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			errs <- sendMail(s.addr, s.client, "sender@remote.test", []string{"bob@example.test"},
				message(fmt.Sprint("m", i), "concurrent"))
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.maildir("bob@example.test")); n != 20 {
		t.Fatalf("bob holds %d messages, want 20", n)
	}
	if n := len(s.delivered("alice@example.test")); n != 0 { // tmp/ has the stalled ones
		t.Fatalf("alice holds %d unfinished messages", n)
	}
}

// TestMXDisconnectInData: a client gone in the middle of the data leaves no copy anywhere.
func TestMXDisconnectInData(t *testing.T) {
	s := startServer(t, false, false)
	for _, bdat := range []bool{false, true} {
		c := greeted(t, s.addr)
		c.write("MAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n")
		c.expect(250)
		c.expect(250)
		c.expect(250)
		if bdat {
			c.write("BDAT 100000 LAST\r\n" + strings.Repeat("b\r\n", 20000))
		} else {
			c.cmd("DATA")
			c.expect(354)
			c.write("Subject: cut\r\n\r\n" + strings.Repeat("d\r\n", 20000))
		}
		c.conn.Close()
	}
	// Both log lines come after the store has cleaned up.
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(s.logs.String(), `reason="connection lost: unexpected EOF"`) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no rejection logged for both cut-off messages")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := len(s.maildir("alice@example.test")) + len(s.maildir("bob@example.test")); n != 0 {
		t.Fatalf("%d copies of cut-off messages", n)
	}
}

func TestMX8BitAndUTF8(t *testing.T) {
	s := startServer(t, false, false)
	c := greeted(t, s.addr)
	// RFC 6531: UTF-8 addresses with SMTPUTF8; RFC 6532 UTF-8 header; an 8-bit body.
	body := "From: Jörg <jörg@bücher.test>\r\nTo: alice@example.test\r\nSubject: Grüße 🎉\r\n" +
		"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
		"caf\xe9 \xe0 la cr\xe8me\r\n"
	c.write("MAIL FROM:<jörg@bücher.test> BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(354)
	c.write(body + ".\r\n")
	c.expect(250)
	got := s.only("alice@example.test")
	if !strings.HasSuffix(got, "\r\n"+body) || !strings.Contains(got, " with UTF8SMTP id ") {
		t.Fatalf("stored %q", got)
	}
	s.waitLog("Accepted message", "from=jörg@bücher.test")
}

func TestMX20MiB(t *testing.T) {
	s := startServer(t, false, false)
	var b bytes.Buffer
	b.WriteString("Subject: big\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	line := []byte(strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 3)[:76] + "\r\n")
	for i := 0; b.Len() < 20<<20; i++ {
		line[i%76] ^= 1 // not all the same line
		b.Write(line)
	}
	want := sha256.Sum256(b.Bytes())
	c, err := gosmtp.DialStartTLS(s.addr, s.client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SendMail("sender@remote.test", []string{"bob@example.test", "alice@example.test"}, bytes.NewReader(b.Bytes())); err != nil {
		t.Fatal(err)
	}
	for _, rcpt := range []string{"alice@example.test", "bob@example.test"} {
		got := s.only(rcpt)
		_, rest, _ := strings.Cut(got, "\r\nSubject: big")
		if sha256.Sum256([]byte("Subject: big"+rest)) != want {
			t.Fatalf("%s: stored message differs (%d bytes)", rcpt, len(got))
		}
	}
}

// TestMXNoGoroutineLeak runs connections that end every which way, then checks the server is
// back to its goroutines before them.
func TestMXNoGoroutineLeak(t *testing.T) {
	s := startServer(t, false, false, withReadTimeout(2*time.Second))
	before := runtime.NumGoroutine()
	for i := range 10 {
		c := greeted(t, s.addr)
		switch i % 4 {
		case 0:
			c.write("MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nBDAT 10\r\n0123456789")
			c.expect(250)
			c.expect(250)
			c.expect(250)
		case 1:
			c.write("MAIL FROM:<a@remote.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
			c.expect(250)
			c.expect(250)
			c.expect(354)
			c.write("Subject: x\r\n\r\nhalf")
		case 2:
			c.startTLS(s.client)
		case 3:
			c.cmd("QUIT")
			c.expect(221)
		}
		c.conn.Close()
	}
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Once the server is stopping, a transaction under way finishes, but a new one is refused with
// 421 4.3.2 and the connection closed (RFC 5321 3.8), so no message is taken that the stop
// could cut off.
func TestDrainingRefusesNewTransactions(t *testing.T) {
	s := startServer(t, false, false)
	busy := greeted(t, s.addr)
	busy.cmd("MAIL FROM:<a@remote.test>")
	busy.expect(250)
	busy.cmd("RCPT TO:<alice@example.test>")
	busy.expect(250)
	idle := greeted(t, s.addr)

	s.draining.Store(true)
	busy.cmd("DATA")
	busy.expect(354)
	busy.write("Subject: in flight\r\n\r\nfinishes\r\n.\r\n")
	busy.expect(250)
	if got := s.delivered("alice@example.test"); len(got) != 1 {
		t.Fatalf("alice has %d messages, want the one in flight", len(got))
	}
	busy.cmd("MAIL FROM:<a@remote.test>")
	busy.expect(421, "4.3.2")
	busy.expectClosed()
	idle.cmd("MAIL FROM:<b@remote.test>")
	idle.expect(421, "4.3.2")
	idle.expectClosed()
}

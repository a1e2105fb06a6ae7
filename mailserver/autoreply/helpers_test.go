package autoreply_test

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/mailserver/autoreply"
	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/queue"
)

const domainYAML = `apiVersion: mail.kubemail.io/v1alpha1
kind: MailDomain
metadata: {name: example-test}
spec: {domain: example.test}
---
apiVersion: v1
kind: Secret
metadata: {name: pw}
stringData: {password: secret}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: bob}
spec:
  address: bob@example.test
  passwordSecretRef: {name: pw, key: password}
---
apiVersion: mail.kubemail.io/v1alpha1
kind: Mailbox
metadata: {name: alice}
spec:
  address: alice@example.test
  aliases: [a.smith@example.test]
  passwordSecretRef: {name: pw, key: password}
`

const awayBlock = `  autoReply:
    body: "I am away until 2 December.\nFor urgent matters write to bob@example.test."
    start: "2026-11-27T00:00:00Z"
    end: "2026-12-02T00:00:00Z"
`

// inWindow is a time inside awayBlock's window.
var inWindow = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

// loadLive resolves domainYAML with alice's autoReply block (none when block is "").
func loadLive(t *testing.T, block string) *config.Live {
	t.Helper()
	live := config.NewLive(nil)
	setConfig(t, live, block)
	return live
}

func setConfig(t *testing.T, live *config.Live, block string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(domainYAML+block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadManifests(dir, func(_, pw string) (string, error) { return pw, nil })
	if err != nil {
		t.Fatal(err)
	}
	live.Store(config.NewDirectory(cfg))
}

// clock is a settable time for the Responder.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// setup is a Responder over a real queue (not run: the replies stay in it to be looked at).
type setup struct {
	live     *config.Live
	q        *queue.Queue
	queueDir string
	dataDir  string
	clock    *clock
	r        *autoreply.Responder
}

func newSetup(t *testing.T, block string) *setup {
	t.Helper()
	s := &setup{live: loadLive(t, block), queueDir: t.TempDir(), dataDir: t.TempDir(), clock: &clock{t: inWindow}}
	q, err := queue.Open(s.queueDir, queue.Options{Hostname: "mx.example.test", Live: s.live})
	if err != nil {
		t.Fatal(err)
	}
	s.q = q
	s.restart()
	return s
}

// restart makes a new Responder on the same directory, as a server restart does.
func (s *setup) restart() {
	s.r = autoreply.New(autoreply.Options{Live: s.live, Dir: s.dataDir, Hostname: "mx.example.test",
		Queue: s.q, Now: s.clock.Now, Logger: slog.New(slog.DiscardHandler)})
}

// deliver tells the Responder that msg from the envelope sender from went into alice's INBOX
// and waits until it has decided.
func (s *setup) deliver(from, msg string) {
	s.r.Delivered(from, []string{"alice@example.test"}, autoreply.ReadHeader(strings.NewReader(msg)))
	s.r.Wait()
}

// replies returns the queued replies: envelope sender, recipients, parsed message.
func (s *setup) replies(t *testing.T) []reply {
	t.Helper()
	var out []reply
	for _, info := range s.q.List() {
		f, err := os.Open(filepath.Join(s.queueDir, "msg", info.ID))
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(f)
		var n int
		line, _ := br.ReadString('\n')
		if _, err := fmt.Sscanf(line, "kubemail-queue 1 %d", &n); err != nil {
			t.Fatalf("envelope header %q: %v", line, err)
		}
		if _, err := br.Discard(n); err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(br)
		f.Close()
		m, err := mail.ReadMessage(strings.NewReader(string(raw)))
		if err != nil {
			t.Fatalf("reply does not parse: %v\n%s", err, raw)
		}
		var rcpts []string
		for _, r := range info.Rcpts {
			rcpts = append(rcpts, r.Addr)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, reply{from: info.From, rcpts: rcpts, header: m.Header, body: string(body), raw: string(raw)})
	}
	return out
}

type reply struct {
	from   string
	rcpts  []string
	header mail.Header
	body   string
	raw    string
}

func (r reply) subject(t *testing.T) string {
	s, err := new(mime.WordDecoder).DecodeHeader(r.header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func counted(result string) float64 {
	return testutil.ToFloat64(metrics.AutoReplies.WithLabelValues(result))
}

// message is a plain message to alice from carol.
func message(extra string) string {
	return "From: Carol <carol@remote.test>\r\nTo: Alice <alice@example.test>\r\nSubject: Lunch?\r\n" +
		"Message-ID: <m1@remote.test>\r\n" + extra + "\r\nAre you free on Friday?\r\n"
}

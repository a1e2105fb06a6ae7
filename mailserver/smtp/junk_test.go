package smtp_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/store/storetest"
)

// A DMARC p=quarantine failure goes into every recipient's Junk folder with its
// Authentication-Results (RFC 7489 6.3), as does a p=reject failure outside the pct= sample (the
// next policy down, 6.6.4); a pass, and a quarantine failure outside the sample, go into INBOX.
func TestDMARCQuarantineIntoJunk(t *testing.T) {
	w := newAntispamWorld(t)
	w.dns.AddTXT("_dmarc.q.test", "v=DMARC1; p=quarantine")
	w.dns.AddTXT("_dmarc.q0.test", "v=DMARC1; p=quarantine; pct=0")
	w.dns.AddTXT("_dmarc.r0.test", "v=DMARC1; p=reject; pct=0")
	w.dns.AddTXT("good.test", "v=spf1 ip4:127.0.0.0/8 -all")
	w.dns.AddTXT("_dmarc.good.test", "v=DMARC1; p=quarantine")
	before := testutil.ToFloat64(metrics.SMTPJunked.WithLabelValues("mx", metrics.JunkDMARC))

	w.sendFrom(t, "127.0.0.1", "x@q.test", []string{"bob@plain.test", "bob@listed.test"}, testMessage("x@q.test", "quarantined"))
	w.sendFrom(t, "127.0.0.1", "x@r0.test", []string{"bob@plain.test"}, testMessage("x@r0.test", "reject-unsampled"))
	w.sendFrom(t, "127.0.0.1", "x@q0.test", []string{"bob@plain.test"}, testMessage("x@q0.test", "quarantine-unsampled"))
	w.sendFrom(t, "127.0.0.1", "x@good.test", []string{"bob@plain.test"}, testMessage("x@good.test", "passed"))

	wantSubjects(t, "bob@plain.test's Junk", w.junk(t, "plain.test"), "quarantined", "reject-unsampled")
	wantSubjects(t, "bob@listed.test's Junk", w.junk(t, "listed.test"), "quarantined")
	wantSubjects(t, "bob@plain.test's INBOX", w.inbox(t, "plain.test"), "quarantine-unsampled", "passed")
	junked := withSubject(w.junk(t, "plain.test"), "quarantined")
	if len(junked) > 0 && !regexp.MustCompile(`(?s)^Authentication-Results: mx\.b\.test;.*dmarc=fail reason="p=quarantine" header\.from=q\.test`).MatchString(junked[0].Data) {
		t.Errorf("the quarantined copy lacks its Authentication-Results:\n%.600s", junked[0].Data)
	}
	if d := testutil.ToFloat64(metrics.SMTPJunked.WithLabelValues("mx", metrics.JunkDMARC)) - before; d != 2 {
		t.Errorf("kubemail_smtp_messages_junked_total{reason=dmarc} grew by %v, want 2", d)
	}
	if logs := w.mx.Logs(); !strings.Contains(logs, `folder=Junk junk_reason="dmarc p=quarantine of q.test"`) {
		t.Errorf("the Accepted message line does not say the message went into Junk:\n%s", logs)
	}
}

// iprev (RFC 8601 2.7.3) is in the Authentication-Results field: pass when the client's PTR name
// maps back to it, fail when it does not; the message is accepted either way.
func TestIPRevRecorded(t *testing.T) {
	w := newAntispamWorld(t)
	w.dns.AddPTR("127.0.0.5", "mx.good.test")
	w.dns.AddAddr("mx.good.test", "127.0.0.5")
	w.dns.AddPTR("127.0.0.6", "liar.test")
	w.dns.AddAddr("liar.test", "192.0.2.1")
	w.sendFrom(t, "127.0.0.5", "x@sender.test", []string{"bob@plain.test"}, testMessage("x@sender.test", "forward-confirmed"))
	w.sendFrom(t, "127.0.0.6", "x@sender.test", []string{"bob@plain.test"}, testMessage("x@sender.test", "not-confirmed"))
	msgs := w.inbox(t, "plain.test")
	wantSubjects(t, "bob@plain.test's INBOX", msgs, "forward-confirmed", "not-confirmed")
	for subject, want := range map[string]string{
		"forward-confirmed": "\tiprev=pass policy.iprev=127.0.0.5\r\n",
		"not-confirmed":     "\tiprev=fail reason=\"no PTR name maps back to the address\" policy.iprev=127.0.0.6\r\n",
	} {
		m := withSubject(msgs, subject)
		if len(m) != 1 {
			continue
		}
		header, _, _ := strings.Cut(m[0].Data, "\r\nReceived: ")
		if !strings.HasPrefix(header, "Authentication-Results: mx.b.test;") || !strings.Contains(header+"\r\n", want) {
			t.Errorf("Authentication-Results lacks %q:\n%s", want, header)
		}
	}
	if !strings.Contains(w.mx.Logs(), "iprev=pass(mx.good.test)") {
		t.Errorf("the Accepted message line lacks iprev:\n%s", w.mx.Logs())
	}
}

// withSubject picks the messages with this subject.
func withSubject(msgs []storetest.Message, subject string) []storetest.Message {
	var out []storetest.Message
	for _, m := range msgs {
		if strings.Contains(m.Data, "\r\nSubject: "+subject+"\r\n") {
			out = append(out, m)
		}
	}
	return out
}

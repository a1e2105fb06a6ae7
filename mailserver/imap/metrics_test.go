package imap

import (
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/mailserver/metrics"
)

func TestLoginsAreCounted(t *testing.T) {
	e := newEnv(t)
	count := func(result string) float64 {
		return testutil.ToFloat64(metrics.IMAPLogins.WithLabelValues(result))
	}
	ok, failed := count(metrics.ResultOK), count(metrics.ResultFailed)
	c, err := imapclient.DialTLS(e.implicit, e.clientOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectCode(t, "LOGIN with a wrong password", c.Login(alice, "nope").Wait(), imap.ResponseCodeAuthenticationFailed)
	expectCode(t, "LOGIN of an unknown user", c.Login("mallory@example.test", alicePassword).Wait(), imap.ResponseCodeAuthenticationFailed)
	if err := c.Login(alice, alicePassword).Wait(); err != nil {
		t.Fatal(err)
	}
	if d := count(metrics.ResultFailed) - failed; d != 2 {
		t.Errorf("kubemail_imap_logins_total{result=failed} grew by %v, want 2", d)
	}
	if d := count(metrics.ResultOK) - ok; d != 1 {
		t.Errorf("kubemail_imap_logins_total{result=ok} grew by %v, want 1", d)
	}
}

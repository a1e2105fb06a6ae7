package metrics_test

import (
	"errors"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/mailserver/metrics"
)

func TestSMTPRejectedLabels(t *testing.T) {
	cases := []struct {
		stage  string
		err    error
		labels []string
	}{
		{"Rejected recipient", &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}}, []string{"mx", "recipient", "550", "5.1.1"}},
		{"Rejected sender", &gosmtp.SMTPError{Code: 450, EnhancedCode: gosmtp.EnhancedCode{4, 7, 1}}, []string{"mx", "sender", "450", "4.7.1"}},
		{"message", &gosmtp.SMTPError{Code: 451}, []string{"mx", "message", "451", ""}},
		{"Rejected message", errors.New("not an SMTP reply"), []string{"mx", "message", "", ""}},
	}
	for _, c := range cases {
		before := testutil.ToFloat64(metrics.SMTPRejections.WithLabelValues(c.labels...))
		metrics.SMTPRejected("mx", c.stage, c.err)
		if d := testutil.ToFloat64(metrics.SMTPRejections.WithLabelValues(c.labels...)) - before; d != 1 {
			t.Errorf("SMTPRejected(%q, %v): %v labelled %v, want 1", c.stage, c.err, d, c.labels)
		}
	}
	before := testutil.ToFloat64(metrics.SMTPMessagesAccepted.WithLabelValues("submission", "queue"))
	metrics.SMTPAccepted("submission", true)
	if d := testutil.ToFloat64(metrics.SMTPMessagesAccepted.WithLabelValues("submission", "queue")) - before; d != 1 {
		t.Errorf("SMTPAccepted: %v", d)
	}
}

func TestRegistriesAreIndependentAndServed(t *testing.T) {
	extra := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "test_extra"}, func() float64 { return 42 })
	a, b := metrics.NewRegistry(extra), metrics.NewRegistry() // both hold the package counters
	if n, err := testutil.GatherAndCount(b, "test_extra"); err != nil || n != 0 {
		t.Errorf("a second registry has the first one's collector: %d, %v", n, err)
	}
	if prometheus.DefaultRegisterer.Unregister(metrics.IMAPLogins) {
		t.Error("the counters must not be in the global default registry")
	}
	rec := httptest.NewRecorder()
	metrics.Handler(a).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{"test_extra 42", `kubemail_imap_logins_total{result="failed"} `, `kubemail_smtp_messages_accepted_total{destination="local",server="mx"} `} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Names lists metrics of label sets never counted, and the extra collectors' metrics.
func TestNames(t *testing.T) {
	names := metrics.Names(metrics.TLSCertificateExpiry(time.Now))
	for _, want := range []string{"kubemail_smtp_rejections_total", "kubemail_dnsbl_lookups_total", "kubemail_queue_enqueued_total",
		"kubemail_tls_certificate_expiry_timestamp_seconds"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() lacks %s: %v", want, names)
		}
	}
}

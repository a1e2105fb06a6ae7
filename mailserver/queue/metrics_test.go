package queue_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/mailserver/metrics"
	"github.com/kubemail/kubemail/mailserver/queue"
)

// counters reads the queue's counters; tests compare readings before and after.
type counters map[string]float64

func readCounters() counters {
	return counters{
		"delivered": testutil.ToFloat64(metrics.DeliveryAttempts.WithLabelValues(metrics.ResultDelivered)),
		"deferred":  testutil.ToFloat64(metrics.DeliveryAttempts.WithLabelValues(metrics.ResultDeferred)),
		"failed":    testutil.ToFloat64(metrics.DeliveryAttempts.WithLabelValues(metrics.ResultFailed)),
		"bounce":    testutil.ToFloat64(metrics.Notices.WithLabelValues(metrics.NoticeBounce)),
		"delay":     testutil.ToFloat64(metrics.Notices.WithLabelValues(metrics.NoticeDelay)),
		"enqueued":  testutil.ToFloat64(metrics.QueueEnqueued),
		"expired":   testutil.ToFloat64(metrics.QueueExpired),
	}
}

// gauge is the value of a metric without labels gathered from reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestMetricsAfterRealDeliveries(t *testing.T) {
	w := newWorld(t)
	w.c.Stop() // c.test refuses connections: its mail is deferred
	// Retries an hour apart, so each message gets exactly one attempt here; a delay notice at
	// once, after the first attempt that leaves a recipient pending.
	q := w.open(queue.RetryPolicy{InitialInterval: time.Hour, Lifetime: 24 * time.Hour, DelayWarningAfter: time.Nanosecond})
	reg := metrics.NewRegistry(q.Collector())
	before := readCounters()
	w.run(q)

	w.enqueue(q, "alice@a.test", "half-bounced", "bob@b.test", "nobody@b.test") // 250 and 550
	deferred := w.enqueue(q, "alice@a.test", "deferred", "carol@c.test")        // refused
	eventually(t, 30*time.Second, "the first message done and the second tried", func() bool {
		l := q.List()
		return len(l) == 1 && l[0].ID == deferred && l[0].Attempts == 1 && !l[0].InFlight && l[0].DelayNotified
	})
	if n := len(w.a.WaitInbox("alice@a.test", 2, 30*time.Second)); n != 2 {
		t.Fatalf("alice has %d notices, want a bounce and a delay notice", n)
	}

	after := readCounters()
	for name, want := range map[string]float64{"delivered": 1, "failed": 1, "deferred": 1, "bounce": 1, "delay": 1, "enqueued": 2, "expired": 0} {
		if got := after[name] - before[name]; got != want {
			t.Errorf("%s grew by %v, want %v", name, got, want)
		}
	}
	if got := gauge(t, reg, "kubemail_queue_messages"); got != 1 {
		t.Errorf("kubemail_queue_messages %v, want 1", got)
	}
	if got := gauge(t, reg, "kubemail_queue_recipients_pending"); got != 1 {
		t.Errorf("kubemail_queue_recipients_pending %v, want 1", got)
	}
	if got := gauge(t, reg, "kubemail_queue_messages_in_flight"); got != 0 {
		t.Errorf("kubemail_queue_messages_in_flight %v, want 0", got)
	}
	if age := gauge(t, reg, "kubemail_queue_oldest_message_age_seconds"); age <= 0 || age > 30 {
		t.Errorf("kubemail_queue_oldest_message_age_seconds %v, want the few seconds of the test", age)
	}

	// What Prometheus scrapes.
	srv := httptest.NewServer(metrics.Handler(reg))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		"kubemail_queue_messages 1",
		`kubemail_queue_delivery_attempts_total{result="delivered"} `,
		`kubemail_queue_notices_total{type="bounce"} `,
		"# TYPE kubemail_queue_oldest_message_age_seconds gauge",
		"go_goroutines ",
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}

	if err := q.Delete(deferred); err != nil {
		t.Fatal(err)
	}
	if got := gauge(t, reg, "kubemail_queue_messages"); got != 0 {
		t.Errorf("kubemail_queue_messages %v after the delete, want 0", got)
	}
	if age := gauge(t, reg, "kubemail_queue_oldest_message_age_seconds"); age != 0 {
		t.Errorf("oldest age %v of an empty queue, want 0", age)
	}
}

func TestMetricsCountExpiry(t *testing.T) {
	w := newWorld(t)
	w.b.Stop()
	p := fast
	p.Lifetime = 300 * time.Millisecond
	q := w.open(p)
	w.run(q)
	before := readCounters()
	w.enqueue(q, "alice@a.test", "expiring", "bob@b.test")
	waitEmpty(t, q)
	after := readCounters()
	if d := after["expired"] - before["expired"]; d != 1 {
		t.Errorf("expired grew by %v, want 1", d)
	}
	if d := after["deferred"] - before["deferred"]; d < 1 {
		t.Errorf("deferred grew by %v, want the refused attempts", d)
	}
	if d := after["bounce"] - before["bounce"]; d != 1 {
		t.Errorf("bounce grew by %v, want 1", d)
	}
}

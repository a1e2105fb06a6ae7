package queue

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// Stats is the queue at one moment, for the metrics.
type Stats struct {
	Messages      int       // messages queued
	InFlight      int       // of those, in a delivery attempt now
	PendingRcpts  int       // recipients still to be delivered
	OldestArrival time.Time // arrival of the oldest message; zero when empty
}

// Stats counts the queue now.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	defer q.mu.Unlock()
	var s Stats
	s.Messages = len(q.entries)
	for _, e := range q.entries {
		if e.inflight {
			s.InFlight++
		}
		for _, r := range e.rec.Rcpts {
			if r.State == Pending {
				s.PendingRcpts++
			}
		}
		if s.OldestArrival.IsZero() || e.rec.Arrival.Before(s.OldestArrival) {
			s.OldestArrival = e.rec.Arrival
		}
	}
	return s
}

var (
	descMessages = prometheus.NewDesc("kubemail_queue_messages", "Messages in the outbound queue.", nil, nil)
	descInFlight = prometheus.NewDesc("kubemail_queue_messages_in_flight", "Queued messages in a delivery attempt now.", nil, nil)
	descPending  = prometheus.NewDesc("kubemail_queue_recipients_pending", "Recipients of queued messages still to be delivered.", nil, nil)
	descOldest   = prometheus.NewDesc("kubemail_queue_oldest_message_age_seconds", "Age of the oldest queued message; 0 when the queue is empty.", nil, nil)
)

// Collector reports the queue's gauges (depth, in flight, pending recipients, oldest age),
// counted at each scrape; register it with metrics.NewRegistry. The queue's counters (attempts
// by result, notices) are the package variables of mailserver/metrics.
func (q *Queue) Collector() prometheus.Collector { return queueCollector{q} }

type queueCollector struct{ q *Queue }

func (c queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMessages
	ch <- descInFlight
	ch <- descPending
	ch <- descOldest
}

func (c queueCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.q.Stats()
	age := 0.0
	if !s.OldestArrival.IsZero() {
		age = max(time.Since(s.OldestArrival).Seconds(), 0)
	}
	ch <- prometheus.MustNewConstMetric(descMessages, prometheus.GaugeValue, float64(s.Messages))
	ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(s.InFlight))
	ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(s.PendingRcpts))
	ch <- prometheus.MustNewConstMetric(descOldest, prometheus.GaugeValue, age)
}

// countResults counts one attempt's results per recipient; an interrupted attempt's results
// are only the final ones (see onlyFinal).
func countResults(results []delivery.Result) {
	for _, r := range results {
		switch {
		case r.Delivered():
			metrics.DeliveryAttempts.WithLabelValues(metrics.ResultDelivered).Inc()
		case r.Permanent():
			metrics.DeliveryAttempts.WithLabelValues(metrics.ResultFailed).Inc()
		default:
			metrics.DeliveryAttempts.WithLabelValues(metrics.ResultDeferred).Inc()
		}
	}
}

package queue

import (
	"bytes"
	"context"
	"time"

	"github.com/kubemail/kubemail/mailserver/dsn"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// needsNotice reports a notice is owed: a failed recipient not yet notified, or a delay.
func (q *Queue) needsNotice(rec *Record) bool {
	if rec.From == "" {
		return false
	}
	for _, r := range rec.Rcpts {
		if r.State == Failed && !r.Notified {
			return true
		}
	}
	return q.delayDue(rec)
}

func (q *Queue) delayDue(rec *Record) bool {
	after := q.retryPolicy().DelayWarningAfter
	return rec.From != "" && !rec.DelayNotified && after > 0 && !done(rec) &&
		time.Since(rec.Arrival) >= after
}

// notify sends the notices owed for rec and marks them sent; false if one could not be sent.
func (q *Queue) notify(ctx context.Context, rec *Record) bool {
	if rec.From == "" {
		for i := range rec.Rcpts {
			if rc := &rec.Rcpts[i]; rc.State == Failed && !rc.Notified {
				// RFC 5321 4.5.5: never a notice about a notice.
				q.log.Info("Dropped a failed notice without bouncing it", "id", rec.ID, "rcpt", rc.Addr, "reason", lastDiagnostic(rc))
				rc.Notified = true
			}
		}
		return true
	}
	var failed []int
	for i, r := range rec.Rcpts {
		if r.State == Failed && !r.Notified {
			failed = append(failed, i)
		}
	}
	if len(failed) > 0 {
		if !q.sendNotice(ctx, rec, failed, dsn.Failed) {
			return false
		}
		for _, i := range failed {
			rec.Rcpts[i].Notified = true
		}
	}
	if q.delayDue(rec) {
		var pending []int
		for i, r := range rec.Rcpts {
			if r.State == Pending {
				pending = append(pending, i)
			}
		}
		if !q.sendNotice(ctx, rec, pending, dsn.Delayed) {
			return false
		}
		rec.DelayNotified = true
	}
	return true
}

// sendNotice writes one notice about the recipients at idx to the sender: into the sender's
// mailbox when it is ours, else into the queue with the null sender.
func (q *Queue) sendNotice(ctx context.Context, rec *Record, idx []int, action dsn.Action) bool {
	var header []byte
	if f, err := q.spool.openMessage(rec.ID); err == nil {
		header, _ = dsn.ReadHeader(f)
		f.Close()
	}
	report := dsn.Report{
		ReportingMTA:   q.opts.Hostname,
		QueueID:        rec.ID,
		Sender:         rec.From,
		Arrival:        rec.Arrival,
		OriginalHeader: header,
	}
	for _, i := range idx {
		rc := rec.Rcpts[i]
		r := dsn.Recipient{
			Address:          rc.Addr,
			Action:           action,
			Status:           rc.Status,
			RemoteMTA:        rc.RemoteMTA,
			Diagnostic:       lastDiagnostic(&rc),
			DiagnosticIsSMTP: rc.Code != 0,
			LastAttempt:      rc.At,
		}
		if rc.Code != 0 {
			r.Diagnostic = itoa(rc.Code) + " " + rc.Status + " " + rc.Reply
		}
		if action == dsn.Delayed {
			r.RetryUntil = rec.Arrival.Add(q.retryPolicy().Lifetime)
			if r.Status == "" || r.Status[0] != '4' {
				r.Status = "4.0.0"
			}
		}
		report.Recipients = append(report.Recipients, r)
	}
	msg := dsn.Build(report)
	log := q.log.With("id", rec.ID, "to", rec.From, "action", string(action), "rcpts", len(idx))
	if q.opts.Live != nil && q.opts.Local != nil {
		dir := q.opts.Live.Load()
		if mb := dir.Lookup(rec.From); mb != nil {
			if _, err := q.opts.Local.Deliver(ctx, []string{mb.Address}, []byte("Return-Path: <>\r\n"), bytes.NewReader(msg)); err != nil {
				log.Error("Failed to deliver a delivery status notice", "err", err.Error())
				return false
			}
			log.Info("Delivered a delivery status notice to the sender's mailbox", "mailbox", mb.Address)
			countNotice(action)
			return true
		}
	}
	id, err := q.Enqueue(ctx, "", []string{rec.From}, nil, bytes.NewReader(msg))
	if err != nil {
		log.Error("Failed to queue a delivery status notice", "err", err.Error())
		return false
	}
	log.Info("Queued a delivery status notice", "notice", id)
	countNotice(action)
	return true
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for n > 0 || i == len(b) {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

func countNotice(action dsn.Action) {
	if action == dsn.Delayed {
		metrics.Notices.WithLabelValues(metrics.NoticeDelay).Inc()
		return
	}
	metrics.Notices.WithLabelValues(metrics.NoticeBounce).Inc()
}

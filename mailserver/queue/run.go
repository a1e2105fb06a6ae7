package queue

import (
	"container/heap"
	"context"
	"io"
	"sync"
	"time"

	"github.com/kubemail/kubemail/mailserver/delivery"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// Run delivers queued messages until ctx ends, then starts no new attempt and gives the
// attempts under way Options.DrainTimeout to finish before it cancels them, and returns. An
// attempt cut off after the remote server took the message (its reply to the final dot lost)
// is retried after a restart and delivered twice; letting it finish avoids that on every
// ordinary stop, such as a rolling update. Call it once.
func (q *Queue) Run(ctx context.Context) {
	attemptCtx, cancelAttempts := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAttempts()
	var wg sync.WaitGroup
	for range q.opts.Workers {
		wg.Go(func() {
			for {
				select {
				case e := <-q.due:
					q.attempt(attemptCtx, e)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	q.schedule(ctx)
	drained := make(chan struct{})
	go func() { wg.Wait(); close(drained) }()
	timer := time.NewTimer(q.drainTimeout())
	defer timer.Stop()
	select {
	case <-drained:
	case <-timer.C:
		q.log.Warn("Cancelled the delivery attempts still under way at shutdown", "after", q.drainTimeout())
		cancelAttempts()
		<-drained
	}
}

// schedule hands due entries to the workers.
func (q *Queue) schedule(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		q.mu.Lock()
		var e *entry
		wait := time.Hour
		if len(q.sched) > 0 {
			if d := time.Until(q.sched[0].rec.NextAttempt); d <= 0 {
				e = heap.Pop(&q.sched).(*entry)
				e.inflight = true
			} else {
				wait = d
			}
		}
		q.mu.Unlock()
		if e != nil {
			select {
			case q.due <- e:
			case <-ctx.Done():
				q.mu.Lock()
				e.inflight = false
				heap.Push(&q.sched, e)
				q.mu.Unlock()
				return
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-q.wake:
		case <-ctx.Done():
			return
		}
	}
}

// attempt tries the pending recipients of one message and records what happened.
func (q *Queue) attempt(ctx context.Context, e *entry) {
	// The worker changes a copy, so List can read the entry meanwhile.
	q.mu.Lock()
	rec := e.rec.clone()
	q.mu.Unlock()
	keep := q.process(ctx, &rec)
	q.mu.Lock()
	e.rec = &rec
	e.inflight = false
	deleted := e.deleted
	if deleted || !keep {
		delete(q.entries, e.rec.ID)
	} else {
		if e.retry {
			e.retry = false
			e.rec.NextAttempt = time.Now()
		}
		heap.Push(&q.sched, e)
	}
	q.mu.Unlock()
	if deleted && keep {
		q.log.Info("Deleted message", "id", e.rec.ID)
		if err := q.spool.remove(e.rec.ID); err != nil {
			q.log.Error("Failed to remove a deleted message", "id", e.rec.ID, "err", err.Error())
		}
	}
	q.poke()
}

// process runs one attempt on rec, which it owns, and reports whether the message stays queued.
func (q *Queue) process(ctx context.Context, rec *Record) (keep bool) {
	p := q.retryPolicy()
	interrupted := false
	var pending []string
	for _, r := range rec.Rcpts {
		if r.State == Pending {
			pending = append(pending, r.Addr)
		}
	}
	if len(pending) > 0 {
		msg := &delivery.Message{
			ID: rec.ID, From: rec.From, Rcpts: pending, Size: rec.Size, Signature: []byte(rec.DKIM),
			Open: func() (io.ReadCloser, error) { return q.spool.openMessage(rec.ID) },
		}
		results := q.opts.Transport.Deliver(ctx, msg)
		if ctx.Err() != nil {
			// Shutting down: an interrupted attempt is not held against the message.
			results = onlyFinal(results)
			interrupted = true
		} else {
			rec.Attempts++
		}
		countResults(results)
		now := time.Now()
		rec.LastAttempt = now
		byAddr := make(map[string]delivery.Result, len(results))
		for _, r := range results {
			byAddr[r.Rcpt] = r
		}
		for i := range rec.Rcpts {
			rc := &rec.Rcpts[i]
			res, ok := byAddr[rc.Addr]
			if rc.State != Pending || !ok {
				continue
			}
			rc.Code, rc.Status, rc.Reply, rc.RemoteMTA, rc.At = res.Code, res.Status, res.Text, res.RemoteMTA, now
			switch {
			case res.Delivered():
				rc.State = Delivered
			case res.Permanent():
				rc.State = Failed
			}
		}
	}
	now := time.Now()
	if now.Sub(rec.Arrival) >= p.Lifetime {
		for i := range rec.Rcpts {
			if rc := &rec.Rcpts[i]; rc.State == Pending {
				rc.State = Failed
				rc.Reply = "Delivery time expired after " + p.Lifetime.String() + "; last: " + lastDiagnostic(rc)
				rc.Code, rc.Status = 0, "5.4.7" // RFC 3463: delivery time expired
				rc.At = now
				metrics.QueueExpired.Inc()
			}
		}
	}
	q.logOutcome(rec)
	if rec.From == "" {
		q.notify(ctx, rec) // only logs: never a notice about a notice
	}
	owed := q.needsNotice(rec)
	if done(rec) && !owed {
		return q.finish(rec)
	}
	rec.NextAttempt = p.nextAttempt(rec.Arrival, now, max(rec.Attempts, 1))
	if interrupted {
		rec.NextAttempt = now // tried again as soon as the server is back
	}
	// The results are made durable before any notice, so a crash never repeats a delivery
	// because a notice was being written.
	if err := q.spool.writeRecord(rec); err != nil {
		// The old record stands: the attempt's results are repeated after a restart.
		q.log.Error("Failed to record a delivery attempt", "id", rec.ID, "err", err.Error())
	}
	if !owed {
		return true
	}
	if !q.notify(ctx, rec) {
		// A notice could not be sent: try again soon, whatever the backoff says.
		rec.NextAttempt = now.Add(p.InitialInterval)
		return true
	}
	if done(rec) {
		return q.finish(rec)
	}
	if err := q.spool.writeRecord(rec); err != nil {
		q.log.Error("Failed to record a delivery attempt", "id", rec.ID, "err", err.Error())
	}
	return true
}

// finish takes a message with nothing left to do out of the queue; false unless that failed.
func (q *Queue) finish(rec *Record) (keep bool) {
	if err := q.spool.remove(rec.ID); err != nil {
		q.log.Error("Failed to remove a finished message", "id", rec.ID, "err", err.Error())
		rec.NextAttempt = time.Now().Add(q.retryPolicy().InitialInterval)
		return true
	}
	return false
}

// onlyFinal keeps the results an interrupted attempt really got: deliveries and 5xx replies.
func onlyFinal(results []delivery.Result) []delivery.Result {
	out := results[:0:0]
	for _, r := range results {
		if r.Delivered() || (r.Permanent() && r.Code != 0) {
			out = append(out, r)
		}
	}
	return out
}

func lastDiagnostic(rc *Rcpt) string {
	if rc.Reply == "" {
		return "no attempt made"
	}
	if rc.Code != 0 {
		return rc.Status + " " + rc.Reply
	}
	return rc.Reply
}

// done reports that no recipient is pending.
func done(rec *Record) bool {
	for _, r := range rec.Rcpts {
		if r.State == Pending {
			return false
		}
	}
	return true
}

func (q *Queue) logOutcome(rec *Record) {
	var delivered, failed, pending int
	for _, r := range rec.Rcpts {
		switch r.State {
		case Delivered:
			delivered++
		case Failed:
			failed++
		default:
			pending++
		}
	}
	q.log.Info("Attempted delivery", "id", rec.ID, "attempts", rec.Attempts,
		"delivered", delivered, "failed", failed, "pending", pending, "age", time.Since(rec.Arrival).Round(time.Second).String())
}

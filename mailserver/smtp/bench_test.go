package smtp

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMX10KiB delivers 10 KiB messages into Maildir (fsync before 250) over 1, 10 and 50
// concurrent sessions, as Postfix's smtp-source does: one message per transaction, pipelined
// MAIL/RCPT/DATA, many transactions per connection. It reports messages per second.
func BenchmarkMX10KiB(b *testing.B) {
	for _, sessions := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			s := startServer(b, false, false)
			body := strings.Repeat(strings.Repeat("x", 78)+"\r\n", 10240/80)
			msg := message("bench", body) + ".\r\n"
			clients := make([]*rawClient, sessions)
			for i := range clients {
				clients[i] = greeted(b, s.addr)
			}
			var next atomic.Int64
			var wg sync.WaitGroup
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			start := time.Now()
			for _, c := range clients {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						c.write("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
						c.expect(250)
						c.expect(250)
						c.expect(354)
						c.write(msg)
						c.expect(250)
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

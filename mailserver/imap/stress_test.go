package imap

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestConcurrentSessionsStress runs several sessions on one INBOX doing random commands while
// mail arrives, for a bounded time, and checks that every session ends with the server's view
// and that the server logged no error (no tracker inconsistency, no internal failure).
func TestConcurrentSessionsStress(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.deliver(alice, msgText(fmt.Sprint("seed ", i), "x\r\n"))
	}
	const sessions = 4
	deadline := time.Now().Add(1500 * time.Millisecond)
	clients := make([]*imapclient.Client, sessions)
	for i := range clients {
		clients[i] = e.login(alice, alicePassword)
		if _, err := clients[i].Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	wg.Go(func() {
		for i := 0; time.Now().Before(deadline) && i < 200; i++ {
			e.deliver(alice, msgText(fmt.Sprint("load ", i), "y\r\n"))
			time.Sleep(5 * time.Millisecond)
		}
	})
	for i, c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(i), 1))
			for n := 0; time.Now().Before(deadline) && n < 2000; n++ {
				var err error
				seq := imap.SeqSetNum(uint32(1 + rng.IntN(5)))
				switch rng.IntN(8) {
				case 0:
					err = c.Store(seq, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted, imap.Flag("$K" + fmt.Sprint(rng.IntN(3)))}}, nil).Close()
				case 1:
					err = c.Store(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.StoreFlags{Op: imap.StoreFlagsDel, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
				case 2:
					_, err = c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{Flags: true, UID: true, BodySection: []*imap.FetchItemBodySection{{Specifier: imap.PartSpecifierHeader}}}).Collect()
				case 3:
					err = c.Expunge().Close()
				case 4:
					_, err = c.Copy(seq, "INBOX").Wait()
				case 5:
					_, err = c.Move(seq, "Archive").Wait()
				case 6:
					_, err = c.Search(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, nil).Wait()
				default:
					err = c.Noop().Wait()
				}
				var imapErr *imap.Error
				if err != nil && !errors.As(err, &imapErr) {
					errs <- fmt.Errorf("session %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st, err := clients[0].Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range clients {
		if err := c.Noop().Wait(); err != nil {
			t.Fatal(err)
		}
		if n := c.Mailbox().NumMessages; n != *st.NumMessages {
			t.Errorf("session %d sees %d messages, the server has %d", i, n, *st.NumMessages)
		}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
		if err != nil || uint32(len(msgs)) != *st.NumMessages {
			t.Errorf("session %d fetched %d messages (%v), want %d", i, len(msgs), err, *st.NumMessages)
		}
	}
	if logs := e.logs.messages(); len(logs) > 0 {
		t.Errorf("server logged problems: %v", logs)
	}
}

package imap

import (
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// setQuota gives a mailbox a quota, as a config reload would.
func (e *env) setQuota(addr string, quota int64) {
	cfg := *e.live.Load().Config()
	cfg.Mailboxes = slices.Clone(cfg.Mailboxes)
	for i := range cfg.Mailboxes {
		if cfg.Mailboxes[i].Address == addr {
			cfg.Mailboxes[i].Quota = quota
		}
	}
	e.live.Store(config.NewDirectory(&cfg))
}

func appendMsg(c *imapclient.Client, folder, msg string) (*imap.AppendData, error) {
	cmd := c.Append(folder, int64(len(msg)), nil)
	cmd.Write([]byte(msg))
	cmd.Close()
	return cmd.Wait()
}

func numMessages(t *testing.T, c *imapclient.Client, folder string) uint32 {
	t.Helper()
	st, err := c.Status(folder, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	return *st.NumMessages
}

func quotaRefusals(command string) float64 {
	return testutil.ToFloat64(metrics.QuotaRefusals.WithLabelValues("imap", command))
}

// APPEND and COPY that would pass the quota get NO [OVERQUOTA] and store nothing; MOVE to Trash
// still works, and after EXPUNGE an APPEND fits again.
func TestOverQuota(t *testing.T) {
	e := newEnv(t)
	one := msgText("one", "first\r\n")
	e.setQuota(alice, int64(2*len(one)+len(one)/2)) // room for two
	c := e.login(alice, alicePassword)
	appends, copies := quotaRefusals("APPEND"), quotaRefusals("COPY")

	for range 2 {
		if _, err := appendMsg(c, "Drafts", one); err != nil {
			t.Fatalf("APPEND within the quota: %v", err)
		}
	}
	_, err := appendMsg(c, "Drafts", one)
	expectCode(t, "APPEND past the quota", err, imap.ResponseCodeOverQuota)
	if n := numMessages(t, c, "Drafts"); n != 2 {
		t.Errorf("Drafts holds %d messages after the refused APPEND, want 2", n)
	}

	if _, err := c.Select("Drafts", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	_, err = c.Copy(imap.SeqSetNum(1), "Archive").Wait()
	expectCode(t, "COPY past the quota", err, imap.ResponseCodeOverQuota)
	if n := numMessages(t, c, "Archive"); n != 0 {
		t.Errorf("Archive holds %d messages after the refused COPY, want 0", n)
	}
	if _, err := c.Move(imap.SeqSetNum(1), "Trash").Wait(); err != nil {
		t.Errorf("MOVE to Trash at the quota: %v", err)
	}
	if d := quotaRefusals("APPEND") - appends; d != 1 {
		t.Errorf("kubemail_mailbox_quota_refusals_total{imap,APPEND} grew by %v, want 1", d)
	}
	if d := quotaRefusals("COPY") - copies; d != 1 {
		t.Errorf("kubemail_mailbox_quota_refusals_total{imap,COPY} grew by %v, want 1", d)
	}

	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := appendMsg(c, "Drafts", one); err != nil {
		t.Errorf("APPEND after EXPUNGE made room: %v", err)
	}

	// A lower quota applies from the next command: the mailbox is now over it.
	e.setQuota(alice, 10)
	_, err = appendMsg(c, "INBOX", "Subject: x\r\n\r\n")
	expectCode(t, "APPEND after the quota was lowered", err, imap.ResponseCodeOverQuota)
	e.setQuota(alice, 0)
	if _, err := appendMsg(c, "INBOX", "Subject: x\r\n\r\n"); err != nil {
		t.Errorf("APPEND once the quota was removed: %v", err)
	}
}

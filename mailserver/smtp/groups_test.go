package smtp

import (
	"strings"
	"testing"

	"github.com/kubemail/kubemail/mailserver/config"
)

// withGroups serves the test config plus the groups.
func (s *testServer) withGroups(groups ...config.Group) {
	cfg := *s.live.Load().Config()
	cfg.Groups = groups
	s.live.Store(config.NewDirectory(&cfg))
}

// Without a queue, a group's local members get their copies with the direct recipients, each
// once; acceptFrom Domain refuses an outside sender on the MX with 550 5.7.1 naming the policy;
// a message carrying the group's X-Loop is refused with 554 5.4.6 and stored nowhere.
func TestGroupOnTheMX(t *testing.T) {
	s := startServer(t, false, false)
	s.withGroups(
		config.Group{Address: "team@example.test", AcceptFrom: "Anyone", Expanded: []string{"alice@example.test", "bob@example.test", "x@remote.test"}},
		config.Group{Address: "staff@example.test", AcceptFrom: "Domain", Expanded: []string{"bob@example.test"}},
	)
	c := greeted(t, s.addr)
	c.cmd("MAIL FROM:<someone@remote.test>")
	c.expect(250)
	c.cmd("RCPT TO:<staff@example.test>")
	c.expect(550, "5.7.1", "acceptFrom Domain")
	c.cmd("RCPT TO:<TEAM+news@example.test>")
	c.expect(250)
	c.cmd("RCPT TO:<alice@example.test>")
	c.expect(250)
	c.cmd("DATA")
	c.expect(354)
	c.write(strings.ReplaceAll(message("team", "hello"), "\r\n.", "\r\n..") + ".\r\n")
	c.expect(250)
	if got := s.only("alice@example.test"); !strings.Contains(got, "hello") {
		t.Errorf("alice's copy:\n%s", got)
	}
	s.only("bob@example.test")
	s.waitLog("Left out a group's remote member", "member=x@remote.test")

	c.cmd("MAIL FROM:<someone@remote.test>")
	c.expect(250)
	c.cmd("RCPT TO:<team@example.test>")
	c.expect(250)
	c.cmd("DATA")
	c.expect(354)
	c.write("X-Loop: team@example.test\r\n" + message("again", "loop") + ".\r\n")
	c.expect(554, "5.4.6")
	if n := len(s.maildir("bob@example.test")); n != 1 {
		t.Errorf("bob has %d messages after the loop, want 1", n)
	}
}

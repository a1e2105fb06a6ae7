package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/kubemail/kubemail/mailserver/config"
)

// Replies of the distribution lists (see the package doc, Groups).
var (
	// RFC 3463 X.7.1: delivery not authorized; the text names the policy.
	errGroupMembersOnly = reply(550, gosmtp.EnhancedCode{5, 7, 1}, "Sender not allowed to post to this group (acceptFrom Members)")
	errGroupDomainOnly  = reply(550, gosmtp.EnhancedCode{5, 7, 1}, "Sender not allowed to post to this group (acceptFrom Domain)")
	// RFC 5321 6.3 and RFC 3463 X.4.6: routing loop detected.
	errGroupLoop = reply(554, gosmtp.EnhancedCode{5, 4, 6}, "Mail loop detected: the message already went through this group")
)

// checkGroupRecipient accepts a recipient that is a group address (or a plus-address of one)
// when the group's acceptFrom allows the sender. The group counts as one recipient; its members
// are worked out at the end of the data (groupCopies). junkZone is the DNSBL (action Junk) that
// lists the client for the group's domain, if any: it makes the group's copy suspect.
func (s *session) checkGroupRecipient(tx *transaction, dom *config.Domain, g *config.Group, to, junkZone string) (reason string, err error) {
	if reason, err := s.checkGroupSender(tx, g); err != nil {
		return reason, err
	}
	if tx.size > domainSizeLimit(dom) {
		return "declared SIZE over the domain's limit", errTooBig
	}
	if reason, err := tx.admitLocal(dom, to); err != nil {
		return reason, err
	}
	if junkZone != "" {
		if tx.groupJunk == nil {
			tx.groupJunk = map[string]string{}
		}
		tx.groupJunk[g.Address] = junkZone
	}
	for _, seen := range tx.groups {
		if seen == g {
			return "", nil
		}
	}
	tx.groups = append(tx.groups, g)
	return "", nil
}

// checkGroupSender applies the group's acceptFrom to the transaction's sender.
func (s *session) checkGroupSender(tx *transaction, g *config.Group) (reason string, err error) {
	switch g.AcceptFrom {
	case "Members":
		if isGroupMember(tx, g) {
			return "", nil
		}
		return "sender is not a member of " + g.Address, errGroupMembersOnly
	case "Domain":
		_, groupDomain, _ := config.SplitAddress(g.Address)
		_, senderDomain, ok := config.SplitAddress(tx.from)
		vouched := tx.user != nil || tx.dir.Trusted(clientIP(s.remote))
		if ok && vouched && senderDomain == groupDomain {
			return "", nil
		}
		return "sender is not an authenticated sender of " + groupDomain, errGroupDomainOnly
	}
	return "", nil
}

// isGroupMember reports whether the sender is one of the group's members after expansion: the
// authenticated user's mailbox, or the envelope sender (a mailbox of ours by any of its
// addresses, or a remote member's address in any case).
func isGroupMember(tx *transaction, g *config.Group) bool {
	var mailbox string
	if tx.user != nil {
		mailbox = tx.user.Address
	} else if mb := tx.dir.Lookup(tx.from); tx.from != "" && mb != nil {
		mailbox = mb.Address
	}
	for _, m := range g.Expanded {
		if mailbox != "" && m == mailbox || tx.from != "" && strings.EqualFold(m, tx.from) {
			return true
		}
	}
	return false
}

// groupCopy is one group's share of a message: the members it goes to that no direct
// recipient and no earlier group of the transaction already reaches.
type groupCopy struct {
	group *config.Group
	rcpts []string
}

// groupCopies works out each group's recipients, each address once across the transaction.
// Without a queue, local members join the direct mailboxes and remote ones are left out
// (logged): there is nothing to send them with. A suspect copy (groupSuspicion) is not queued
// either: its local members join the direct mailboxes with their copy going into Junk, and its
// outside members are left out, logged, so suspected spam is never forwarded.
func (s *session) groupCopies(tx *transaction) []groupCopy {
	covered := map[string]bool{}
	for _, a := range tx.mailboxes {
		covered[strings.ToLower(a)] = true
	}
	for _, a := range tx.remote {
		covered[strings.ToLower(a)] = true
	}
	var out []groupCopy
	for _, g := range tx.groups {
		c := groupCopy{group: g}
		suspicion := tx.groupSuspicion(g)
		for _, m := range g.Expanded {
			key := strings.ToLower(m)
			if covered[key] {
				continue
			}
			covered[key] = true
			if s.b.opts.Queue != nil && suspicion == "" {
				c.rcpts = append(c.rcpts, m)
				continue
			}
			mb := tx.dir.Lookup(m)
			switch {
			case mb != nil:
				if !slices.Contains(tx.mailboxes, mb.Address) {
					tx.mailboxes = append(tx.mailboxes, mb.Address)
				}
				if zone := tx.groupJunk[g.Address]; zone != "" && tx.junk[mb.Address] == "" {
					if tx.junk == nil {
						tx.junk = map[string]string{}
					}
					tx.junk[mb.Address] = zone
				}
			case suspicion != "":
				s.log.Info("Not forwarded to a group's outside member: suspected spam", "id", tx.id, "group", g.Address, "member", m, "reason", suspicion)
			default:
				s.log.Warn("Left out a group's remote member: outbound delivery is not enabled", "id", tx.id, "group", g.Address, "member", m)
			}
		}
		if len(c.rcpts) > 0 {
			out = append(out, c)
		}
	}
	return out
}

// groupSuspicion says why a group's copy is suspect, the checks' verdict that sends a mailbox's
// copy into Junk (see the package doc, Spam defense): a DMARC quarantine of the message, or a
// DNSBL with action Junk listing the client for the group's domain. "" when it is not.
func (tx *transaction) groupSuspicion(g *config.Group) string {
	switch {
	case tx.quarantine != "":
		return "dmarc p=quarantine of " + tx.quarantine
	case tx.groupJunk[g.Address] != "":
		return "dnsbl " + tx.groupJunk[g.Address]
	}
	return ""
}

// deleter takes a queued message back; *queue.Queue has it.
type deleter interface{ Delete(id string) error }

// deliverGroups delivers a transaction with group recipients: refused whole when the message
// already went through one of its groups (X-Loop); else each group's copy is queued with the
// group's bounce address as envelope sender and an X-Loop field naming the group, then the
// direct recipients get theirs as without groups. If a later step fails, the copies already
// queued are taken back, so the client's retry duplicates nothing (see the package doc).
func (s *session) deliverGroups(tx *transaction, prefix []byte, src io.Reader) (queued []string, err error) {
	marks, src := loopMarks(src)
	for _, g := range tx.groups {
		if marks[g.Address] {
			_, _ = io.Copy(io.Discard, src) // the reply follows the whole message
			return nil, fmt.Errorf("%w: X-Loop %s", errGroupLoopMark, g.Address)
		}
	}
	copies := s.groupCopies(tx)
	direct := len(tx.mailboxes) > 0 || len(tx.remote) > 0
	open := func() io.Reader { return src }
	if len(copies) > 1 || len(copies) == 1 && direct {
		sp, err := readSpool(src, s.b.opts.SpoolDir, &s.b.spoolMem)
		defer sp.close()
		if err != nil {
			return nil, err
		}
		open = sp.reader
	}
	rollback := func() {
		d, ok := s.b.opts.Queue.(deleter)
		for _, id := range queued {
			if ok {
				if err := d.Delete(id); err != nil {
					s.log.Warn("Failed to take back a group copy", "id", tx.id, "queued", id, "err", err)
				}
			}
		}
	}
	for _, c := range copies {
		loopField := "X-Loop: " + c.group.Address + "\r\n"
		id, err := s.b.opts.Queue.Enqueue(s.ctx, c.group.BounceAddress(), c.rcpts, append(bytes.Clone(prefix), loopField...), open())
		if err != nil {
			rollback()
			return nil, err
		}
		queued = append(queued, id)
	}
	switch {
	case len(tx.remote) > 0:
		rcpts := append(append([]string(nil), tx.mailboxes...), tx.remote...)
		_, err = s.b.opts.Queue.Enqueue(s.ctx, tx.from, rcpts, prefix, open())
	case len(tx.mailboxes) > 0:
		err = s.deliverLocal(tx, prefix, open())
	case len(copies) == 0:
		_, err = io.Copy(io.Discard, src) // every member was reached otherwise (or left out)
	}
	if err != nil {
		rollback()
		return nil, err
	}
	return queued, nil
}

var errGroupLoopMark = errors.New("message already went through the group")

// loopMarks reads the message's header (at most maxHeaderScan bytes) for X-Loop fields and
// returns their values, lower case without angle brackets, and a reader of the whole message.
func loopMarks(body io.Reader) (map[string]bool, io.Reader) {
	br := bufio.NewReaderSize(body, 4096)
	var hdr []byte
	marks := map[string]bool{}
	atLineStart := true
	for len(hdr) < maxHeaderScan {
		line, err := br.ReadSlice('\n')
		hdr = append(hdr, line...)
		if atLineStart && len(line) > 0 {
			if bytes.Equal(line, []byte("\r\n")) {
				break
			}
			if fieldName(line) == "x-loop" {
				v := strings.TrimSpace(string(line[bytes.IndexByte(line, ':')+1:]))
				marks[strings.ToLower(strings.Trim(v, "<>"))] = true
			}
		}
		atLineStart = err == nil
		if err != nil && err != bufio.ErrBufferFull {
			break // a read error is the body reader's to report
		}
	}
	return marks, io.MultiReader(bytes.NewReader(hdr), br)
}

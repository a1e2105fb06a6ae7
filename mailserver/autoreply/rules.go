package autoreply

import (
	"bufio"
	"bytes"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/kubemail/kubemail/mailserver/config"
	"github.com/kubemail/kubemail/mailserver/metrics"
)

// Reasons a reply is not sent (the metric's result is "suppressed_" and the reason).
const (
	reasonOutsideWindow  = "outside_window"
	reasonNullSender     = "null_sender"
	reasonSystemSender   = "system_sender"
	reasonOwnAddress     = "own_address"
	reasonAutoSubmitted  = "auto_submitted"
	reasonList           = "list"
	reasonPrecedence     = "precedence"
	reasonNotAddressed   = "not_addressed"
	reasonAlreadyReplied = "already_replied"
	reasonBusy           = "busy"
)

// Reasons lists every reason, for the metric's series.
var Reasons = []string{reasonOutsideWindow, reasonNullSender, reasonSystemSender, reasonOwnAddress,
	reasonAutoSubmitted, reasonList, reasonPrecedence, reasonNotAddressed, reasonAlreadyReplied, reasonBusy}

// parseHeader reads the fields of a header, tolerating what it can: a malformed line ends it
// with the fields read so far.
func parseHeader(raw []byte) textproto.MIMEHeader {
	if !bytes.HasSuffix(raw, []byte("\n\n")) && !bytes.HasSuffix(raw, []byte("\r\n\r\n")) {
		raw = append(bytes.TrimRight(raw, "\r\n"), "\r\n\r\n"...)
	}
	h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(raw))).ReadMIMEHeader()
	if h == nil {
		h = textproto.MIMEHeader{}
	}
	return h
}

// suppress returns why mb must not answer this message, or "" when it may (the rate limit is
// checked later, with the memory).
func suppress(dir *config.Directory, mb *config.Mailbox, from string, h textproto.MIMEHeader, now time.Time) string {
	switch {
	case !mb.AutoReply.Active(now):
		return reasonOutsideWindow
	case from == "":
		// RFC 3834 2: never answer the null sender (bounces, other automatic replies).
		return reasonNullSender
	case systemSender(from):
		return reasonSystemSender
	case ownedBy(dir, mb, from):
		// RFC 5230 4.5: never answer the user's own mail.
		return reasonOwnAddress
	case autoSubmitted(h):
		return reasonAutoSubmitted
	case h.Get("List-Id") != "" || h.Get("List-Unsubscribe") != "" || h.Get("List-Post") != "":
		return reasonList
	case precedence(h):
		return reasonPrecedence
	case !addressed(dir, mb, h):
		return reasonNotAddressed
	}
	return ""
}

// systemSender reports the senders that are programs, not people: replies to them go nowhere
// useful or start loops (RFC 3834 2; RFC 5230 4.5 names owner-*, *-request, MAILER-DAEMON).
func systemSender(from string) bool {
	local, _, ok := config.SplitAddress(from)
	if !ok {
		return true
	}
	local = strings.Trim(local, `"`)
	if systemLocal(local) {
		return true
	}
	// VERP and plus-addresses: "list-bounces+alice=example.test", "team+bounces".
	base, tag, tagged := strings.Cut(local, "+")
	return tagged && (systemLocal(base) || tag == "bounces")
}

func systemLocal(local string) bool {
	switch local {
	case "mailer-daemon", "postmaster", "listserv", "majordomo", "mailman", "nobody", "bounce", "bounces":
		return true
	}
	for _, p := range []string{"owner-", "noreply", "no-reply", "no_reply", "donotreply", "do-not-reply", "do_not_reply"} {
		if strings.HasPrefix(local, p) {
			return true
		}
	}
	for _, s := range []string{"-request", "-bounces", "-bounce", "-owner"} {
		if strings.HasSuffix(local, s) {
			return true
		}
	}
	return false
}

// ownedBy reports whether addr reaches mb (its address, an alias or a plus-address).
func ownedBy(dir *config.Directory, mb *config.Mailbox, addr string) bool {
	other := dir.Lookup(addr)
	return other != nil && other.Address == mb.Address
}

// autoSubmitted: RFC 3834 5: any Auto-Submitted value but "no" marks automatic mail. Microsoft's
// X-Auto-Response-Suppress asks the same of out-of-office replies.
func autoSubmitted(h textproto.MIMEHeader) bool {
	for _, v := range h.Values("Auto-Submitted") {
		if token(v) != "no" {
			return true
		}
	}
	for _, v := range h.Values("X-Auto-Response-Suppress") {
		for _, f := range strings.Split(v, ",") {
			if f := strings.ToLower(strings.TrimSpace(f)); f == "oof" || f == "all" {
				return true
			}
		}
	}
	return false
}

func precedence(h textproto.MIMEHeader) bool {
	for _, v := range h.Values("Precedence") {
		switch token(v) {
		case "bulk", "list", "junk":
			return true
		}
	}
	return false
}

// token is a field's first word in lower case, without parameters or comments.
func token(v string) string {
	if i := strings.IndexAny(v, ";("); i >= 0 {
		v = v[:i]
	}
	return strings.ToLower(strings.TrimSpace(v))
}

// addressed reports whether an address of mb is in To or Cc (RFC 3834 2, RFC 5230 4.5).
func addressed(dir *config.Directory, mb *config.Mailbox, h textproto.MIMEHeader) bool {
	for _, field := range []string{"To", "Cc"} {
		for _, v := range h.Values(field) {
			for _, addr := range addresses(v) {
				if ownedBy(dir, mb, addr) {
					return true
				}
			}
		}
	}
	return false
}

// addresses parses an address list; when it does not parse, every word with an '@' in it
// counts, so an odd To: field does not hide the mailbox's address.
func addresses(v string) []string {
	dec := mail.AddressParser{WordDecoder: nil}
	if list, err := dec.ParseList(v); err == nil {
		out := make([]string, len(list))
		for i, a := range list {
			out[i] = a.Address
		}
		return out
	}
	var out []string
	for _, w := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(" \t,;<>\"'()", r) }) {
		if strings.Contains(w, "@") {
			out = append(out, w)
		}
	}
	return out
}

func init() {
	// Every series exists from the start at 0, so rate() and alerts see them.
	for _, reason := range Reasons {
		metrics.AutoReplies.WithLabelValues("suppressed_" + reason)
	}
}

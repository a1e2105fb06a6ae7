package store

import (
	"slices"
	"strings"
)

// IMAP system flags kept as Maildir flag letters (RFC 9051 2.3.2). \Recent is not kept: IMAP4rev2
// dropped it.
var systemFlags = []struct {
	name   string
	letter byte
}{
	{`\Answered`, FlagAnswered},
	{`\Deleted`, FlagDeleted},
	{`\Draft`, FlagDraft},
	{`\Flagged`, FlagFlagged},
	{`\Seen`, FlagSeen},
}

// SystemFlags lists the IMAP system flags the store keeps, for FLAGS and PERMANENTFLAGS.
func SystemFlags() []string {
	out := make([]string, len(systemFlags))
	for i, f := range systemFlags {
		out[i] = f.name
	}
	return out
}

// letterOf returns the Maildir letter of an IMAP system flag (any case), or 0 for a keyword.
func letterOf(flag string) byte {
	for _, f := range systemFlags {
		if strings.EqualFold(f.name, flag) {
			return f.letter
		}
	}
	return 0
}

// validKeyword reports whether kw can be kept as a keyword: an IMAP atom without "\" (RFC 9051
// 9, flag-keyword), and no character the index format uses as a separator.
func validKeyword(kw string) bool {
	if kw == "" || len(kw) > 200 {
		return false
	}
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// splitFlags sorts IMAP flags into Maildir letters and keywords; unknown system flags (such as
// \Recent) are dropped.
func splitFlags(flags []string) (letters string, keywords []string) {
	var b []byte
	for _, fl := range flags {
		if l := letterOf(fl); l != 0 {
			b = append(b, l)
		} else if !strings.HasPrefix(fl, `\`) && validKeyword(fl) && !containsFold(keywords, fl) {
			keywords = append(keywords, fl)
		}
	}
	return normFlags(string(b)), keywords
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(e string) bool { return strings.EqualFold(e, s) })
}

// Flags returns the message's IMAP flags: system flags from its file name, then its keywords.
func (m *Message) Flags() []string {
	out := make([]string, 0, len(m.Letters)+len(m.Keywords))
	for _, f := range systemFlags {
		if strings.IndexByte(m.Letters, f.letter) >= 0 {
			out = append(out, f.name)
		}
	}
	return append(out, m.Keywords...)
}

// Has reports whether the message has the IMAP flag (system flag or keyword, any case).
func (m *Message) Has(flag string) bool {
	if l := letterOf(flag); l != 0 {
		return strings.IndexByte(m.Letters, l) >= 0
	}
	return containsFold(m.Keywords, flag)
}

// FlagOp is how StoreFlags changes flags (RFC 9051 6.4.6).
type FlagOp int

const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// applyFlags returns the letters and keywords of a message after op with flags.
func applyFlags(letters string, keywords []string, op FlagOp, flags []string) (string, []string) {
	l, kws := splitFlags(flags)
	switch op {
	case FlagsSet:
		return l, kws
	case FlagsAdd:
		out := slices.Clone(keywords)
		for _, k := range kws {
			if !containsFold(out, k) {
				out = append(out, k)
			}
		}
		return normFlags(letters + l), out
	default:
		var b []byte
		for i := 0; i < len(letters); i++ {
			if strings.IndexByte(l, letters[i]) < 0 {
				b = append(b, letters[i])
			}
		}
		var out []string
		for _, k := range keywords {
			if !containsFold(kws, k) {
				out = append(out, k)
			}
		}
		return string(b), out
	}
}

package mtasts

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Mode is what a policy asks of a sender (RFC 8461 5).
type Mode string

const (
	Enforce Mode = "enforce" // deliver only to matching MX hosts over verified TLS
	Testing Mode = "testing" // deliver as usual; report what enforce would have refused
	None    Mode = "none"    // the domain withdrew its policy
)

// MaxMaxAge is the largest max_age a policy may give, one year (RFC 8461 3.2); larger values
// are cut down to it.
const MaxMaxAge = 31557600 * time.Second

// MaxPolicySize bounds the policy file (RFC 8461 3.3 suggests a limit; 64 KiB as Postfix's
// resolvers and mox use).
const MaxPolicySize = 64 << 10

// Policy is a parsed policy file with what discovery knew of it.
type Policy struct {
	Mode   Mode
	MX     []string      // patterns: "mx.example.com" or "*.example.com", lower case, no trailing dot
	MaxAge time.Duration // how long the policy may be cached, at most MaxMaxAge

	ID      string    // the TXT record's id the policy was fetched under
	Fetched time.Time // when it was fetched: it expires at Fetched+MaxAge
}

// Expires is when the cached policy must no longer be used (RFC 8461 3.2, max_age).
func (p *Policy) Expires() time.Time { return p.Fetched.Add(p.MaxAge) }

// Match reports whether host (an MX host name, with or without the trailing dot) matches one of
// the policy's mx patterns (RFC 8461 4.1): exactly, or a "*." pattern matching one leftmost
// label. Names compare case-insensitively.
func (p *Policy) Match(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			label, parent, found := strings.Cut(host, ".")
			if found && label != "" && parent == rest {
				return true
			}
			continue
		}
		if host == pat {
			return true
		}
	}
	return false
}

// Parse reads a policy file (RFC 8461 3.2):
//
//	version: STSv1
//	mode: enforce
//	mx: mail.example.com
//	mx: *.example.net
//	max_age: 86400
//
// Lines end in CRLF or LF; a field is "key:" then optional white space then the value, with
// white space around the line ignored. Field names are case-sensitive. version, mode and max_age
// must each appear once; mx at least once unless the mode is none; unknown fields are ignored
// (extensions). An mx pattern may have a wildcard only as its whole leftmost label. A max_age
// over a year is cut to MaxMaxAge. Anything else makes the whole file invalid: the caller treats
// the domain as having no policy.
func Parse(body []byte) (*Policy, error) {
	if len(body) > MaxPolicySize {
		return nil, fmt.Errorf("policy larger than %d bytes", MaxPolicySize)
	}
	p := &Policy{}
	seen := map[string]bool{}
	var version string
	for i, line := range bytes.Split(body, []byte("\n")) {
		text := strings.Trim(string(bytes.TrimSuffix(line, []byte("\r"))), " \t")
		if text == "" {
			continue
		}
		key, value, ok := strings.Cut(text, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: no \"key: value\": %q", i+1, truncate(text))
		}
		value = strings.Trim(value, " \t")
		if key != "mx" && seen[key] && isKnownField(key) {
			return nil, fmt.Errorf("line %d: field %q given twice", i+1, key)
		}
		seen[key] = true
		switch key {
		case "version":
			version = value
		case "mode":
			switch m := Mode(value); m {
			case Enforce, Testing, None:
				p.Mode = m
			default:
				return nil, fmt.Errorf("line %d: unknown mode %q", i+1, truncate(value))
			}
		case "max_age":
			// max-age-value = 1*10(DIGIT)
			if len(value) == 0 || len(value) > 10 || strings.Trim(value, "0123456789") != "" {
				return nil, fmt.Errorf("line %d: bad max_age %q", i+1, truncate(value))
			}
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("line %d: bad max_age %q: %w", i+1, value, err)
			}
			p.MaxAge = time.Duration(min(n, int64(MaxMaxAge/time.Second))) * time.Second
		case "mx":
			pat := strings.ToLower(strings.TrimSuffix(value, "."))
			if err := checkPattern(pat); err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
			p.MX = append(p.MX, pat)
		default:
			// RFC 8461 3.2: unknown fields are extensions, ignored.
		}
	}
	switch {
	case version != "STSv1":
		return nil, fmt.Errorf("version is %q, want STSv1", truncate(version))
	case p.Mode == "":
		return nil, errors.New("no mode")
	case !seen["max_age"]:
		return nil, errors.New("no max_age")
	case len(p.MX) == 0 && p.Mode != None:
		return nil, errors.New("no mx")
	}
	return p, nil
}

func isKnownField(key string) bool {
	return key == "version" || key == "mode" || key == "max_age"
}

// checkPattern accepts a host name, or "*." and a host name (RFC 8461 3.2, sts-policy-mx-value).
func checkPattern(pat string) error {
	name := strings.TrimPrefix(pat, "*.")
	if !isHostname(name) || !strings.Contains(name, ".") && name != pat {
		return fmt.Errorf("bad mx pattern %q", truncate(pat))
	}
	return nil
}

// isHostname reports whether s is a domain name in A-labels: LDH labels of 1 to 63 octets
// separated by dots, 253 octets at most.
func isHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// ParseRecord reads the TXT records of _mta-sts.<domain> (RFC 8461 3.1) and returns the policy
// id. Records that do not begin with "v=STSv1" are discarded; unless exactly one is left and it
// is valid ("v=STSv1; id=<1 to 32 letters and digits>", extensions allowed), the domain has no
// available policy (ErrNoRecord).
func ParseRecord(txts []string) (string, error) {
	var recs []string
	for _, t := range txts {
		if strings.HasPrefix(t, "v=STSv1") {
			recs = append(recs, t)
		}
	}
	switch len(recs) {
	case 0:
		return "", ErrNoRecord
	case 1:
	default:
		return "", fmt.Errorf("%w: %d STSv1 records", ErrNoRecord, len(recs))
	}
	fields := strings.Split(recs[0], ";")
	if strings.TrimRight(fields[0], " \t") != "v=STSv1" {
		return "", fmt.Errorf("%w: bad record %q", ErrNoRecord, truncate(recs[0]))
	}
	var id string
	for i, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" && i == len(fields)-2 {
			break // a trailing separator
		}
		key, value, ok := strings.Cut(f, "=")
		if !ok || key == "" {
			return "", fmt.Errorf("%w: bad field %q", ErrNoRecord, truncate(f))
		}
		if key == "id" {
			if id != "" || !isID(value) {
				return "", fmt.Errorf("%w: bad id %q", ErrNoRecord, truncate(value))
			}
			id = value
		}
	}
	if id == "" {
		return "", fmt.Errorf("%w: no id in %q", ErrNoRecord, truncate(recs[0]))
	}
	return id, nil
}

// ErrNoRecord says a domain publishes no usable MTA-STS TXT record.
var ErrNoRecord = errors.New("no MTA-STS record")

// isID checks sts-id = 1*32(ALPHA / DIGIT).
func isID(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

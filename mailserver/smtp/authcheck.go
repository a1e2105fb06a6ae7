package smtp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kubemail/kubemail/mailserver/config"
)

// startChecks begins the sender checks of an MX transaction at MAIL: SPF runs while the client
// sends its recipients and data. Clients in a trusted network are our own (in-cluster
// applications) and are not checked, as Postfix's mynetworks are not.
func (s *session) startChecks(tx *transaction) error {
	v := s.b.opts.Verifier
	if v == nil || s.b.role != roleMX {
		return nil
	}
	ip := clientIP(s.remote)
	if !ip.IsValid() || tx.dir.Trusted(ip) {
		return nil
	}
	tx.spf = v.StartSPF(s.ctx, ip, tx.helo, tx.from)
	if s.iprev == nil {
		// The client's address is the same for the whole connection: one check serves every
		// transaction on it.
		s.iprev = v.StartIPRev(s.ctx, ip)
	}
	tx.iprev = s.iprev
	return nil
}

// authenticate receives the whole message into a spool, then verifies it (the SPF check
// started at MAIL, DKIM, DMARC). It returns the spool to deliver from and the
// Authentication-Results field to prepend, or errDMARCReject when the message is refused. An
// error reading the body leaves the reason in the bodyReader, as for a streamed delivery.
func (s *session) authenticate(tx *transaction, body io.Reader) (*spool, []byte, error) {
	sp, err := readSpool(body, s.b.opts.SpoolDir, &s.b.spoolMem)
	if err != nil {
		return sp, nil, err
	}
	res, err := s.b.opts.Verifier.Verify(s.ctx, tx.spf, tx.iprev, sp.reader())
	if err != nil {
		return sp, nil, fmt.Errorf("checking the message: %w", err)
	}
	var sum strings.Builder
	fmt.Fprintf(&sum, "spf=%s", res.SPF.Result)
	for _, d := range res.DKIM {
		fmt.Fprintf(&sum, " dkim=%s(%s)", d.Value, d.Domain)
	}
	for _, d := range res.DMARC {
		fmt.Fprintf(&sum, " dmarc=%s(%s)", d.Value, d.From)
	}
	if c := res.IPRev; c != nil {
		fmt.Fprintf(&sum, " iprev=%s", c.Result)
		if c.Name != "" {
			fmt.Fprintf(&sum, "(%s)", c.Name)
		}
	}
	tx.authResults = sum.String()
	if res.Quarantine {
		// RFC 7489 6.3: p=quarantine asks receivers to treat failing mail as suspicious; it
		// goes into every recipient's Junk folder.
		tx.quarantine = res.QuarantineDomain
	}
	if res.Reject && dmarcRejectEnforced(tx) {
		s.logRejected("Rejected message", tx, tx.from, "", errDMARCReject,
			"DMARC policy reject of "+res.RejectDomain+": "+tx.authResults)
		return sp, nil, errDMARCReject
	}
	if mem, n := s.b.opts.Verifier.RemoveOwnResults(sp.mem); n > 0 {
		s.log.Info("Removed forged Authentication-Results fields", "id", tx.id, "count", n)
		sp.mem = mem
	}
	return sp, res.Header, nil
}

// dmarcRejectEnforced reports whether every recipient domain enforces DMARC p=reject: the reply
// is one for the whole transaction, and a domain that chose to accept such mail must get it.
func dmarcRejectEnforced(tx *transaction) bool {
	for _, mb := range tx.mailboxes {
		_, domain, _ := config.SplitAddress(mb)
		if d := tx.dir.Domain(domain); d != nil && d.IgnoreDMARCReject {
			return false
		}
	}
	return true
}

// spoolMemory is how much of a message being checked is held in memory, and spoolMemoryTotal
// how much all the messages being checked at once may hold: past it a message is spooled to a
// file from its first byte, so many slow clients cannot exhaust the memory.
const (
	spoolMemory      = 1 << 20
	spoolMemoryTotal = 64 << 20
)

// spool is a message received in full: its first MiB in memory, the rest in an unlinked
// temporary file (nothing is left behind by a crash).
type spool struct {
	buf      *bytes.Buffer // holds mem; back to spoolBuffers on close
	mem      []byte
	f        *os.File
	fsize    int64
	inUse    *atomic.Int64
	reserved int64
}

// spoolBuffers keeps the in-memory parts of spools for the next messages: growing a fresh
// buffer for every message was the largest share of the MX's allocations.
var spoolBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func readSpool(r io.Reader, dir string, inUse *atomic.Int64) (*spool, error) {
	sp := &spool{inUse: inUse}
	if inUse.Add(spoolMemory) <= spoolMemoryTotal {
		sp.reserved = spoolMemory
	} else {
		inUse.Add(-spoolMemory)
	}
	b := spoolBuffers.Get().(*bytes.Buffer)
	b.Reset()
	sp.buf = b
	_, err := io.CopyN(b, r, sp.reserved)
	sp.mem = b.Bytes()
	if err == io.EOF {
		return sp, nil
	}
	if err != nil {
		return sp, err
	}
	f, err := os.CreateTemp(dir, "kubemail-spool-*")
	if errors.Is(err, fs.ErrNotExist) && dir != "" {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			f, err = os.CreateTemp(dir, "kubemail-spool-*")
		}
	}
	if err != nil {
		return sp, fmt.Errorf("creating a spool file: %w", err)
	}
	os.Remove(f.Name())
	sp.f = f
	sp.fsize, err = io.Copy(f, r)
	return sp, err
}

// reader reads the message from its start; each call gives a new reader.
func (sp *spool) reader() io.Reader {
	if sp.f == nil {
		return bytes.NewReader(sp.mem)
	}
	return io.MultiReader(bytes.NewReader(sp.mem), io.NewSectionReader(sp.f, 0, sp.fsize))
}

// close frees the spool (after the delivery that reads it).
func (sp *spool) close() {
	if sp == nil {
		return
	}
	if sp.f != nil {
		sp.f.Close()
	}
	sp.inUse.Add(-sp.reserved)
	if sp.buf != nil && sp.buf.Cap() <= 2*spoolMemory {
		spoolBuffers.Put(sp.buf)
	}
	sp.reserved, sp.mem, sp.buf = 0, nil, nil
}

package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// envelope is the header at the start of msg/<id>: what the message's initial record holds.
// The size is not in it (the header is written before the body is read): it is the file's
// length less the header's.
type envelope struct {
	ID      string    `json:"id"`
	From    string    `json:"from"`
	Arrival time.Time `json:"arrival"`
	Rcpts   []string  `json:"rcpts"`
	// DKIM is the DKIM-Signature field made at enqueue (Options.Signer), CRLF-terminated.
	DKIM string `json:"dkim,omitempty"`
}

const (
	envelopeMagic   = "kubemail-queue"
	envelopeVersion = 1
	maxEnvelope     = 16 << 20 // bytes of JSON; 1000 recipients take about 50 KiB
	maxHeaderLine   = 64
)

// errBadEnvelope marks a message file whose header does not parse.
var errBadEnvelope = errors.New("damaged envelope header")

// encode returns the header: the line "kubemail-queue 1 <len>\n", then <len> bytes of JSON
// ending in a newline.
func (e *envelope) encode() ([]byte, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	data = append(data, '\n')
	hdr := fmt.Appendf(nil, "%s %d %d\n", envelopeMagic, envelopeVersion, len(data))
	return append(hdr, data...), nil
}

// record is the initial record of the message the envelope heads, size bytes long.
func (e *envelope) record(size int64) *Record {
	rec := &Record{Version: recordVersion, ID: e.ID, From: e.From, Arrival: e.Arrival, Size: size, NextAttempt: e.Arrival, DKIM: e.DKIM}
	for _, r := range e.Rcpts {
		rec.Rcpts = append(rec.Rcpts, Rcpt{Addr: r, State: Pending})
	}
	return rec
}

// readEnvelope reads the header of a message file of fileSize bytes and returns where the
// message starts; when env is not nil, it also parses the JSON into it.
func readEnvelope(f io.ReaderAt, fileSize int64, env *envelope) (int64, error) {
	var line [maxHeaderLine]byte
	n, err := f.ReadAt(line[:], 0)
	if n == 0 && err != nil {
		return 0, fmt.Errorf("%w: %w", errBadEnvelope, err)
	}
	nl := bytes.IndexByte(line[:n], '\n')
	if nl < 0 {
		return 0, fmt.Errorf("%w: no header line", errBadEnvelope)
	}
	fields := strings.Fields(string(line[:nl]))
	if len(fields) != 3 || fields[0] != envelopeMagic || fields[1] != strconv.Itoa(envelopeVersion) {
		return 0, fmt.Errorf("%w: header line %q", errBadEnvelope, line[:nl])
	}
	length, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil || length <= 0 || length > maxEnvelope {
		return 0, fmt.Errorf("%w: header length %q", errBadEnvelope, fields[2])
	}
	off := int64(nl) + 1 + length
	if off > fileSize {
		return 0, fmt.Errorf("%w: header of %d bytes in a file of %d", errBadEnvelope, off, fileSize)
	}
	if env == nil {
		return off, nil
	}
	data := make([]byte, length)
	if _, err := f.ReadAt(data, int64(nl)+1); err != nil {
		return 0, fmt.Errorf("%w: %w", errBadEnvelope, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(env); err != nil {
		return 0, fmt.Errorf("%w: %w", errBadEnvelope, err)
	}
	if rest := bytes.TrimSpace(data[dec.InputOffset():]); len(rest) > 0 {
		return 0, fmt.Errorf("%w: %d bytes after the JSON", errBadEnvelope, len(rest))
	}
	return off, nil
}

// messageFile is the message of msg/<id>, without the envelope header.
type messageFile struct {
	*io.SectionReader
	f *os.File
}

func (m *messageFile) Close() error { return m.f.Close() }

// openMessage opens msg/<id> for reading the message after its envelope header.
func (s spool) openMessage(id string) (*messageFile, error) {
	// open(2) and os.NewFile rather than os.Open, which tries the file with the network poller
	// (four fcntl(2) and a failing epoll_ctl(2) for a regular file): the message is opened at
	// every attempt, and is read with pread(2) anyway.
	fd, err := syscall.Open(s.msgPath(id), syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: s.msgPath(id), Err: err}
	}
	f := os.NewFile(uintptr(fd), s.msgPath(id))
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	off, err := readEnvelope(f, fi.Size(), nil)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("queue: %s: %w", id, err)
	}
	return &messageFile{SectionReader: io.NewSectionReader(f, off, fi.Size()-off), f: f}, nil
}

// loadEnvelope reads the envelope header of msg/<id> and returns the message's initial record.
func (s spool) loadEnvelope(id string) (*Record, error) {
	f, err := os.Open(s.msgPath(id))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	var env envelope
	off, err := readEnvelope(f, fi.Size(), &env)
	if err != nil {
		return nil, err
	}
	rec := env.record(fi.Size() - off)
	if err := rec.validate(id); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadEnvelope, err)
	}
	return rec, nil
}

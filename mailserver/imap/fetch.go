package imap

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/kubemail/kubemail/mailserver/store"
)

// Fetch answers FETCH and UID FETCH (RFC 9051 6.4.5). A non-peek body section sets \Seen (not
// in an EXAMINEd mailbox), and the new FLAGS are then sent with the message.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	ts, err := s.targets(numSet)
	if err != nil {
		return err
	}
	if !s.readOnly && setsSeen(options) {
		if err := s.markSeen(ts); err != nil {
			return err
		}
	}
	needFile := options.Envelope || options.BodyStructure != nil || len(options.BodySection) > 0 ||
		len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	for i := range ts {
		t := &ts[i]
		var file *os.File
		if needFile {
			file, err = s.folder.Open(t.msg.UID)
			if errors.Is(err, store.ErrNoMessage) {
				continue // expunged by another session meanwhile; its EXPUNGE follows
			}
			if err != nil {
				return s.internal("opening message", err)
			}
		}
		err = s.fetchOne(w.CreateMessage(t.seq), t, file, options)
		if file != nil {
			file.Close()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func setsSeen(options *imap.FetchOptions) bool {
	for _, bs := range options.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range options.BinarySection {
		if !bs.Peek {
			return true
		}
	}
	return false
}

// markSeen sets \Seen on the targets that lack it, updating them in place.
func (s *session) markSeen(ts []target) error {
	var unseen []uint32
	byUID := make(map[uint32]*target)
	for i := range ts {
		if !ts[i].msg.Has(`\Seen`) {
			unseen = append(unseen, ts[i].msg.UID)
			byUID[ts[i].msg.UID] = &ts[i]
		}
	}
	if len(unseen) == 0 {
		return nil
	}
	err := s.folder.StoreFlags(unseen, store.FlagsAdd, []string{`\Seen`}, s.st, func(_ uint32, m *store.Message) {
		if t := byUID[m.UID]; t != nil {
			t.msg, t.seen = *m, true
		}
	})
	if err != nil {
		return s.internal("marking seen", err)
	}
	return nil
}

func (s *session) fetchOne(rw *imapserver.FetchResponseWriter, t *target, file *os.File, options *imap.FetchOptions) error {
	m := &t.msg
	if options.UID {
		rw.WriteUID(imap.UID(m.UID))
	}
	if options.Flags || t.seen {
		rw.WriteFlags(toFlags(m.Flags()))
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.Date)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if options.Envelope {
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		h, err := textproto.ReadHeader(bufio.NewReader(file))
		if err != nil {
			h = textproto.Header{} // an unparsable header gives an empty envelope, not an error
		}
		rw.WriteEnvelope(imapserver.ExtractEnvelope(h))
	}
	if options.BodyStructure != nil {
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(file))
	}
	for _, bs := range options.BodySection {
		if err := writeBodySection(rw, file, m.Size, bs); err != nil {
			return err
		}
	}
	for _, bs := range options.BinarySection {
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		buf := imapserver.ExtractBinarySection(file, bs)
		if err := writeLiteral(rw.WriteBinarySection(bs, int64(len(buf))), buf); err != nil {
			return err
		}
	}
	for _, bss := range options.BinarySectionSize {
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(file, bss))
	}
	return rw.Close()
}

func writeLiteral(wc io.WriteCloser, buf []byte) error {
	_, err := wc.Write(buf)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeBodySection writes one BODY[...] item. The whole message, its header and its text are
// streamed from the file byte for byte (so BODY[] is RFC822.SIZE long); parts and header field
// selections are extracted by parsing.
func writeBodySection(rw *imapserver.FetchResponseWriter, file *os.File, size int64, bs *imap.FetchItemBodySection) error {
	if len(bs.Part) > 0 || len(bs.HeaderFields) > 0 || len(bs.HeaderFieldsNot) > 0 || bs.Specifier == imap.PartSpecifierMIME {
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		buf := imapserver.ExtractBodySection(file, bs)
		return writeLiteral(rw.WriteBodySection(bs, int64(len(buf))), buf)
	}
	start, end := int64(0), size
	if bs.Specifier == imap.PartSpecifierHeader || bs.Specifier == imap.PartSpecifierText {
		hdr, err := headerLength(file)
		if err != nil {
			return err
		}
		if bs.Specifier == imap.PartSpecifierHeader {
			end = hdr
		} else {
			start = hdr
		}
	}
	// RFC 9051 6.4.5: <offset.count> takes count octets from offset, fewer at the end.
	if p := bs.Partial; p != nil {
		start = min(start+p.Offset, end)
		end = min(start+p.Size, end)
	}
	wc := rw.WriteBodySection(bs, end-start)
	n, err := io.Copy(wc, io.NewSectionReader(file, start, end-start))
	if err == nil && n != end-start {
		err = fmt.Errorf("message file shrank while being read")
	}
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// headerLength returns the size of the header including the empty line that ends it; all of the
// file if there is none.
func headerLength(file *os.File) (int64, error) {
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	br := bufio.NewReader(file)
	var n int64
	continued := false // the line read is the tail of a long line
	for {
		line, err := br.ReadSlice('\n')
		n += int64(len(line))
		if err == bufio.ErrBufferFull {
			continued = true
			continue
		}
		wasContinued := continued
		continued = false
		if err != nil {
			if err == io.EOF {
				return n, nil
			}
			return 0, err
		}
		if !wasContinued && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return n, nil
		}
	}
}

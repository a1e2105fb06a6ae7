package queue_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A message of several 64 KiB chunks is queued and delivered byte for byte.
func TestLargeMessageQueuedWhole(t *testing.T) {
	w := newWorld(t)
	q := w.open(fast)
	w.run(q)
	prefix, body := testMessage("alice@a.test", "large", "bob@b.test")
	body += strings.Repeat(strings.Repeat("z", 998)+"\r\n", 200) // ~200 KiB
	if _, err := q.Enqueue(context.Background(), "alice@a.test", []string{"bob@b.test"}, []byte(prefix), strings.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	waitEmpty(t, q)
	msgs := w.b.WaitInbox("bob@b.test", 1, 30*time.Second)
	if len(msgs) != 1 || !strings.HasSuffix(msgs[0], prefix+body) {
		t.Fatalf("bob has %d messages, or the large one did not arrive whole", len(msgs))
	}
}

// failingReader hands over some of a message, then fails as a connection lost mid-message
// does (the SMTP reader reports io.ErrUnexpectedEOF, which must not read as a normal end).
type failingReader struct {
	data string
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.data == "" {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

func TestEnqueueOfABrokenStreamQueuesNothing(t *testing.T) {
	for _, cause := range []error{io.ErrUnexpectedEOF, errors.New("message over the size limit")} {
		w := newWorld(t)
		q := w.open(fast)
		prefix, body := testMessage("alice@a.test", "cut", "bob@b.test")
		_, err := q.Enqueue(context.Background(), "alice@a.test", []string{"bob@b.test"}, []byte(prefix),
			&failingReader{data: body + strings.Repeat("x", 100<<10), err: cause})
		if !errors.Is(err, cause) {
			t.Errorf("Enqueue of a stream failing with %v: error %v, want it", cause, err)
		}
		if n := q.Len(); n != 0 {
			t.Errorf("%d messages queued after the stream failed with %v, want none", n, cause)
		}
		if files, _ := os.ReadDir(filepath.Join(w.dir, "msg")); len(files) != 0 {
			t.Errorf("%d files in msg/ after the stream failed with %v", len(files), cause)
		}
	}
}

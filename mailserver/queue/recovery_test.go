package queue_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubemail/kubemail/mailserver/queue"
)

func TestRecoveryAfterACrash(t *testing.T) {
	w := newWorld(t)
	q := w.open(fast) // never run: as if the server died right after the 250s
	var ids []string
	for _, s := range []string{"one", "two", "three", "four"} {
		ids = append(ids, w.enqueue(q, "alice@a.test", s, "bob@b.test"))
	}
	if files, _ := os.ReadDir(filepath.Join(w.dir, "meta")); len(files) != 0 {
		t.Errorf("Enqueue wrote %d records; the message file is the only one", len(files))
	}
	// one and three have only their message file: their envelope header is their record. Two
	// has a torn record. Four has a record from an attempt, which wins over its header. A
	// record whose message file is gone is what a removal cut short leaves.
	if err := os.WriteFile(filepath.Join(w.dir, "meta", ids[1]+".json"), []byte(`{"version":1,"id":"`), 0o600); err != nil {
		t.Fatal(err)
	}
	four := q.List()[3].Record
	four.Attempts, four.NextAttempt = 2, time.Now()
	writeRecord(t, w.dir, four)
	removed := four
	removed.ID = "0000000000000000000AA"
	writeRecord(t, w.dir, removed)

	q2 := w.open(fast)
	var got []string
	for _, info := range q2.List() {
		got = append(got, info.ID)
		if info.From != "alice@a.test" || len(info.Rcpts) != 1 || info.Rcpts[0].Addr != "bob@b.test" || info.Rcpts[0].State != queue.Pending {
			t.Errorf("recovered record: %+v", info)
		}
		subject := map[string]string{ids[0]: "one", ids[2]: "three", ids[3]: "four"}[info.ID]
		prefix, body := testMessage("alice@a.test", subject, "bob@b.test")
		if info.Size != int64(len(prefix)+len(body)) {
			t.Errorf("%s (%s): size %d, want %d", info.ID, subject, info.Size, len(prefix)+len(body))
		}
		if want := map[bool]int{true: 2, false: 0}[info.ID == ids[3]]; info.Attempts != want {
			t.Errorf("%s (%s): %d attempts recovered, want %d", info.ID, subject, info.Attempts, want)
		}
	}
	if want := []string{ids[0], ids[2], ids[3]}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("recovered %v, want %v", got, want)
	}
	for _, name := range []string{ids[1] + ".json", ids[1] + ".msg"} {
		if _, err := os.Stat(filepath.Join(w.dir, "quarantine", name)); err != nil {
			t.Errorf("quarantine/%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(w.dir, "meta", removed.ID+".json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the record of a removed message is still there: %v", err)
	}
	logs := w.logs.String()
	if strings.Count(logs, "Quarantined a damaged queue entry") != 1 || strings.Count(logs, "Removed the record of a message already out of the queue") != 1 {
		t.Errorf("want one quarantine and one stale record log line:\n%s", logs)
	}

	w.run(q2)
	waitEmpty(t, q2)
	msgs := w.b.Inbox("bob@b.test")
	all := strings.Join(msgs, "")
	if len(msgs) != 3 || !strings.Contains(all, "Subject: one") || !strings.Contains(all, "Subject: three") || !strings.Contains(all, "Subject: four") {
		t.Fatalf("bob got %d messages, want one, three and four exactly once", len(msgs))
	}
	for _, dir := range []string{"msg", "meta"} {
		if files, _ := os.ReadDir(filepath.Join(w.dir, dir)); len(files) != 0 {
			t.Errorf("%d files left in %s/", len(files), dir)
		}
	}
}

// A message file whose envelope header is damaged, or missing (the format before it), cannot
// be delivered: it is quarantined, and the others are delivered.
func TestDamagedEnvelopeHeaderIsQuarantined(t *testing.T) {
	w := newWorld(t)
	q := w.open(fast)
	var ids []string
	for _, s := range []string{"one", "two", "three"} {
		ids = append(ids, w.enqueue(q, "alice@a.test", s, "bob@b.test"))
	}
	path := func(id string) string { return filepath.Join(w.dir, "msg", id) }
	data, err := os.ReadFile(path(ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "kubemail-queue 1 ") {
		t.Fatalf("message file starts %q", data[:min(len(data), 40)])
	}
	// A byte of the JSON lost: the header's length now runs into the message.
	nl := strings.IndexByte(string(data), '\n')
	damaged := append(append([]byte{}, data[:nl+5]...), data[nl+6:]...)
	if err := os.WriteFile(path(ids[0]), damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	_, body := testMessage("alice@a.test", "two", "bob@b.test")
	if err := os.WriteFile(path(ids[1]), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}

	q2 := w.open(fast)
	if l := q2.List(); len(l) != 1 || l[0].ID != ids[2] {
		t.Fatalf("recovered %+v, want only %s", l, ids[2])
	}
	for _, id := range ids[:2] {
		if _, err := os.Stat(filepath.Join(w.dir, "quarantine", id+".msg")); err != nil {
			t.Errorf("quarantine/%s.msg: %v", id, err)
		}
	}
	if logs := w.logs.String(); strings.Count(logs, "Quarantined a damaged queue entry") != 2 || !strings.Contains(logs, "damaged envelope header") {
		t.Errorf("want two quarantine log lines naming the envelope header:\n%s", logs)
	}
	w.run(q2)
	waitEmpty(t, q2)
	if msgs := w.b.Inbox("bob@b.test"); len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: three") {
		t.Fatalf("bob got %d messages, want only three", len(msgs))
	}
}

// writeRecord writes rec as meta/<id>.json, as an attempt does.
func writeRecord(t *testing.T, dir string, rec queue.Record) {
	t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "meta", rec.ID+".json"), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

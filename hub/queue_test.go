package hub

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"switchboard/queue"
)

// qreq sends a $SB.Q. request with nats.go and decodes the JSON answer.
func qreq(t *testing.T, nc *nats.Conn, subj string, body any, out any) {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		b, _ = json.Marshal(v)
	}
	m, err := nc.Request(subj, b, 5*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", subj, err)
	}
	if err := json.Unmarshal(m.Data, out); err != nil {
		t.Fatalf("%s: %q: %v", subj, m.Data, err)
	}
}

// TestQueueWithNatsGo drives the whole queue API with nats.go, a client
// that knows nothing of Switchboard: create, publish with acks, dedup,
// fetch, ack, nak and redelivery, info, and errors.
func TestQueueWithNatsGo(t *testing.T) {
	th := startHub(t, Config{DataDir: t.TempDir()})
	tr := th.transports()[0]
	nc := natsConn(t, th, tr)

	var created struct {
		Config struct {
			Name      string   `json:"name"`
			Subjects  []string `json:"subjects"`
			Retention string   `json:"retention"`
		} `json:"config"`
		Error string `json:"error"`
	}
	qreq(t, nc, "$SB.Q.CREATE.jobs", `{"subjects":["jobs.>"],"ack_wait":"200ms"}`, &created)
	if created.Error != "" || created.Config.Retention != "work" || created.Config.Subjects[0] != "jobs.>" {
		t.Fatalf("create: %+v", created)
	}
	var e struct{ Error, Code string }
	qreq(t, nc, "$SB.Q.CREATE.jobs", nil, &e)
	if e.Code != "exists" {
		t.Fatalf("create twice: %+v", e)
	}
	qreq(t, nc, "$SB.Q.CREATE.bad", `{"retention":"forever"}`, &e)
	if e.Code != "bad_config" || !strings.Contains(e.Error, "retention") {
		t.Fatalf("bad config: %+v", e)
	}

	// A plain subscriber sees the messages too.
	plain, _ := nc.SubscribeSync("jobs.>")
	type pubAck struct {
		Queue     string `json:"queue"`
		Seq       uint64 `json:"seq"`
		Duplicate bool   `json:"duplicate"`
		Error     string `json:"error"`
	}
	var seqs []uint64
	for i := range 3 {
		var a pubAck
		qreq(t, nc, fmt.Sprintf("jobs.backup.%d", i), fmt.Sprintf("job %d", i), &a)
		if a.Queue != "jobs" || a.Seq == 0 || a.Duplicate || a.Error != "" {
			t.Fatalf("publish ack %+v", a)
		}
		seqs = append(seqs, a.Seq)
	}
	if _, err := plain.NextMsg(time.Second); err != nil {
		t.Fatal("a plain subscriber did not get the message")
	}
	// Msg-Id deduplicates.
	m := nats.NewMsg("jobs.x")
	m.Header.Set("Msg-Id", "abc")
	m.Data = []byte("once")
	var a1, a2 pubAck
	r, err := nc.RequestMsg(m, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(r.Data, &a1)
	r, err = nc.RequestMsg(m, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(r.Data, &a2)
	if a1.Duplicate || !a2.Duplicate || a1.Seq != a2.Seq {
		t.Fatalf("dedup: %+v then %+v", a1, a2)
	}

	// Fetch 2 of the 4.
	inbox := nats.NewInbox()
	sub, _ := nc.SubscribeSync(inbox)
	nc.PublishRequest("$SB.Q.FETCH.jobs.default", inbox, []byte(`{"batch":2,"expires":"2s"}`))
	var got []*nats.Msg
	for range 2 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, m)
	}
	for i, m := range got {
		if string(m.Data) != fmt.Sprintf("job %d", i) || m.Header.Get("Sb-Seq") != fmt.Sprint(seqs[i]) ||
			m.Header.Get("Sb-Subject") != fmt.Sprintf("jobs.backup.%d", i) || m.Header.Get("Sb-Delivered") != "1" ||
			!strings.HasPrefix(m.Reply, "$SB.Q.ACK.jobs.default.") {
			t.Fatalf("delivery %d: %q %v reply %q", i, m.Data, m.Header, m.Reply)
		}
	}
	// Ack the first with confirmation; nak the second.
	var ok struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	qreq(t, nc, got[0].Reply, "+ACK", &ok)
	if !ok.OK {
		t.Fatalf("ack: %+v", ok)
	}
	qreq(t, nc, got[0].Reply, "+ACK", &e)
	if e.Code != "stale" {
		t.Fatalf("second ack: %+v", e)
	}
	if err := nc.Publish(got[1].Reply, []byte("-NAK")); err != nil {
		t.Fatal(err)
	}
	// The next fetch gets the nak'ed one again (redelivered), then the rest.
	nc.PublishRequest("$SB.Q.FETCH.jobs.default", inbox, []byte(`{"batch":10,"no_wait":true}`))
	var again []*nats.Msg
	for {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get("Status") == "404" {
			break
		}
		again = append(again, m)
	}
	if len(again) != 3 || string(again[0].Data) != "job 1" || again[0].Header.Get("Sb-Delivered") != "2" {
		t.Fatalf("after nak: %d messages, first %q %v", len(again), again[0].Data, again[0].Header)
	}
	var info struct {
		Messages  int64 `json:"messages"`
		Consumers []struct {
			Name     string `json:"name"`
			InFlight int    `json:"in_flight"`
		} `json:"consumers"`
	}
	qreq(t, nc, "$SB.Q.INFO.jobs", nil, &info)
	if info.Messages != 3 || len(info.Consumers) != 1 || info.Consumers[0].InFlight != 3 {
		t.Fatalf("info: %+v", info)
	}
	// Unanswered: redelivered after the ack wait (200ms).
	nc.PublishRequest("$SB.Q.FETCH.jobs.default", inbox, []byte(`{"batch":3,"expires":"5s"}`))
	for i := range 3 {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("redelivery %d: %v", i, err)
		}
		if m.Header.Get("Sb-Delivered") == "1" {
			t.Fatalf("redelivery %d says delivered 1", i)
		}
	}
	qreq(t, nc, "$SB.Q.INFO.nope", nil, &e)
	if e.Code != "not_found" {
		t.Fatalf("info of a missing queue: %+v", e)
	}
	var list struct {
		Queues []json.RawMessage `json:"queues"`
	}
	qreq(t, nc, "$SB.Q.LIST", nil, &list)
	if len(list.Queues) != 1 {
		t.Fatalf("list: %d queues", len(list.Queues))
	}
}

// TestQueuesOff: without a data directory the API answers with an error.
func TestQueuesOff(t *testing.T) {
	th := startHub(t, Config{})
	nc := natsConn(t, th, th.transports()[0])
	var e struct{ Error, Code string }
	qreq(t, nc, "$SB.Q.LIST", nil, &e)
	if !strings.Contains(e.Error, "durable queues are off") {
		t.Fatalf("%+v", e)
	}
}

// TestPubAckJSON: the hand-written publish acknowledgement is what
// json.Marshal writes.
func TestPubAckJSON(t *testing.T) {
	for _, a := range []queue.PubAck{{Queue: "jobs", Seq: 1}, {Queue: "a-b_C9", Seq: 1<<64 - 1, Duplicate: true}} {
		want, _ := json.Marshal(a)
		got := pubAckJSON(nil, a)
		if string(got) != string(want) {
			t.Errorf("%+v: %s, want %s", a, got, want)
		}
	}
}

// TestQueuePushConsumer: a push consumer gets deliveries on its subject,
// at most max_in_flight unacknowledged at a time, shared by a queue group.
func TestQueuePushConsumer(t *testing.T) {
	th := startHub(t, Config{DataDir: t.TempDir()})
	nc := natsConn(t, th, th.transports()[0])
	var e struct{ Error, Code string }
	qreq(t, nc, "$SB.Q.CREATE.mail", `{"consumers":[{"name":"senders","deliver_subject":"mail.send","max_in_flight":2}]}`, &e)
	if e.Error != "" {
		t.Fatal(e)
	}
	w1, _ := nc.QueueSubscribeSync("mail.send", "workers")
	w2, _ := nc.QueueSubscribeSync("mail.send", "workers")
	for i := range 5 {
		var a struct{ Seq uint64 }
		qreq(t, nc, "mail", fmt.Sprint("mail ", i), &a)
	}
	next := func() *nats.Msg {
		for {
			for _, s := range []*nats.Subscription{w1, w2} {
				if m, err := s.NextMsg(10 * time.Millisecond); err == nil {
					return m
				}
			}
		}
	}
	first := []*nats.Msg{next(), next()}
	for _, s := range []*nats.Subscription{w1, w2} {
		if m, err := s.NextMsg(200 * time.Millisecond); err == nil {
			t.Fatalf("a third delivery past max_in_flight 2: %q", m.Data)
		}
	}
	seen := map[string]bool{}
	for _, m := range first {
		seen[string(m.Data)] = true
		m.Respond([]byte("+ACK"))
	}
	for len(seen) < 5 {
		m := next()
		if seen[string(m.Data)] {
			t.Fatalf("%q delivered twice", m.Data)
		}
		seen[string(m.Data)] = true
		m.Respond(nil)
	}
	waitFor(t, "the queue to empty", func() bool {
		var info struct{ Messages int64 }
		qreq(t, nc, "$SB.Q.INFO.mail", nil, &info)
		return info.Messages == 0
	})
}

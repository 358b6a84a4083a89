package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Sender that keeps what it was given, for tests.
type recorder struct {
	mu    sync.Mutex
	msgs  []sent
	cond  *sync.Cond
	flush int
}

type sent struct {
	to     string
	d      Delivery // Header and Data copied
	v      string   // JSON of a Reply
	status int
}

func newRecorder() *recorder {
	r := &recorder{}
	r.cond = sync.NewCond(&r.mu)
	return r
}

func (r *recorder) sender() Sender { return (*recSender)(r) }

type recSender recorder

func (s *recSender) Deliver(to string, d *Delivery) {
	r := (*recorder)(s)
	c := *d
	c.Header = append([]byte(nil), d.Header...)
	c.Data = append([]byte(nil), d.Data...)
	r.add(sent{to: to, d: c})
}

func (s *recSender) Reply(to string, v any) {
	b, _ := json.Marshal(v)
	(*recorder)(s).add(sent{to: to, v: string(b)})
}

func (s *recSender) Status(to string, code int, text string) {
	(*recorder)(s).add(sent{to: to, status: code})
}

func (s *recSender) Flush() {
	r := (*recorder)(s)
	r.mu.Lock()
	r.flush++
	r.mu.Unlock()
}

func (r *recorder) add(m sent) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.cond.Broadcast()
	r.mu.Unlock()
}

// wait returns the first n messages sent to to, waiting up to 10 s.
func (r *recorder) wait(t *testing.T, to string, n int) []sent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	timer := time.AfterFunc(10*time.Second, func() { r.mu.Lock(); r.cond.Broadcast(); r.mu.Unlock() })
	defer timer.Stop()
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var got []sent
		for _, m := range r.msgs {
			if m.to == to {
				got = append(got, m)
			}
		}
		if len(got) >= n {
			return got[:n]
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages to %s, want %d: %+v", len(got), to, n, got)
		}
		r.cond.Wait()
	}
}

func openTest(t *testing.T, dir string, rec *recorder) *Manager {
	t.Helper()
	m, err := Open(Options{Dir: dir, NewSender: rec.sender, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// publishWait stores one message and waits for its ack.
func publishWait(q *Queue, subj, data, msgID string) (PubAck, error) {
	type result struct {
		a   PubAck
		err error
	}
	ch := make(chan result, 1)
	q.Publish(context.Background(), subj, nil, []byte(data), msgID, time.Time{}, func(a PubAck, err error) { ch <- result{a, err} })
	r := <-ch
	return r.a, r.err
}

// publish is publishWait that fails the test on an error.
func publish(t *testing.T, q *Queue, subj, data, msgID string) PubAck {
	t.Helper()
	a, err := publishWait(q, subj, data, msgID)
	if err != nil {
		t.Fatalf("publish %q: %v", data, err)
	}
	return a
}

func TestPublishFetchAckRestart(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder()
	m := openTest(t, dir, rec)
	if _, err := m.Create(Config{Name: "jobs"}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("jobs")
	if m.Bound([]byte("jobs")) != q || m.Bound([]byte("other")) != nil {
		t.Fatal("binding")
	}
	var seqs []uint64
	for i := range 5 {
		a := publish(t, q, "jobs", fmt.Sprint("job ", i), "")
		if a.Queue != "jobs" || a.Duplicate {
			t.Fatalf("ack %+v", a)
		}
		seqs = append(seqs, a.Seq)
	}
	if a := publish(t, q, "jobs", "dup", "id-1"); a.Duplicate {
		t.Fatal("first Msg-Id is not a duplicate")
	} else if b := publish(t, q, "jobs", "dup again", "id-1"); !b.Duplicate || b.Seq != a.Seq {
		t.Fatalf("second Msg-Id: %+v, first %+v", b, a)
	}
	if err := q.Fetch(DefaultConsumer, "inbox.1", 3, time.Second, false); err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, "inbox.1", 3)
	for i, s := range got {
		if s.d.Seq != seqs[i] || string(s.d.Data) != fmt.Sprint("job ", i) || s.d.Count != 1 || s.d.Subject != "jobs" {
			t.Fatalf("delivery %d: %+v", i, s.d)
		}
	}
	// Ack the first two; the third stays in flight across the restart.
	for _, s := range got[:2] {
		done := make(chan error, 1)
		if err := q.Ack(context.Background(), DefaultConsumer, s.d.Seq, s.d.ID, Ack, 0, func(err error) { done <- err }); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Ack(context.Background(), DefaultConsumer, got[0].d.Seq, got[0].d.ID, Ack, 0, nil); !errors.Is(err, ErrStaleDelivery) {
		t.Fatalf("second ack of one delivery: %v", err)
	}
	if inf := q.Info(); inf.Messages != 4 {
		t.Fatalf("after 2 acks: %+v", inf)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	rec2 := newRecorder()
	m2 := openTest(t, dir, rec2)
	defer m2.Close()
	q2 := m2.Get("jobs")
	if q2 == nil {
		t.Fatal("queue not reopened")
	}
	if inf := q2.Info(); inf.Messages != 4 {
		t.Fatalf("after restart: %+v", inf)
	}
	if b := publish(t, q2, "jobs", "dup after restart", "id-1"); !b.Duplicate {
		t.Fatal("Msg-Id forgotten across the restart")
	}
	if err := q2.Fetch(DefaultConsumer, "inbox.2", 10, 200*time.Millisecond, false); err != nil {
		t.Fatal(err)
	}
	got = rec2.wait(t, "inbox.2", 5) // 4 messages, then the 408
	want := []string{"job 2", "job 3", "job 4", "dup"}
	for i, w := range want {
		if string(got[i].d.Data) != w {
			t.Fatalf("after restart, delivery %d: %q, want %q", i, got[i].d.Data, w)
		}
	}
	if got[4].status != 408 {
		t.Fatalf("end of fetch: %+v", got[4])
	}
}

func TestRedeliveryAndDeadLetter(t *testing.T) {
	rec := newRecorder()
	m := openTest(t, t.TempDir(), rec)
	defer m.Close()
	if _, err := m.Create(Config{Name: "dead"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(Config{Name: "work", AckWait: Duration(50 * time.Millisecond), MaxDeliver: 3, DeadLetter: "dead"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(Config{Name: "x", DeadLetter: "nope"}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("dead letter to a missing queue: %v", err)
	}
	if err := m.Delete("dead"); err == nil || !strings.Contains(err.Error(), "dead-letter queue of work") {
		t.Fatalf("deleting a dead-letter queue: %v", err)
	}
	q := m.Get("work")
	publish(t, q, "work", "poison", "")
	for i := 1; i <= 3; i++ {
		to := fmt.Sprint("inbox.", i)
		if err := q.Fetch(DefaultConsumer, to, 1, 5*time.Second, false); err != nil {
			t.Fatal(err)
		}
		d := rec.wait(t, to, 1)[0].d
		if d.Count != uint32(i) {
			t.Fatalf("delivery %d has count %d", i, d.Count)
		}
		// Never acked: the ack wait runs out.
	}
	dq := m.Get("dead")
	deadline := time.Now().Add(10 * time.Second)
	for dq.Info().Messages != 1 || q.Info().Messages != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("dead letter: work %+v, dead %+v", q.Info(), dq.Info())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := dq.Fetch(DefaultConsumer, "inbox.dead", 1, time.Second, false); err != nil {
		t.Fatal(err)
	}
	d := rec.wait(t, "inbox.dead", 1)[0].d
	if string(d.Data) != "poison" || !strings.Contains(string(d.Header), "Sb-Dead-Reason: max deliveries (3) reached") || !strings.Contains(string(d.Header), "Sb-Dead-Queue: work") {
		t.Fatalf("dead letter %q %q", d.Header, d.Data)
	}
}

func TestNakTermProgress(t *testing.T) {
	rec := newRecorder()
	m := openTest(t, t.TempDir(), rec)
	defer m.Close()
	if _, err := m.Create(Config{Name: "q", AckWait: Duration(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	publish(t, q, "q", "a", "")
	q.Fetch(DefaultConsumer, "i1", 1, time.Second, false)
	d := rec.wait(t, "i1", 1)[0].d
	if err := q.Ack(context.Background(), DefaultConsumer, d.Seq, d.ID, Nak, 0, nil); err != nil {
		t.Fatal(err)
	}
	q.Fetch(DefaultConsumer, "i2", 1, time.Second, false)
	d2 := rec.wait(t, "i2", 1)[0].d
	if d2.Seq != d.Seq || d2.Count != 2 || d2.ID == d.ID {
		t.Fatalf("after nak: %+v (first %+v)", d2, d)
	}
	if err := q.Ack(context.Background(), DefaultConsumer, d.Seq, d.ID, Ack, 0, nil); !errors.Is(err, ErrStaleDelivery) {
		t.Fatalf("late ack of the first delivery: %v", err)
	}
	if err := q.Ack(context.Background(), DefaultConsumer, d2.Seq, d2.ID, InProgress, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(context.Background(), DefaultConsumer, d2.Seq, d2.ID, Term, 0, nil); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for q.Info().Messages != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("terminated message still held: %+v", q.Info())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Nak with a delay, and a delayed publish.
	publish(t, q, "q", "b", "")
	q.Fetch(DefaultConsumer, "i3", 1, time.Second, false)
	d3 := rec.wait(t, "i3", 1)[0].d
	start := time.Now()
	q.Ack(context.Background(), DefaultConsumer, d3.Seq, d3.ID, Nak, 100*time.Millisecond, nil)
	q.Fetch(DefaultConsumer, "i4", 1, 5*time.Second, false)
	rec.wait(t, "i4", 1)
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("nak with a 100ms delay redelivered after %v", el)
	}
}

func TestBadConfigs(t *testing.T) {
	for _, c := range []Config{
		{Name: ""}, {Name: "a.b"}, {Name: "x", Subjects: []string{"a..b"}}, {Name: "x", Subjects: []string{"$SB.Q.x"}},
		{Name: "x", Subjects: []string{"a.*", "a.b"}}, {Name: "x", Retention: "forever"}, {Name: "x", MaxMsgSize: MaxMaxMsgSize + 1},
		{Name: "x", AckWait: Duration(time.Microsecond)}, {Name: "x", Sync: "sometimes"}, {Name: "x", MaxDeliver: -1},
		{Name: "x", Consumers: []ConsumerConfig{{Name: "c"}, {Name: "c"}}},
		{Name: "x", Consumers: []ConsumerConfig{{Name: "p", DeliverSubject: "a.*"}}},
	} {
		if _, err := c.withDefaults(); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: %v, want ErrBadConfig", c, err)
		}
	}
}

func TestSubjectsDoNotOverlap(t *testing.T) {
	m := openTest(t, t.TempDir(), newRecorder())
	defer m.Close()
	if _, err := m.Create(Config{Name: "a", Subjects: []string{"orders.*"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(Config{Name: "b", Subjects: []string{"orders.new"}}); !errors.Is(err, ErrSubjectOverlap) {
		t.Fatalf("overlap: %v", err)
	}
	if _, err := m.Create(Config{Name: "a"}); !errors.Is(err, ErrExists) {
		t.Fatalf("twice: %v", err)
	}
}

// TestLimitsConsumers: each consumer of a Limits queue has its own position
// and acks; messages stay when acked; the acks survive a restart.
func TestLimitsConsumers(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder()
	m := openTest(t, dir, rec)
	if _, err := m.Create(Config{Name: "log", Retention: Limits, Consumers: []ConsumerConfig{{Name: "a"}, {Name: "b"}}}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("log")
	for i := range 4 {
		publish(t, q, "log", fmt.Sprint("e", i), "")
	}
	for _, c := range []string{"a", "b"} {
		if err := q.Fetch(c, "to."+c, 4, time.Second, false); err != nil {
			t.Fatal(err)
		}
		got := rec.wait(t, "to."+c, 4)
		for i, s := range got {
			if string(s.d.Data) != fmt.Sprint("e", i) || s.d.Consumer != c {
				t.Fatalf("consumer %s, delivery %d: %+v", c, i, s.d)
			}
		}
		// a acks everything, b only the first two.
		n := 4
		if c == "b" {
			n = 2
		}
		for _, s := range got[:n] {
			done := make(chan error, 1)
			if err := q.Ack(context.Background(), c, s.d.Seq, s.d.ID, Ack, 0, func(err error) { done <- err }); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	if inf := q.Info(); inf.Messages != 4 {
		t.Fatalf("a limits queue dropped acked messages: %+v", inf)
	}
	m.Close()
	rec2 := newRecorder()
	m2 := openTest(t, dir, rec2)
	defer m2.Close()
	q2 := m2.Get("log")
	for c, want := range map[string][]string{"a": nil, "b": {"e2", "e3"}} {
		if err := q2.Fetch(c, "again."+c, 10, 100*time.Millisecond, false); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range rec2.waitEnd(t, "again."+c) {
			got = append(got, string(s.d.Data))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("consumer %s after restart: %v, want %v", c, got, want)
		}
	}
}

// TestDelayedMessage: a message published with a not-before time is not
// handed out before it.
func TestDelayedMessage(t *testing.T) {
	rec := newRecorder()
	m := openTest(t, t.TempDir(), rec)
	defer m.Close()
	if _, err := m.Create(Config{Name: "later"}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("later")
	at := time.Now().Add(300 * time.Millisecond)
	done := make(chan error, 1)
	q.Publish(context.Background(), "later", nil, []byte("wake up"), "", at, func(_ PubAck, err error) { done <- err })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	publish(t, q, "later", "now", "")
	if err := q.Fetch(DefaultConsumer, "f", 2, 5*time.Second, false); err != nil {
		t.Fatal(err)
	}
	got := rec.wait(t, "f", 2)
	if string(got[0].d.Data) != "now" || string(got[1].d.Data) != "wake up" {
		t.Fatalf("order: %q, %q", got[0].d.Data, got[1].d.Data)
	}
	if time.Now().Before(at) {
		t.Fatalf("delayed message delivered %v early", time.Until(at))
	}
}

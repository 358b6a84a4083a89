package queue

// Regression tests for defects a review of the queue layer found: each
// one failed before its fix (several force the one interleaving that shows
// the defect through the FaultFS hook or a journal callback).
// Each test's comment describes the defect as it was before the fix.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard/queue/queuetest"
)

// ackWait acks one delivery and waits for the confirmation.
func ackConfirmed(t *testing.T, q *Queue, consumer string, d Delivery) {
	t.Helper()
	done := make(chan error, 1)
	if err := q.Ack(context.Background(), consumer, d.Seq, d.ID, Ack, 0, func(err error) { done <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestRegressLimitsFloorJumpsPastLaterMessagesOnReplay: in a Limits queue, a
// consumer that acked everything it had seen gets its floor set to the
// journal's *last index* (advanceFloor: g.floor = q.j.Last()+1). During
// replay, Last is the end of the whole journal, so every message published
// after that ack counts as acked by the consumer after a restart: it is
// never delivered to it.
func TestRegressLimitsFloorJumpsPastLaterMessagesOnReplay(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder()
	m := openTest(t, dir, rec)
	if _, err := m.Create(Config{Name: "log", Retention: Limits}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("log")
	publish(t, q, "log", "e0", "")
	if err := q.Fetch(DefaultConsumer, "f1", 1, time.Second, false); err != nil {
		t.Fatal(err)
	}
	ackConfirmed(t, q, DefaultConsumer, rec.wait(t, "f1", 1)[0].d)
	publish(t, q, "log", "e1", "") // published after the ack: never delivered, never acked
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	rec2 := newRecorder()
	m2 := openTest(t, dir, rec2)
	defer m2.Close()
	q2 := m2.Get("log")
	t.Logf("after restart: ack_floor %d, last_seq %d, messages %d", q2.Info().Consumers[0].AckFloor, q2.Info().LastSeq, q2.Info().Messages)
	if err := q2.Fetch(DefaultConsumer, "f2", 10, 200*time.Millisecond, false); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range rec2.waitEnd(t, "f2") {
		got = append(got, string(s.d.Data))
	}
	if fmt.Sprint(got) != "[e1]" {
		t.Fatalf("after restart the consumer gets %v, want [e1]: a message it never acked counts as acked", got)
	}
}

// TestRegressShrinkingMaxMsgSizeLosesAckedMessages: the journal's MaxRecord
// (also recovery's sanity limit) is derived from max_msg_size at open.
// Lowering max_msg_size with Update, then restarting, turns acknowledged
// larger messages into "damage": the newest one is cut off as a torn
// tail.
func TestRegressShrinkingMaxMsgSizeLosesAckedMessages(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder()
	m := openTest(t, dir, rec)
	if _, err := m.Create(Config{Name: "big", MaxMsgSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("big")
	publish(t, q, "big", "small", "")
	publish(t, q, "big", strings.Repeat("x", 2<<20), "") // acknowledged: on disk
	if _, err := m.Update(Config{Name: "big", MaxMsgSize: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	m.Close()

	m2 := openTest(t, dir, newRecorder())
	defer m2.Close()
	inf := m2.Get("big").Info()
	t.Logf("after restart: messages %d, recovery %q", inf.Messages, inf.Storage.Recovery)
	if inf.Messages != 2 {
		t.Fatalf("an acknowledged 2 MiB message is gone after max_msg_size was lowered and the hub restarted: %d messages held, want 2", inf.Messages)
	}
}

// TestRegressRaisingMaxMsgSizeIsNotApplied: raising max_msg_size with
// Update is accepted, but the open journal keeps the old MaxRecord, so a
// publish the new configuration allows fails with a journal error (code
// bad_request at the hub) until the hub restarts.
func TestRegressRaisingMaxMsgSizeIsNotApplied(t *testing.T) {
	m := openTest(t, t.TempDir(), newRecorder())
	defer m.Close()
	if _, err := m.Create(Config{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Update(Config{Name: "q", MaxMsgSize: 4 << 20}); err != nil {
		t.Fatal(err)
	}
	if _, err := publishWait(m.Get("q"), "q", strings.Repeat("x", 2<<20), ""); err != nil {
		t.Fatalf("a 2 MiB publish into a queue updated to max_msg_size 4 MiB: %v", err)
	}
}

// TestRegressNakBypassesMaxDeliver: max_deliver is only checked when an
// ack wait runs out, so a consumer that naks gets the message forever and
// it never reaches the dead-letter queue.
func TestRegressNakBypassesMaxDeliver(t *testing.T) {
	rec := newRecorder()
	m := openTest(t, t.TempDir(), rec)
	defer m.Close()
	if _, err := m.Create(Config{Name: "dead"}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(Config{Name: "q", MaxDeliver: 2, DeadLetter: "dead", AckWait: Duration(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	publish(t, q, "q", "poison", "")
	var counts []uint32
	for i := range 5 {
		to := fmt.Sprint("n.", i)
		got := fetchAll(t, rec, q, DefaultConsumer, to, 1, 200*time.Millisecond)
		if len(got) == 0 {
			break
		}
		if len(got) == 1 {
			d := got[0]
			counts = append(counts, d.Count)
			if err := q.Ack(context.Background(), DefaultConsumer, d.Seq, d.ID, Nak, 0, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(counts) > 2 {
		t.Fatalf("max_deliver 2, but the message was delivered %d times (counts %v) and the dead-letter queue holds %d", len(counts), counts, m.Get("dead").Info().Messages)
	}
}

// waitEnd with a recorder whose fetch ends with a status: helper above in
// fault_test.go. fetchAll fetches up to n with a short expiry.
func fetchAll(t *testing.T, rec *recorder, q *Queue, consumer, to string, n int, exp time.Duration) []Delivery {
	t.Helper()
	if err := q.Fetch(consumer, to, n, exp, false); err != nil {
		t.Fatal(err)
	}
	return rec.waitN(t, to, n)
}

// waitN returns the deliveries to to once there are n, or once a status
// message ends the fetch short.
func (r *recorder) waitN(t *testing.T, to string, n int) []Delivery {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		var got []Delivery
		end := false
		for _, m := range r.msgs {
			if m.to != to {
				continue
			}
			if m.status != 0 {
				end = true
				break
			}
			got = append(got, m.d)
		}
		r.mu.Unlock()
		if end || len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetch to %s: %d deliveries and no end", to, len(got))
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRegressAgedDeliveryLeaksInFlight: a message removed by max_age (or a
// Limits floor) while it is in flight is dropped from the group's pending
// map by dropBelow without decrementing its consumer's in-flight count.
// The consumer stays "full" forever: nothing more is delivered to it.
func TestRegressAgedDeliveryLeaksInFlight(t *testing.T) {
	rec := newRecorder()
	m := openTest(t, t.TempDir(), rec)
	defer m.Close()
	if _, err := m.Create(Config{Name: "q", MaxAge: Duration(300 * time.Millisecond),
		Consumers: []ConsumerConfig{{Name: "w", MaxInFlight: 1}}}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	publish(t, q, "q", "old", "")
	if got := fetchAll(t, rec, q, "w", "f1", 1, time.Second); len(got) != 1 {
		t.Fatalf("first fetch: %v", got)
	}
	// Not acked; the message ages out.
	deadline := time.Now().Add(5 * time.Second)
	for q.Info().Messages != 0 {
		if time.Now().After(deadline) {
			t.Fatal("message did not age out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	publish(t, q, "q", "new", "")
	got := fetchAll(t, rec, q, "w", "f2", 1, 200*time.Millisecond)
	if len(got) != 1 {
		var ci ConsumerInfo
		for _, c := range q.Info().Consumers {
			if c.Name == "w" {
				ci = c
			}
		}
		t.Fatalf("after its in-flight message aged out, the consumer gets nothing: in_flight %d (max 1), messages %d", ci.InFlight, q.Info().Messages)
	}
}

// TestRegressAckUnderAnotherConsumerName: in a Work queue all consumers
// share one group, and Ack does not check that the delivery belongs to the
// consumer named in the ack subject. An ack published to
// $SB.Q.ACK.q.b.<seq>.<id> settles consumer a's delivery (a principal
// allowed only $SB.Q.ACK.q.b.> settles a's work), and a Nak/Term under the
// wrong name decrements the wrong consumer's in-flight count.
func TestRegressAckUnderAnotherConsumerName(t *testing.T) {
	rec := newRecorder()
	m := openTest(t, t.TempDir(), rec)
	defer m.Close()
	if _, err := m.Create(Config{Name: "q", AckWait: Duration(time.Hour),
		Consumers: []ConsumerConfig{{Name: "a"}, {Name: "b"}}}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	publish(t, q, "q", "m", "")
	d := fetchAll(t, rec, q, "a", "fa", 1, time.Second)[0]
	err := q.Ack(context.Background(), "b", d.Seq, d.ID, Nak, 0, nil)
	inf := q.Info()
	inflight := map[string]int{}
	for _, c := range inf.Consumers {
		inflight[c.Name] = c.InFlight
	}
	t.Logf("nak of a's delivery under consumer b: err=%v, in_flight a=%d b=%d", err, inflight["a"], inflight["b"])
	if err == nil {
		t.Fatalf("consumer b settled consumer a's delivery (in_flight a=%d, b=%d)", inflight["a"], inflight["b"])
	}
}

// TestRegressDedupEntryOutlivesWindow: expireDedup pops a Msg-Id whose
// message is still being written from the FIFO without deleting it from
// the map. Once that message is durable, its entry is never expired: the
// Msg-Id stays a duplicate until the hub restarts (and the map grows).
func TestRegressDedupEntryOutlivesWindow(t *testing.T) {
	m := openTest(t, t.TempDir(), newRecorder())
	defer m.Close()
	if _, err := m.Create(Config{Name: "q", DedupWindow: Duration(time.Microsecond)}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	done := make(chan error, 2)
	// Both in flight at once: the second admit expires the first id
	// (older than 1µs) while its message is not yet durable.
	q.Publish(context.Background(), "q", nil, []byte("1"), "x", time.Time{}, func(_ PubAck, err error) { done <- err })
	time.Sleep(5 * time.Microsecond)
	q.Publish(context.Background(), "q", nil, []byte("2"), "y", time.Time{}, func(_ PubAck, err error) { done <- err })
	<-done
	<-done
	time.Sleep(20 * time.Millisecond) // far past the window
	a, err := publishWait(q, "q", "3", "x")
	if err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	n := len(q.dedup)
	q.mu.Unlock()
	if a.Duplicate {
		t.Fatalf("Msg-Id x republished 20ms later with a 1µs dedup window is still a duplicate (dedup map holds %d ids)", n)
	}
}

// TestRegressUpdateUnbindsSubjects: Update (and so AddConsumer and
// DeleteConsumer) unbinds every subject of the queue and binds them again.
// A publish routed in between is not stored: without a reply subject it is
// lost silently; with one, route() answers 503 no responders.
func TestRegressUpdateUnbindsSubjects(t *testing.T) {
	m := openTest(t, t.TempDir(), newRecorder())
	defer m.Close()
	if _, err := m.Create(Config{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; !stop.Load(); i++ {
			if _, err := m.AddConsumer("q", ConsumerConfig{Name: fmt.Sprint("c", i%4)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	misses, total := 0, 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; total++ {
		if m.Bound([]byte("q")) == nil {
			misses++
		}
	}
	stop.Store(true)
	wg.Wait()
	if misses > 0 {
		t.Fatalf("%d of %d lookups of the queue's subject found no queue while consumers were being added", misses, total)
	}
}

// TestRegressConcurrentAddConsumerLosesOne: AddConsumer reads the config
// without a lock held across its Update, so two concurrent AddConsumer
// calls can each write a list without the other's consumer.
func TestRegressConcurrentAddConsumerLosesOne(t *testing.T) {
	m := openTest(t, t.TempDir(), newRecorder())
	defer m.Close()
	for i := range 200 {
		name := fmt.Sprint("q", i)
		if _, err := m.Create(Config{Name: name}); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for _, c := range []string{"a", "b"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := m.AddConsumer(name, ConsumerConfig{Name: c}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if n := len(m.Get(name).Config().Consumers); n != 2 {
			t.Fatalf("iteration %d: two concurrent AddConsumer calls, both answered OK, left %d consumer(s): %+v", i, n, m.Get(name).Config().Consumers)
		}
	}
}

// TestRegressInProgressGrowsTimerHeap: each +WPI pushes a new deadline on
// the queue's timer heap; the old ones stay until their time comes (the
// ack wait, 30s by default). A client repeating +WPI on one delivery grows
// the hub's memory without bound.
func TestRegressInProgressGrowsTimerHeap(t *testing.T) {
	rec := newRecorder()
	m := openTest(t, t.TempDir(), rec)
	defer m.Close()
	if _, err := m.Create(Config{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	publish(t, q, "q", "m", "")
	d := fetchAll(t, rec, q, DefaultConsumer, "f", 1, time.Second)[0]
	for range 100_000 {
		if err := q.Ack(context.Background(), DefaultConsumer, d.Seq, d.ID, InProgress, 0, nil); err != nil {
			t.Fatal(err)
		}
	}
	q.mu.Lock()
	n := len(q.timers)
	q.mu.Unlock()
	if n > 10 {
		t.Fatalf("one delivery in flight, %d entries on the timer heap after 100000 +WPI", n)
	}
}

// TestRegressDeleteCreateRace: Delete drops the queue from the map, closes
// it, and only then renames its directory away. A Create of the same name
// in between opens the old directory (the deleted queue's messages come
// back), and Delete's rename then moves the new queue's files away.
func TestRegressDeleteCreateRace(t *testing.T) {
	dir := t.TempDir()
	m := openTest(t, dir, newRecorder())
	defer m.Close()
	for i := range 300 {
		if _, err := m.Create(Config{Name: "q"}); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		publish(t, m.Get("q"), "q", "old", "")
		errc := make(chan error, 1)
		go func() { errc <- m.Delete("q") }()
		var created bool
		for {
			if _, err := m.Create(Config{Name: "q"}); err == nil {
				created = true
				break
			} else if !errors.Is(err, ErrExists) {
				t.Logf("iteration %d: create during delete: %v", i, err)
				break
			}
		}
		if err := <-errc; err != nil {
			t.Fatalf("iteration %d: delete: %v", i, err)
		}
		if !created {
			if _, err := m.Create(Config{Name: "q"}); err != nil {
				t.Fatalf("iteration %d: create after delete: %v", i, err)
			}
		}
		q := m.Get("q")
		if n := q.Info().Messages; n != 0 {
			t.Fatalf("iteration %d: a queue created after its namesake was deleted holds %d of the deleted queue's messages", i, n)
		}
		if _, err := publishWait(q, "q", "new", ""); err != nil {
			t.Fatalf("iteration %d: publish into the new queue: %v", i, err)
		}
		if _, err := m.readConfig(q.dir); err != nil {
			t.Fatalf("iteration %d: the new queue's directory is gone: %v", i, err)
		}
		if err := m.Delete("q"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRegressPurgeHidesPublishDuringReset: Purge resets the journal, then
// clears the in-memory state. Here a publish is appended while the
// journal's Reset is running (from the file system
// hook, on the committer). The committer writes it right after the reset
// and runs its callback, which adds the entry; Purge then wakes up and
// clears every entry. The publisher has its ack, the message is in the
// journal, but the queue does not hold it until a restart.
func TestRegressPurgeHidesPublishDuringReset(t *testing.T) {
	fsys := queuetest.New().StrictDirs()
	rec := newRecorder()
	m, err := Open(Options{Dir: "/data", FS: fsys, NewSender: rec.sender})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(Config{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	publish(t, q, "q", "before", "")
	acked := make(chan PubAck, 1)
	var armed atomic.Bool
	armed.Store(true)
	fsys.SetHook(func(op queuetest.Op, name string, n int) error {
		if op == queuetest.OpRemove && strings.HasSuffix(name, ".seg") && armed.CompareAndSwap(true, false) {
			q.Publish(context.Background(), "q", nil, []byte("during"), "", time.Time{}, func(a PubAck, err error) {
				if err == nil {
					acked <- a
				}
			})
		}
		return nil
	})
	if err := q.Purge(); err != nil {
		t.Fatal(err)
	}
	var a PubAck
	select {
	case a = <-acked:
	case <-time.After(10 * time.Second):
		t.Fatal("the publish made during the reset was not acknowledged")
	}
	fsys.SetHook(nil)
	held := q.Info().Messages
	// A fetch does not get it either.
	got := fetchAll(t, rec, q, DefaultConsumer, "f", 1, 100*time.Millisecond)
	m.Close()
	m2, err := Open(Options{Dir: "/data", FS: fsys, NewSender: newRecorder().sender})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	after := m2.Get("q").Info().Messages
	t.Logf("publish during purge acked with seq %d; held before restart %d (fetch got %d), after restart %d", a.Seq, held, len(got), after)
	if held != after || len(got) != int(after) {
		t.Fatalf("an acknowledged message published during a purge: held %d, fetched %d, but %d after a restart", held, len(got), after)
	}
}

// TestRegressLimitsFloorRaceDeterministic forces the run-time interleaving
// of the j.Last()+1 floor: a batch holds consumer default's ack of m0 and a
// new message B. The committer makes the batch visible (Last = B), runs the
// ack's callback, in which (standing for another client's reader goroutine)
// default acks m1, its last unacked message: advanceFloor sets the floor to
// Last+1, past B, whose entry is added only afterwards. B is acknowledged
// to its publisher but never delivered to default.
func TestRegressLimitsFloorRaceDeterministic(t *testing.T) {
	fsys := queuetest.New().StrictDirs()
	rec := newRecorder()
	m, err := Open(Options{Dir: "/data", FS: fsys, NewSender: rec.sender})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := m.Create(Config{Name: "log", Retention: Limits, AckWait: Duration(time.Hour),
		Consumers: []ConsumerConfig{{Name: "other"}}}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("log")
	publish(t, q, "log", "m0", "")
	publish(t, q, "log", "m1", "")
	ds := fetchAll(t, rec, q, DefaultConsumer, "d", 2, time.Second)
	od := fetchAll(t, rec, q, "other", "o", 1, time.Second)
	if len(ds) != 2 || len(od) != 1 {
		t.Fatalf("fetches: %d %d", len(ds), len(od))
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	armed.Store(true)
	fsys.SetHook(func(op queuetest.Op, name string, n int) error {
		if op == queuetest.OpSync && armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
		return nil
	})
	// Batch 1: other's ack of m0; the committer blocks in its fsync.
	if err := q.Ack(context.Background(), "other", od[0].Seq, od[0].ID, Ack, 0, nil); err != nil {
		t.Fatal(err)
	}
	<-entered
	// Batch 2: default's ack of m0, then message B.
	if err := q.Ack(context.Background(), DefaultConsumer, ds[0].Seq, ds[0].ID, Ack, 0, func(error) {
		q.Ack(context.Background(), DefaultConsumer, ds[1].Seq, ds[1].ID, Ack, 0, nil)
	}); err != nil {
		t.Fatal(err)
	}
	bAck := make(chan PubAck, 1)
	q.Publish(context.Background(), "log", nil, []byte("B"), "", time.Time{}, func(a PubAck, err error) {
		if err != nil {
			t.Error(err)
		}
		bAck <- a
	})
	close(release)
	a := <-bAck
	fsys.SetHook(nil)
	got := fetchAll(t, rec, q, DefaultConsumer, "after", 10, 200*time.Millisecond)
	inf := q.Info()
	if len(got) != 1 {
		t.Fatalf("B acknowledged with seq %d, but consumer default gets %d messages: ack_floor %d, messages %d", a.Seq, len(got), inf.Consumers[0].AckFloor, inf.Messages)
	}
}

// TestRegressDuplicateIntoFullQueueIsRefused: admit checks max_msgs before
// the Msg-Id, so a publisher retrying a message the queue already stored
// (the case deduplication exists for) gets "full" instead of its
// duplicate ack when the work queue is full.
func TestRegressDuplicateIntoFullQueueIsRefused(t *testing.T) {
	m := openTest(t, t.TempDir(), newRecorder())
	defer m.Close()
	if _, err := m.Create(Config{Name: "q", MaxMsgs: 1}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	first := publish(t, q, "q", "job", "job-1")
	a, err := publishWait(q, "q", "job", "job-1")
	if err != nil || !a.Duplicate || a.Seq != first.Seq {
		t.Fatalf("retry of a stored Msg-Id into a full queue: %+v %v; want the duplicate ack of seq %d", a, err, first.Seq)
	}
}

// TestRegressDeadLetterTooLargeNeverLeaves: the dead-letter copy carries
// four more header fields; a message near max_msg_size does not fit a
// dead-letter queue with the same limit, so it is put back and redelivered
// every ack wait, forever, past max_deliver.
func TestRegressDeadLetterTooLargeNeverLeaves(t *testing.T) {
	rec := newRecorder()
	m := openTest(t, t.TempDir(), rec)
	defer m.Close()
	if _, err := m.Create(Config{Name: "dead", MaxMsgSize: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(Config{Name: "q", MaxMsgSize: 100, MaxDeliver: 1, DeadLetter: "dead", AckWait: Duration(20 * time.Millisecond)}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	publish(t, q, "q", strings.Repeat("p", 90), "")
	var counts []uint32
	for i := range 4 {
		got := fetchAll(t, rec, q, DefaultConsumer, fmt.Sprint("f", i), 1, 300*time.Millisecond)
		for _, d := range got {
			counts = append(counts, d.Count)
		}
	}
	if len(counts) > 1 {
		t.Fatalf("max_deliver 1, delivered %d times (counts %v); dead-letter queue holds %d", len(counts), counts, m.Get("dead").Info().Messages)
	}
}

// TestRegressDelayedCountsPastDue: q.delayed is only cleared when a message
// is removed, so Info.Delayed keeps counting messages whose time came
// (and the loop wakes every second while one is held).
func TestRegressDelayedCountsPastDue(t *testing.T) {
	rec := newRecorder()
	m := openTest(t, t.TempDir(), rec)
	defer m.Close()
	if _, err := m.Create(Config{Name: "q", Retention: Limits}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	done := make(chan error, 1)
	q.Publish(context.Background(), "q", nil, []byte("x"), "", time.Now().Add(50*time.Millisecond), func(_ PubAck, err error) { done <- err })
	<-done
	d := fetchAll(t, rec, q, DefaultConsumer, "f", 1, 2*time.Second)
	if len(d) != 1 {
		t.Fatal("not delivered")
	}
	ackConfirmed(t, q, DefaultConsumer, d[0])
	if n := q.Info().Delayed; n != 0 {
		t.Fatalf("a delivered and acknowledged message still counts as delayed: delayed=%d", n)
	}
}

// TestRegressAckedDeliveriesStayOnTimerHeap: an acked delivery's deadline
// stays on the heap until the ack wait would have run out; at a high
// message rate the heap holds rate × ack_wait entries.
func TestRegressAckedDeliveriesStayOnTimerHeap(t *testing.T) {
	rec := newRecorder()
	m := openTest(t, t.TempDir(), rec)
	defer m.Close()
	if _, err := m.Create(Config{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	for i := range 500 {
		q.Publish(context.Background(), "q", nil, []byte(fmt.Sprint(i)), "", time.Time{}, func(PubAck, error) {})
	}
	publish(t, q, "q", "last", "")
	for _, d := range fetchAll(t, rec, q, DefaultConsumer, "f", 501, time.Second) {
		ackConfirmed(t, q, DefaultConsumer, d)
	}
	q.mu.Lock()
	n := len(q.timers)
	q.mu.Unlock()
	t.Logf("0 deliveries in flight, %d deadlines on the timer heap", n)
	if n > 64 {
		t.Fatalf("0 deliveries in flight, %d deadlines on the timer heap (each lives for ack_wait); compaction keeps it under 64", n)
	}
}

// TestRegressTrimDeletesAcknowledgedMessage: firstLive() falls back to
// j.Last()+1 when no entry is held. The committer makes a batch visible
// (Last) before its callbacks add the entries; a trimJournal that runs in
// between asks RemoveBefore(Last+1), which the committer carries out right
// after the callbacks: when the batch crossed a segment rollover, the
// sealed segment holding a just-acknowledged message is deleted. The
// message is then "dropped" as unreadable, and gone after a restart.
//
// The interleaving is forced: batch 2 holds an ack record (whose done
// callback stands in for "the loop's trim runs now"), message X (fills
// segment 1) and message Y (rolls over to segment 2).
func TestRegressTrimDeletesAcknowledgedMessage(t *testing.T) {
	fsys := queuetest.New().StrictDirs()
	rec := newRecorder()
	m, err := Open(Options{Dir: "/data", FS: fsys, NewSender: rec.sender, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(Config{Name: "q", AckWait: Duration(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	publish(t, q, "q", "m0", "")
	publish(t, q, "q", "m1", "")
	ds := fetchAll(t, rec, q, DefaultConsumer, "f", 2, time.Second)
	if len(ds) != 2 {
		t.Fatal("fetch")
	}
	entered, release := make(chan struct{}), make(chan struct{})
	var armed atomic.Bool
	armed.Store(true)
	fsys.SetHook(func(op queuetest.Op, name string, n int) error {
		if op == queuetest.OpSync && armed.CompareAndSwap(true, false) {
			close(entered)
			<-release
		}
		return nil
	})
	// Batch 1: the ack of m1; the committer blocks in its fsync.
	if err := q.Ack(context.Background(), DefaultConsumer, ds[1].Seq, ds[1].ID, Ack, 0, nil); err != nil {
		t.Fatal(err)
	}
	<-entered
	// Batch 2: the ack of m0 (callback D), X, Y.
	var trimmed sync.WaitGroup
	err = q.Ack(context.Background(), DefaultConsumer, ds[0].Seq, ds[0].ID, Ack, 0, func(error) {
		// On the committer, after the batch is visible, before X's and
		// Y's entries exist: the loop's periodic trim runs now.
		trimmed.Add(1)
		go func() { defer trimmed.Done(); q.trimJournal() }()
		// Give the trim time to decide what to remove (it cannot finish:
		// its RemoveBefore runs on this goroutine, after the callbacks).
		time.Sleep(50 * time.Millisecond)
	})
	if err != nil {
		t.Fatal(err)
	}
	acks := make(chan PubAck, 2)
	for _, name := range []string{"X", "Y"} {
		q.Publish(context.Background(), "q", nil, []byte(name+strings.Repeat(".", 40<<10)), "", time.Time{}, func(a PubAck, err error) {
			if err != nil {
				t.Error(err)
			}
			acks <- a
		})
	}
	close(release)
	ax, ay := <-acks, <-acks
	trimmed.Wait()
	fsys.SetHook(nil)
	got := fetchAll(t, rec, q, DefaultConsumer, "g", 2, 300*time.Millisecond)
	var names []string
	for _, d := range got {
		names = append(names, string(d.Data[:1]))
	}
	m.Close()
	m2, err := Open(Options{Dir: "/data", FS: fsys, NewSender: newRecorder().sender, SegmentSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	after := m2.Get("q").Info().Messages
	t.Logf("X acked seq %d, Y acked seq %d; delivered %v; after restart the queue holds %d", ax.Seq, ay.Seq, names, after)
	if len(got) != 2 || after != 0 && after != 2 {
		t.Fatalf("two acknowledged messages X (seq %d) and Y (seq %d): delivered %v, %d held after restart", ax.Seq, ay.Seq, names, after)
	}
}

// TestRegressReAddedConsumerStartsAfresh: a Limits consumer deleted and
// added again starts at the oldest message, before and after a restart
// (the acks of the earlier consumer of that name came back at replay).
func TestRegressReAddedConsumerStartsAfresh(t *testing.T) {
	dir := t.TempDir()
	rec := newRecorder()
	m := openTest(t, dir, rec)
	if _, err := m.Create(Config{Name: "log", Retention: Limits, Consumers: []ConsumerConfig{{Name: "c"}}}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("log")
	for i := range 3 {
		publish(t, q, "log", fmt.Sprint("e", i), "")
	}
	if err := q.Fetch("c", "first", 3, time.Second, false); err != nil {
		t.Fatal(err)
	}
	for _, s := range rec.wait(t, "first", 3) {
		ackConfirmed(t, q, "c", s.d)
	}
	if _, err := m.DeleteConsumer("log", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.AddConsumer("log", ConsumerConfig{Name: "c"}); err != nil {
		t.Fatal(err)
	}
	count := func(m *Manager, rec *recorder, to string) int {
		if err := m.Get("log").Fetch("c", to, 10, 100*time.Millisecond, false); err != nil {
			t.Fatal(err)
		}
		return len(rec.waitEnd(t, to))
	}
	if n := count(m, rec, "again"); n != 3 {
		t.Fatalf("the re-added consumer gets %d of 3 messages", n)
	}
	m.Close()
	rec2 := newRecorder()
	m2 := openTest(t, dir, rec2)
	defer m2.Close()
	if n := count(m2, rec2, "after"); n != 3 {
		t.Fatalf("after a restart the re-added consumer gets %d of 3 messages (the old consumer's acks came back)", n)
	}
}

// TestRegressDedupSurvivesTrim: the Msg-Id of a message acked and trimmed
// away is still a duplicate after a restart, within the window (replay
// rebuilt the window only from the records left).
func TestRegressDedupSurvivesTrim(t *testing.T) {
	dir := t.TempDir()
	m := openTest(t, dir, newRecorder()) // 64 KiB segments
	if _, err := m.Create(Config{Name: "q"}); err != nil {
		t.Fatal(err)
	}
	q := m.Get("q")
	first := publish(t, q, "q", strings.Repeat("a", 1024), "id-0")
	for i := 1; i < 200; i++ { // several segments
		publish(t, q, "q", strings.Repeat("b", 1024), fmt.Sprint("id-", i))
	}
	var acks [][]byte
	q.mu.Lock()
	for _, e := range q.entries[q.head:] {
		acks = append(acks, q.finish(q.groups[""], e.seq, ackDone, true))
	}
	q.mu.Unlock()
	for _, rec := range acks {
		if _, err := q.j.AppendSync(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	q.trimJournal()
	m.Close()
	m2 := openTest(t, dir, newRecorder())
	defer m2.Close()
	if n := m2.Get("q").Info().Messages; n != 0 {
		t.Fatalf("%d acknowledged messages came back", n)
	}
	if a, err := publishWait(m2.Get("q"), "q", "again", "id-0"); err != nil || !a.Duplicate || a.Seq != first.Seq {
		t.Fatalf("a retry of id-0 after removal, trim and restart: %+v %v, want a duplicate of %d", a, err, first.Seq)
	}
}

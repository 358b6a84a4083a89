package queue

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"switchboard/queue/queuetest"
)

// fetchNow asks for up to n messages without waiting and returns what the
// queue handed out.
func fetchNow(t *rapid.T, rec *recorder, q *Queue, n int, tag *int) []Delivery {
	*tag++
	to := fmt.Sprint("fetch.", *tag)
	if err := q.Fetch(DefaultConsumer, to, n, time.Minute, true); err != nil {
		t.Fatalf("fetch: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for {
		var got []Delivery
		for _, m := range rec.msgs {
			if m.to != to {
				continue
			}
			if m.status != 0 {
				return got
			}
			got = append(got, m.d)
		}
		if len(got) == n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetch %s: %d of %d, no end", to, len(got), n)
		}
		rec.mu.Unlock()
		time.Sleep(100 * time.Microsecond)
		rec.mu.Lock()
	}
}

// TestQueueModel drives a Work queue on a fault-injecting in-memory file
// system through random publishes (waited for, and not), fetches, acks,
// naks, stale acks, clean restarts and power cuts, and checks it against a
// model: a fetch hands out only stored, unfinished messages not already in
// flight, with the data published, and everything available when it comes
// up short; an acknowledged publish survives restarts and power cuts
// until a confirmed ack removes it or a purge, and a confirmed ack is
// never undone; journal trims and purges in between keep all of that.
func TestQueueModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		fsys := queuetest.New().StrictDirs()
		rec := newRecorder()
		open := func() *Manager {
			m, err := Open(Options{Dir: "/data", FS: fsys, NewSender: rec.sender, SegmentSize: 4 << 10})
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			return m
		}
		m := open()
		defer func() { m.Close() }()
		if _, err := m.Create(Config{Name: "q", AckWait: Duration(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		q := m.Get("q")
		type pend struct {
			seq, id uint64
			data    string
		}
		var (
			live    = map[uint64]string{} // acknowledged publishes not yet acked by the consumer
			maybe   = map[string]bool{}   // published without waiting: stored or not
			pending = map[uint64]pend{}   // in flight, by seq
			stale   []pend                // deliveries that are no longer current
			n, tag  int
		)
		available := func() int { return len(live) - len(pending) }
		check := func(t *rapid.T, ds []Delivery, want int) {
			for _, d := range ds {
				data, ok := live[d.Seq]
				if !ok {
					t.Fatalf("delivered %d %q, not a stored unfinished message", d.Seq, d.Data)
				}
				if string(d.Data) != data {
					t.Fatalf("message %d: %q, published %q", d.Seq, d.Data, data)
				}
				if _, ok := pending[d.Seq]; ok {
					t.Fatalf("message %d delivered while in flight", d.Seq)
				}
				pending[d.Seq] = pend{d.Seq, d.ID, data}
			}
			if len(ds) < want && available() > 0 {
				t.Fatalf("fetch of %d gave %d while %d were available", want, len(ds), available()+len(ds))
			}
		}
		// settle makes the model exact again after a crash: everything is
		// fetched, so what the queue holds is what it hands out.
		settle := func(t *rapid.T) {
			pending = map[uint64]pend{}
			ds := fetchNow(t, rec, q, 1<<20, &tag)
			got := map[uint64]string{}
			for _, d := range ds {
				got[d.Seq] = string(d.Data)
				pending[d.Seq] = pend{d.Seq, d.ID, string(d.Data)}
			}
			for seq, data := range live {
				if got[seq] != data {
					t.Fatalf("acknowledged message %d %q lost (have %q)", seq, data, got[seq])
				}
			}
			for seq, data := range got {
				if _, ok := live[seq]; !ok && !maybe[data] {
					t.Fatalf("message %d %q was never published, or was acked", seq, data)
				}
				live[seq] = data
			}
			clear(maybe)
		}
		t.Repeat(map[string]func(*rapid.T){
			"publish": func(t *rapid.T) {
				n++
				data := fmt.Sprint("m", n)
				a, err := publishWait(q, "q", data, "")
				if err != nil || a.Seq == 0 {
					t.Fatalf("publish: %+v %v", a, err)
				}
				live[a.Seq] = data
			},
			"publishNoWait": func(t *rapid.T) {
				n++
				data := fmt.Sprint("m", n)
				maybe[data] = true
				q.Publish(context.Background(), "q", nil, []byte(data), "", time.Time{}, func(PubAck, error) {})
			},
			"fetch": func(t *rapid.T) {
				if len(maybe) > 0 {
					t.Skip("the model does not know which unconfirmed publishes are stored yet")
				}
				k := rapid.IntRange(1, 5).Draw(t, "batch")
				check(t, fetchNow(t, rec, q, k, &tag), k)
			},
			"ack": func(t *rapid.T) {
				if len(pending) == 0 {
					t.Skip("nothing in flight")
				}
				keys := slices.Sorted(maps.Keys(pending))
				p := pending[keys[rapid.IntRange(0, len(keys)-1).Draw(t, "which")]]
				done := make(chan error, 1)
				if err := q.Ack(context.Background(), DefaultConsumer, p.seq, p.id, Ack, 0, func(err error) { done <- err }); err != nil {
					t.Fatalf("ack %d: %v", p.seq, err)
				}
				if err := <-done; err != nil {
					t.Fatalf("ack %d not durable: %v", p.seq, err)
				}
				delete(pending, p.seq)
				delete(live, p.seq)
				stale = append(stale, p)
			},
			"nak": func(t *rapid.T) {
				if len(pending) == 0 {
					t.Skip("nothing in flight")
				}
				keys := slices.Sorted(maps.Keys(pending))
				p := pending[keys[rapid.IntRange(0, len(keys)-1).Draw(t, "which")]]
				if err := q.Ack(context.Background(), DefaultConsumer, p.seq, p.id, Nak, 0, nil); err != nil {
					t.Fatalf("nak %d: %v", p.seq, err)
				}
				delete(pending, p.seq)
				stale = append(stale, p)
			},
			"staleAck": func(t *rapid.T) {
				if len(stale) == 0 {
					t.Skip("no stale delivery")
				}
				p := stale[rapid.IntRange(0, len(stale)-1).Draw(t, "which")]
				if err := q.Ack(context.Background(), DefaultConsumer, p.seq, p.id, Ack, 0, nil); !errors.Is(err, ErrStaleDelivery) {
					t.Fatalf("ack of an old delivery of %d: %v", p.seq, err)
				}
			},
			"trim": func(t *rapid.T) {
				// What the loop does once a second: delete the segments
				// that hold only removed messages.
				q.trimJournal()
			},
			"purge": func(t *rapid.T) {
				if err := q.Purge(); err != nil {
					t.Fatalf("purge: %v", err)
				}
				for _, p := range pending {
					stale = append(stale, p)
				}
				clear(live)
				clear(pending)
				// Publishes not waited for may have been appended after the
				// reset: they stay "maybe".
			},
			"restart": func(t *rapid.T) {
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
				m = open()
				q = m.Get("q")
				for _, p := range pending {
					stale = append(stale, p)
				}
				settle(t)
			},
			"powerCut": func(t *rapid.T) {
				seed := rapid.Uint64().Draw(t, "seed")
				crashed := fsys.Crash(rand.New(rand.NewPCG(seed, seed>>1)))
				m.Close() // writes to the old FS: no longer matters
				fsys = crashed
				m = open()
				q = m.Get("q")
				if q == nil {
					t.Fatal("queue lost in a power cut")
				}
				for _, p := range pending {
					stale = append(stale, p)
				}
				settle(t)
			},
			"": func(t *rapid.T) {
				if len(maybe) > 0 {
					return
				}
				if inf := q.Info(); inf.Messages != int64(len(live)) {
					t.Fatalf("queue holds %d messages, model %d", inf.Messages, len(live))
				}
			},
		})
	})
}

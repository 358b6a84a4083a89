package hub

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestPubSubWildcards(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		sub := natsConn(t, th, tr)
		pub := natsConn(t, th, tr)
		got := map[string][]string{}
		var mu sync.Mutex
		for _, filter := range []string{"orders.new", "orders.*", "orders.>", ">", "other"} {
			if _, err := sub.Subscribe(filter, func(m *nats.Msg) {
				mu.Lock()
				got[filter] = append(got[filter], m.Subject+"="+string(m.Data))
				mu.Unlock()
			}); err != nil {
				t.Fatal(err)
			}
		}
		sub.Flush()
		for _, s := range []string{"orders.new", "orders.old", "orders.eu.new", "x"} {
			if err := pub.Publish(s, []byte("d")); err != nil {
				t.Fatal(err)
			}
		}
		pub.Flush()
		want := map[string]int{"orders.new": 1, "orders.*": 2, "orders.>": 3, ">": 4, "other": 0}
		waitFor(t, "deliveries", func() bool {
			mu.Lock()
			defer mu.Unlock()
			for k, n := range want {
				if len(got[k]) != n {
					return false
				}
			}
			return true
		})
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		for k, n := range want {
			if len(got[k]) != n {
				t.Errorf("%s got %v, want %d messages", k, got[k], n)
			}
		}
	})
}

func TestOrderPerPublisher(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		sub := natsConn(t, th, tr)
		pub := natsConn(t, th, tr)
		const n = 20000
		ch := make(chan *nats.Msg, n)
		s, err := sub.ChanSubscribe("seq", ch)
		if err != nil {
			t.Fatal(err)
		}
		s.SetPendingLimits(-1, -1)
		sub.Flush()
		for i := range n {
			pub.Publish("seq", []byte(fmt.Sprint(i)))
		}
		pub.Flush()
		for i := range n {
			select {
			case m := <-ch:
				if string(m.Data) != fmt.Sprint(i) {
					t.Fatalf("message %d has %q: order broken", i, m.Data)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("got %d of %d messages", i, n)
			}
		}
	})
}

func TestQueueGroups(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		const n = 1000
		var a, b, plain, other atomic.Int64
		c1, c2, c3 := natsConn(t, th, tr), natsConn(t, th, tr), natsConn(t, th, tr)
		// Group "a" has members on two connections and via a wildcard.
		c1.QueueSubscribe("jobs.run", "a", func(*nats.Msg) { a.Add(1) })
		c2.QueueSubscribe("jobs.*", "a", func(*nats.Msg) { a.Add(1) })
		c2.QueueSubscribe("jobs.run", "b", func(*nats.Msg) { b.Add(1) })
		c3.QueueSubscribe("jobs.run", "b", func(*nats.Msg) { b.Add(1) })
		c3.Subscribe("jobs.run", func(*nats.Msg) { plain.Add(1) })
		c3.QueueSubscribe("other", "a", func(*nats.Msg) { other.Add(1) })
		for _, c := range []*nats.Conn{c1, c2, c3} {
			c.Flush()
		}
		pub := natsConn(t, th, tr)
		for range n {
			pub.Publish("jobs.run", nil)
		}
		pub.Flush()
		waitFor(t, "deliveries", func() bool { return a.Load() == n && b.Load() == n && plain.Load() == n })
		time.Sleep(50 * time.Millisecond)
		if a.Load() != n || b.Load() != n || plain.Load() != n || other.Load() != 0 {
			t.Fatalf("group a %d, group b %d, plain %d, other %d; want %d each and 0", a.Load(), b.Load(), plain.Load(), other.Load(), n)
		}
	})
}

func TestQueueGroupSpreads(t *testing.T) {
	th := startHub(t, Config{})
	tr := th.transports()[0]
	var counts [3]atomic.Int64
	for i := range counts {
		c := natsConn(t, th, tr)
		c.QueueSubscribe("work", "w", func(*nats.Msg) { counts[i].Add(1) })
		c.Flush()
	}
	pub := natsConn(t, th, tr)
	for range 3000 {
		pub.Publish("work", nil)
	}
	pub.Flush()
	waitFor(t, "deliveries", func() bool { return counts[0].Load()+counts[1].Load()+counts[2].Load() == 3000 })
	for i := range counts {
		if c := counts[i].Load(); c < 500 {
			t.Errorf("member %d got %d of 3000: not spread", i, c)
		}
	}
}

func TestRequestReply(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		db := natsConn(t, th, tr)
		db.Subscribe("db.query", func(m *nats.Msg) { m.Respond(append([]byte("rows for "), m.Data...)) })
		db.Flush()
		web := natsConn(t, th, tr)
		for i := range 100 {
			m, err := web.Request("db.query", []byte(fmt.Sprint(i)), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("rows for %d", i); string(m.Data) != want {
				t.Fatalf("reply %q, want %q", m.Data, want)
			}
		}
	})
}

func TestNoResponders(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		nc := natsConn(t, th, tr)
		start := time.Now()
		_, err := nc.Request("nobody.home", []byte("hi"), 10*time.Second)
		if !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("err = %v, want no responders", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("no-responders answer took %v: caller waited for its timeout", d)
		}
	})
}

func TestHeaders(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		sub := natsConn(t, th, tr)
		ch := make(chan *nats.Msg, 1)
		sub.ChanSubscribe("h", ch)
		sub.Flush()
		pub := natsConn(t, th, tr)
		m := nats.NewMsg("h")
		m.Header.Set("Trace-Id", "abc")
		m.Header.Add("Multi", "1")
		m.Header.Add("Multi", "2")
		m.Data = []byte("body")
		if err := pub.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ch:
			if got.Header.Get("Trace-Id") != "abc" || len(got.Header.Values("Multi")) != 2 || string(got.Data) != "body" {
				t.Fatalf("got header %v data %q", got.Header, got.Data)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no message")
		}
	})
}

func TestHeadersStrippedForClientsWithoutHeaders(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		rc := dialRaw(t, tr)
		rc.send("CONNECT {\"headers\":false,\"verbose\":false}\r\nSUB h 1\r\nPING\r\n")
		rc.expect("PONG")
		pub := natsConn(t, th, tr)
		m := nats.NewMsg("h")
		m.Header.Set("K", "V")
		m.Data = []byte("body")
		pub.PublishMsg(m)
		pub.Flush()
		rc.expect("MSG h 1 4")
		rc.expect("body")
	})
}

func TestAutoUnsubscribe(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		rc := dialRaw(t, tr)
		rc.send("CONNECT {}\r\nSUB a 7\r\nUNSUB 7 2\r\nPUB a 1\r\nx\r\nPUB a 1\r\ny\r\nPUB a 1\r\nz\r\nPING\r\n")
		rc.expect("MSG a 7 1")
		rc.expect("x")
		rc.expect("MSG a 7 1")
		rc.expect("y")
		rc.expect("PONG")
		waitFor(t, "subscription removed", func() bool { return th.Stats().Subscriptions == 0 })
	})
}

func TestNoEcho(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		rc := dialRaw(t, tr)
		rc.send("CONNECT {\"echo\":false}\r\nSUB a 1\r\nPUB a 2\r\nhi\r\nPING\r\n")
		rc.expect("PONG")
		rc2 := dialRaw(t, tr)
		rc2.send("CONNECT {}\r\nPUB a 2\r\nyo\r\nPING\r\n")
		rc2.expect("PONG")
		rc.expect("MSG a 1 2")
		rc.expect("yo")
	})
}

func TestUnsubscribe(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		rc := dialRaw(t, tr)
		rc.send("CONNECT {}\r\nSUB a 1\r\nSUB b 2\r\nUNSUB 1\r\nPUB a 1\r\nx\r\nPUB b 1\r\ny\r\nPING\r\n")
		rc.expect("MSG b 2 1")
		rc.expect("y")
		rc.expect("PONG")
	})
}

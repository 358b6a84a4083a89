package switchboard_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard"
)

func TestPubSub(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	if !nc.IsConnected() || nc.ConnectedURL() != ts.URL() {
		t.Fatalf("IsConnected %v ConnectedURL %q", nc.IsConnected(), nc.ConnectedURL())
	}
	got := make(chan *switchboard.Msg, 10)
	sub, err := nc.Subscribe("greet", func(m *switchboard.Msg) { got <- m })
	if err != nil {
		t.Fatal(err)
	}
	if sub.Subject != "greet" || sub.Queue != "" {
		t.Fatalf("sub = %q %q", sub.Subject, sub.Queue)
	}
	data := []byte("hello")
	if err := nc.Publish("greet", data); err != nil {
		t.Fatal(err)
	}
	data[0] = 'X' // Publish copied it
	if err := nc.Publish("greet", nil); err != nil {
		t.Fatal(err)
	}
	m := recv(t, got)
	if m.Subject != "greet" || string(m.Data) != "hello" || m.Reply != "" || m.Sub != sub || m.Header != nil {
		t.Fatalf("got %+v", m)
	}
	if m := recv(t, got); len(m.Data) != 0 {
		t.Fatalf("empty message has %q", m.Data)
	}
	st := nc.Stats()
	if st.OutMsgs != 2 || st.InMsgs != 2 || st.OutBytes != 5 || st.InBytes != 5 {
		t.Fatalf("stats %+v", st)
	}
	if nc.MaxPayload() != 1<<20 {
		t.Fatalf("MaxPayload %d", nc.MaxPayload())
	}
}

func TestPubSubAcrossConns(t *testing.T) {
	ts := startServer(t)
	a := connect(t, ts.URL(), nil)
	b := connect(t, ts.URL(), nil)
	got := make(chan *switchboard.Msg, 10)
	if _, err := b.Subscribe("x.y", func(m *switchboard.Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	flush(t, b)
	if err := a.PublishRequest("x.y", "reply.here", []byte("1")); err != nil {
		t.Fatal(err)
	}
	m := recv(t, got)
	if m.Reply != "reply.here" || string(m.Data) != "1" {
		t.Fatalf("got %+v", m)
	}
}

func TestMsgDataIsACopy(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	sub, err := nc.SubscribeSync("copy")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		nc.Publish("copy", []byte(fmt.Sprintf("msg-%03d", i)))
	}
	var msgs []*switchboard.Msg
	for range 100 {
		m, err := sub.NextMsg(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	for i, m := range msgs {
		if want := fmt.Sprintf("msg-%03d", i); string(m.Data) != want || m.Subject != "copy" {
			t.Fatalf("msg %d = %q on %q", i, m.Data, m.Subject)
		}
		// Appending to Data must not clobber anything else.
		_ = append(m.Data, "zzzz"...)
	}
}

func TestWildcards(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	star, _ := nc.SubscribeSync("a.*.c")
	full, _ := nc.SubscribeSync("a.>")
	for _, s := range []string{"a.b.c", "a.x.c", "a.b.d", "a.b.c.d", "b.b.c"} {
		if err := nc.Publish(s, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	flush(t, nc)
	expect := func(sub *switchboard.Subscription, want ...string) {
		t.Helper()
		for _, w := range want {
			m, err := sub.NextMsg(ctxT(t))
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != w {
				t.Fatalf("%s: got %s want %s", sub.Subject, m.Subject, w)
			}
		}
		if n, _ := sub.Pending(); n != 0 {
			t.Fatalf("%s: %d extra messages", sub.Subject, n)
		}
	}
	expect(star, "a.b.c", "a.x.c")
	expect(full, "a.b.c", "a.x.c", "a.b.d", "a.b.c.d")
}

func TestQueueGroup(t *testing.T) {
	ts := startServer(t)
	pub := connect(t, ts.URL(), nil)
	const members, n = 3, 300
	var counts [members]atomic.Int64
	var total atomic.Int64
	seen := sync.Map{}
	for i := range members {
		nc := connect(t, ts.URL(), nil)
		if _, err := nc.QueueSubscribe("work", "workers", func(m *switchboard.Msg) {
			if _, dup := seen.LoadOrStore(string(m.Data), i); dup {
				t.Errorf("message %s delivered twice", m.Data)
			}
			counts[i].Add(1)
			total.Add(1)
		}); err != nil {
			t.Fatal(err)
		}
		flush(t, nc)
	}
	for i := range n {
		pub.Publish("work", []byte(fmt.Sprint(i)))
	}
	flush(t, pub)
	waitFor(t, "all messages", func() bool { return total.Load() == n })
	time.Sleep(50 * time.Millisecond)
	if total.Load() != n {
		t.Fatalf("got %d messages, want %d", total.Load(), n)
	}
	for i := range members {
		if counts[i].Load() == 0 {
			t.Errorf("member %d got nothing", i)
		}
	}
}

func TestChanQueueSubscribe(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	ch := make(chan *switchboard.Msg, 100)
	sub, err := nc.ChanQueueSubscribe("cq", "g", ch)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Queue != "g" {
		t.Fatalf("queue %q", sub.Queue)
	}
	nc.Publish("cq", []byte("x"))
	if m := recv(t, ch); string(m.Data) != "x" {
		t.Fatalf("got %q", m.Data)
	}
}

func TestHeaders(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	sub, _ := nc.SubscribeSync("h")
	h := switchboard.Header{}
	h.Set("Trace-Id", "abc")
	h.Add("Multi", "1")
	h.Add("Multi", "2")
	h.Set("lower", "case")
	if err := nc.PublishMsg(&switchboard.Msg{Subject: "h", Reply: "r", Header: h, Data: []byte("body")}); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "body" || m.Reply != "r" {
		t.Fatalf("got %+v", m)
	}
	if m.Header.Get("Trace-Id") != "abc" || m.Header.Get("lower") != "case" || m.Header.Get("Lower") != "" {
		t.Fatalf("header %v", m.Header)
	}
	if v := m.Header.Values("Multi"); len(v) != 2 || v[0] != "1" || v[1] != "2" {
		t.Fatalf("Multi = %v", v)
	}
	// An empty header publishes as plain PUB.
	nc.PublishMsg(&switchboard.Msg{Subject: "h", Header: switchboard.Header{}, Data: []byte("x")})
	if m, _ := sub.NextMsg(ctxT(t)); m.Header != nil {
		t.Fatalf("header %v", m.Header)
	}
}

func TestHeaderMethods(t *testing.T) {
	var nilH switchboard.Header
	if nilH.Get("x") != "" || nilH.Values("x") != nil {
		t.Fatal("nil header")
	}
	h := switchboard.Header{}
	h.Add("K", "1")
	h.Add("K", "2")
	if h.Get("K") != "1" || len(h.Values("K")) != 2 {
		t.Fatal(h)
	}
	h.Set("K", "3")
	if h.Get("K") != "3" || len(h.Values("K")) != 1 {
		t.Fatal(h)
	}
	if h.Get("k") != "" {
		t.Fatal("keys must be case-sensitive")
	}
	h.Del("K")
	if len(h) != 0 {
		t.Fatal(h)
	}
}

func TestAutoUnsubscribe(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	var n atomic.Int64
	sub, _ := nc.Subscribe("auto", func(*switchboard.Msg) { n.Add(1) })
	if err := sub.AutoUnsubscribe(0); !errors.Is(err, switchboard.ErrBadArgument) {
		t.Fatalf("AutoUnsubscribe(0) = %v", err)
	}
	if err := sub.AutoUnsubscribe(5); err != nil {
		t.Fatal(err)
	}
	for range 20 {
		nc.Publish("auto", []byte("x"))
	}
	flush(t, nc)
	waitFor(t, "5 messages", func() bool { return n.Load() == 5 })
	waitFor(t, "subscription to end", func() bool { return !sub.IsValid() })
	time.Sleep(20 * time.Millisecond)
	if n.Load() != 5 {
		t.Fatalf("got %d messages", n.Load())
	}
	if err := sub.Unsubscribe(); !errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("Unsubscribe after auto = %v", err)
	}

	// Count already reached: ends at once.
	sync, _ := nc.SubscribeSync("auto2")
	nc.Publish("auto2", nil)
	nc.Publish("auto2", nil)
	flush(t, nc)
	if err := sync.AutoUnsubscribe(1); err != nil {
		t.Fatal(err)
	}
	if sync.IsValid() {
		t.Fatal("still valid")
	}
}

func TestUnsubscribe(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	var n atomic.Int64
	sub, _ := nc.Subscribe("u", func(*switchboard.Msg) { n.Add(1) })
	nc.Publish("u", nil)
	flush(t, nc)
	waitFor(t, "first message", func() bool { return n.Load() == 1 })
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(); !errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("second Unsubscribe = %v", err)
	}
	nc.Publish("u", nil)
	flush(t, nc)
	time.Sleep(20 * time.Millisecond)
	if n.Load() != 1 {
		t.Fatalf("got %d messages after Unsubscribe", n.Load())
	}
	// Unsubscribing from inside the callback.
	var m atomic.Int64
	var self *switchboard.Subscription
	ready := make(chan struct{})
	self, _ = nc.Subscribe("u2", func(*switchboard.Msg) {
		<-ready
		m.Add(1)
		if err := self.Unsubscribe(); err != nil {
			t.Error(err)
		}
	})
	close(ready)
	for range 10 {
		nc.Publish("u2", nil)
	}
	flush(t, nc)
	time.Sleep(20 * time.Millisecond)
	if m.Load() != 1 {
		t.Fatalf("callback ran %d times after unsubscribing itself", m.Load())
	}
}

func TestChanSubscribe(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	ch := make(chan *switchboard.Msg, 64)
	sub, err := nc.ChanSubscribe("c.>", ch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.ChanSubscribe("c", nil); !errors.Is(err, switchboard.ErrBadArgument) {
		t.Fatalf("nil chan: %v", err)
	}
	for i := range 10 {
		nc.Publish(fmt.Sprintf("c.%d", i), []byte{byte(i)})
	}
	for i := range 10 {
		m := recv(t, ch)
		if m.Subject != fmt.Sprintf("c.%d", i) || m.Data[0] != byte(i) {
			t.Fatalf("msg %d: %+v", i, m)
		}
	}
	if n, _ := sub.Pending(); n != 0 {
		t.Fatalf("pending %d", n)
	}
}

func TestSubscribeSync(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	sub, _ := nc.SubscribeSync("s")
	start := time.Now()
	_, err := sub.NextMsg(ctxT(t, 50*time.Millisecond))
	if !errors.Is(err, switchboard.ErrTimeout) || time.Since(start) < 40*time.Millisecond {
		t.Fatalf("NextMsg on empty = %v after %v", err, time.Since(start))
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		nc.Publish("s", []byte("late"))
	}()
	m, err := sub.NextMsg(ctxT(t))
	if err != nil || string(m.Data) != "late" {
		t.Fatalf("NextMsg = %v, %v", m, err)
	}
	nc.Publish("s", []byte("1"))
	nc.Publish("s", []byte("22"))
	flush(t, nc)
	if n, b := sub.Pending(); n != 2 || b != 3 {
		t.Fatalf("Pending = %d, %d", n, b)
	}
	cb, _ := nc.Subscribe("s2", func(*switchboard.Msg) {})
	if _, err := cb.NextMsg(ctxT(t)); !errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("NextMsg on callback sub = %v", err)
	}
	sub.Unsubscribe()
	if _, err := sub.NextMsg(ctxT(t)); !errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("NextMsg after Unsubscribe = %v", err)
	}
}

func TestFlush(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				nc.Publish("f", []byte("x"))
				if err := nc.Flush(ctxT(t)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := nc.Flush(ctx); err == nil {
		t.Fatal("Flush with a cancelled ctx succeeded")
	}
}

func TestConcurrentPublishOrder(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	const pubs, n = 4, 2000
	sub, _ := nc.SubscribeSync("order.*")
	sub.SetPendingLimits(-1, -1)
	var wg sync.WaitGroup
	for p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			subj := fmt.Sprintf("order.%d", p)
			for i := range n {
				if err := nc.Publish(subj, []byte(fmt.Sprint(i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	flush(t, nc)
	next := make(map[string]int)
	for range pubs * n {
		m, err := sub.NextMsg(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprint(next[m.Subject]); string(m.Data) != want {
			t.Fatalf("%s: got %s want %s", m.Subject, m.Data, want)
		}
		next[m.Subject]++
	}
	if sub.Dropped() != 0 {
		t.Fatalf("dropped %d", sub.Dropped())
	}
}

func TestNoEcho(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), &switchboard.Options{NoEcho: true})
	other := connect(t, ts.URL(), nil)
	sub, _ := nc.SubscribeSync("echo")
	flush(t, nc)
	nc.Publish("echo", []byte("mine"))
	other.Publish("echo", []byte("theirs"))
	m, err := sub.NextMsg(ctxT(t))
	if err != nil || string(m.Data) != "theirs" {
		t.Fatalf("got %v %v", m, err)
	}
}

package switchboard_test

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"switchboard"
)

func TestSlowConsumer(t *testing.T) {
	ts := startServer(t)
	errs := make(chan error, 100)
	var errSub atomic.Pointer[switchboard.Subscription]
	nc := connect(t, ts.URL(), &switchboard.Options{
		PendingMsgsLimit: 10,
		ErrorHandler: func(_ *switchboard.Conn, s *switchboard.Subscription, err error) {
			errSub.Store(s)
			errs <- err
		},
	})
	release := make(chan struct{})
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })
	var got atomic.Int64
	entered := make(chan struct{}, 1)
	sub, _ := nc.Subscribe("slow", func(*switchboard.Msg) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
		got.Add(1)
	})
	fast, _ := nc.SubscribeSync("slow") // another subscription keeps going
	fast.SetPendingLimits(-1, -1)
	nc.Publish("slow", []byte("x"))
	recv(t, entered) // the callback holds one message; 10 more fit
	for range 99 {
		nc.Publish("slow", []byte("x"))
	}
	flush(t, nc)
	if err := recv(t, errs); !errors.Is(err, switchboard.ErrSlowConsumer) {
		t.Fatalf("ErrorHandler got %v", err)
	}
	if errSub.Load() != sub {
		t.Fatal("ErrorHandler got another subscription")
	}
	if d := sub.Dropped(); d != 89 {
		t.Fatalf("Dropped = %d", d)
	}
	if n, b := sub.Pending(); n != 10 || b != 10 {
		t.Fatalf("Pending = %d, %d; dropped %d", n, b, sub.Dropped())
	}
	for i := range 100 {
		if _, err := fast.NextMsg(ctxT(t)); err != nil {
			t.Fatalf("other subscription, message %d: %v", i, err)
		}
	}
	// Once per episode.
	time.Sleep(20 * time.Millisecond)
	if n := len(errs); n > 0 {
		t.Fatalf("%d more slow consumer reports", n)
	}
	releaseOnce.Do(func() { close(release) })
	waitFor(t, "pending callbacks", func() bool { return got.Load() == int64(100-sub.Dropped()) })

	// A SubscribeSync subscription also reports through NextMsg, once.
	ss, _ := nc.SubscribeSync("slow2")
	ss.SetPendingLimits(3, -1)
	for range 10 {
		nc.Publish("slow2", nil)
	}
	flush(t, nc)
	if err := recv(t, errs); !errors.Is(err, switchboard.ErrSlowConsumer) {
		t.Fatalf("ErrorHandler got %v", err)
	}
	if _, err := ss.NextMsg(ctxT(t)); !errors.Is(err, switchboard.ErrSlowConsumer) {
		t.Fatalf("NextMsg after drops = %v", err)
	}
	for range 3 {
		if _, err := ss.NextMsg(ctxT(t)); err != nil {
			t.Fatalf("NextMsg = %v", err)
		}
	}
	if ss.Dropped() != 7 {
		t.Fatalf("Dropped %d", ss.Dropped())
	}
}

func TestChanSlowConsumer(t *testing.T) {
	ts := startServer(t)
	errs := make(chan error, 100)
	nc := connect(t, ts.URL(), &switchboard.Options{
		ErrorHandler: func(_ *switchboard.Conn, _ *switchboard.Subscription, err error) { errs <- err },
	})
	ch := make(chan *switchboard.Msg, 5)
	sub, _ := nc.ChanSubscribe("full", ch)
	for range 20 {
		nc.Publish("full", nil)
	}
	flush(t, nc)
	if err := recv(t, errs); !errors.Is(err, switchboard.ErrSlowConsumer) {
		t.Fatal(err)
	}
	if sub.Dropped() != 15 || len(ch) != 5 {
		t.Fatalf("Dropped %d, len %d", sub.Dropped(), len(ch))
	}
	if err := sub.SetPendingLimits(1, 1); !errors.Is(err, switchboard.ErrBadArgument) {
		t.Fatalf("SetPendingLimits on chan = %v", err)
	}
}

func TestMaxPayload(t *testing.T) {
	ts := startServer(t, func(o *server.Options) { o.MaxPayload = 1024 })
	nc := connect(t, ts.URL(), nil)
	if nc.MaxPayload() != 1024 {
		t.Fatalf("MaxPayload %d", nc.MaxPayload())
	}
	sub, _ := nc.SubscribeSync("big")
	if err := nc.Publish("big", make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	err := nc.Publish("big", make([]byte, 1025))
	if !errors.Is(err, switchboard.ErrMaxPayload) {
		t.Fatalf("Publish 1025 = %v", err)
	}
	h := switchboard.Header{"K": {strings.Repeat("v", 100)}}
	if err := nc.PublishMsg(&switchboard.Msg{Subject: "big", Header: h, Data: make([]byte, 1000)}); !errors.Is(err, switchboard.ErrMaxPayload) {
		t.Fatalf("PublishMsg with header = %v", err)
	}
	if _, err := nc.Request(ctxT(t), "big", make([]byte, 2000)); !errors.Is(err, switchboard.ErrMaxPayload) {
		t.Fatalf("Request = %v", err)
	}
	if m, err := sub.NextMsg(ctxT(t)); err != nil || len(m.Data) != 1024 {
		t.Fatalf("NextMsg = %v", err)
	}
	if !nc.IsConnected() {
		t.Fatal("disconnected")
	}
}

func TestBadSubjects(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	for _, s := range []string{"", " ", "a b", "a\tb", "a\r\nb", "a..b", ".a", "a.", "*", "a.*", "a.>", ">", strings.Repeat("a", 5000)} {
		if err := nc.Publish(s, nil); !errors.Is(err, switchboard.ErrBadSubject) {
			t.Errorf("Publish(%q) = %v", s, err)
		}
	}
	if err := nc.PublishRequest("ok", "bad reply", nil); !errors.Is(err, switchboard.ErrBadSubject) {
		t.Errorf("bad reply = %v", err)
	}
	for _, s := range []string{"", "a b", "a..b", "a.>.b", ">.a", "a.", "\n"} {
		if _, err := nc.SubscribeSync(s); !errors.Is(err, switchboard.ErrBadSubject) {
			t.Errorf("Subscribe(%q) = %v", s, err)
		}
	}
	for _, s := range []string{"a.*", "a.>", "*", ">", "*.*.>", "a*b.c>"} {
		if _, err := nc.SubscribeSync(s); err != nil {
			t.Errorf("Subscribe(%q) = %v", s, err)
		}
	}
	for _, q := range []string{"a b", "\t"} {
		if _, err := nc.QueueSubscribeSync("q", q); !errors.Is(err, switchboard.ErrBadQueue) {
			t.Errorf("QueueSubscribe queue %q = %v", q, err)
		}
	}
	if _, err := nc.Subscribe("ok", nil); !errors.Is(err, switchboard.ErrBadArgument) {
		t.Errorf("nil callback = %v", err)
	}
	for _, s := range []string{"a*b", "a>b", "$SB.x", "_INBOX.x.y"} {
		if err := nc.Publish(s, nil); err != nil {
			t.Errorf("Publish(%q) = %v", s, err)
		}
	}
	flush(t, nc)
}

func TestLargeMessages(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	sub, _ := nc.SubscribeSync("large")
	payload := bytes.Repeat([]byte("0123456789abcdef"), (1<<20)/16)
	for range 5 {
		if err := nc.Publish("large", payload); err != nil {
			t.Fatal(err)
		}
	}
	for range 5 {
		m, err := sub.NextMsg(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(m.Data, payload) {
			t.Fatal("payload mismatch")
		}
	}
}

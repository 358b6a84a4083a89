package switchboard_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"switchboard"
)

// Regression tests for bugs found in review; each failed before its fix.

// Every NextMsg caller blocked on a subscription returns when it ends, not
// only the first.
func TestNextMsgWakesEveryWaiter(t *testing.T) {
	for _, how := range []string{"unsubscribe", "close"} {
		t.Run(how, func(t *testing.T) {
			ts := startServer(t)
			nc := connect(t, ts.URL(), nil)
			sub, err := nc.SubscribeSync("two.waiters")
			if err != nil {
				t.Fatal(err)
			}
			errs := make(chan error, 2)
			for range 2 {
				go func() { _, err := sub.NextMsg(context.Background()); errs <- err }()
			}
			time.Sleep(100 * time.Millisecond)
			if how == "close" {
				nc.Close()
			} else {
				sub.Unsubscribe()
			}
			for i := range 2 {
				select {
				case <-errs:
				case <-time.After(5 * time.Second):
					t.Fatalf("NextMsg waiter %d still blocked after %s", i+1, how)
				}
			}
		})
	}
}

// A Request's ctx bounds its wait while the outbound buffer is full.
func TestRequestHonoursCtxUnderBackpressure(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	nc := connect(t, px.URL(), &switchboard.Options{WriteBufferLimit: 64 << 10})
	flush(t, nc)
	px.Freeze(toServer)
	defer px.Thaw()
	stop := make(chan struct{})
	defer close(stop)
	for range 2 {
		go func() {
			data := make([]byte, 32<<10)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if nc.Publish("bp.fill", data) != nil {
					return
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := nc.Request(ctx, "bp.req", nil); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, switchboard.ErrTimeout) {
			t.Fatalf("Request under backpressure: %v, want ErrTimeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Request with a 200 ms ctx still blocked after 5 s")
	}
	px.Thaw()
}

// A subject that fits the hub's control line reaches wildcard subscribers,
// whose MSG line is longer than the PUB line (it adds the sid).
func TestLongSubjectReachesWildcardSubscriber(t *testing.T) {
	ts := startServer(t)
	sub := connect(t, ts.URL(), nil)
	got := make(chan *switchboard.Msg, 1)
	sub.Subscribe(">", func(m *switchboard.Msg) { got <- m })
	flush(t, sub)
	pub := connect(t, ts.URL(), nil)
	subject := strings.Repeat("a", 4088)
	if err := pub.Publish(subject, []byte("x")); err != nil {
		t.Fatal(err)
	}
	flush(t, pub)
	select {
	case m := <-got:
		if m.Subject != subject {
			t.Fatalf("got subject of %d bytes", len(m.Subject))
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("subscriber never got it; reconnects=%d", sub.Stats().Reconnects)
	}
}

// A subject and reply too long for one protocol line fail in Publish
// instead of costing the connection.
func TestOverlongProtocolLineFailsLocally(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	err := nc.PublishRequest(strings.Repeat("a", 4090), "_INBOX.abc", []byte("x"))
	if !errors.Is(err, switchboard.ErrBadSubject) {
		t.Fatalf("PublishRequest with an overlong line: %v, want ErrBadSubject", err)
	}
	err = nc.PublishRequest("a", strings.Repeat("r", 4090), []byte("x"))
	if !errors.Is(err, switchboard.ErrBadSubject) {
		t.Fatalf("overlong reply: %v, want ErrBadSubject", err)
	}
	flush(t, nc)
	if n := nc.Stats().Reconnects; n != 0 {
		t.Fatalf("%d reconnects", n)
	}
}

// Flush calls that time out while the hub is unreachable leave nothing
// behind: after the outage one Flush still works and no stale waiter
// completes it early or late.
func TestAbandonedFlushesDuringOutage(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	nc := connect(t, px.URL(), &switchboard.Options{ReconnectWait: 20 * time.Millisecond, MaxReconnectWait: 50 * time.Millisecond})
	flush(t, nc)
	px.Down()
	px.Cut()
	waitFor(t, "disconnect", func() bool { return !nc.IsConnected() })
	for range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		if err := nc.Flush(ctx); !errors.Is(err, switchboard.ErrTimeout) {
			t.Fatalf("Flush during outage: %v", err)
		}
		cancel()
	}
	if n := switchboard.PendingPongs(nc); n != 0 {
		t.Fatalf("%d abandoned Flush waiters kept", n)
	}
	px.Up()
	waitFor(t, "reconnect", nc.IsConnected)
	flush(t, nc)
}

// Header keys and values that would not survive the wire are refused with
// a clear error instead of being sent mangled.
func TestBadHeadersAreRefused(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	for _, h := range []switchboard.Header{
		{"": {"x"}},
		{"Bad:Key": {"x"}},
		{"Bad Key": {"x"}},
		{"Tab\tKey": {"x"}},
		{"Key": {"two\r\nlines"}},
	} {
		err := nc.PublishMsg(&switchboard.Msg{Subject: "h", Header: h, Data: []byte("x")})
		if !errors.Is(err, switchboard.ErrBadArgument) {
			t.Errorf("header %q: %v, want ErrBadArgument", h, err)
		}
	}
	ok := switchboard.Header{"Trace-Id": {"abc def"}, "X-Count": {"1", "2"}}
	if err := nc.PublishMsg(&switchboard.Msg{Subject: "h", Header: ok}); err != nil {
		t.Fatalf("valid header refused: %v", err)
	}
	flush(t, nc)
}

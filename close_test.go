package switchboard_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"switchboard"
)

func TestDrain(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	var got atomic.Int64
	_, err := nc.Subscribe("d", func(*switchboard.Msg) {
		time.Sleep(100 * time.Microsecond)
		got.Add(1)
	})
	if err != nil {
		t.Fatal(err)
	}
	var sgot atomic.Int64
	sub2, _ := nc.Subscribe("d2", func(*switchboard.Msg) { sgot.Add(1) })
	_ = sub2
	const n = 500
	for range n {
		nc.Publish("d", []byte("x"))
		nc.Publish("d2", []byte("x"))
	}
	closed := make(chan struct{})
	_ = closed
	if err := nc.Drain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got.Load() != n || sgot.Load() != n {
		t.Fatalf("Drain returned after %d and %d of %d messages", got.Load(), sgot.Load(), n)
	}
	if !nc.IsClosed() {
		t.Fatal("not closed after Drain")
	}
	if err := nc.Drain(ctxT(t)); !errors.Is(err, switchboard.ErrClosed) {
		t.Fatalf("second Drain = %v", err)
	}
}

func TestDrainRejectsSubscribe(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	entered := make(chan struct{})
	release := make(chan struct{})
	nc.Subscribe("slow", func(*switchboard.Msg) {
		close(entered)
		<-release
	})
	nc.Publish("slow", nil)
	<-entered
	done := make(chan error)
	go func() { done <- nc.Drain(ctxT(t)) }()
	waitFor(t, "draining", func() bool {
		_, err := nc.SubscribeSync("late")
		return errors.Is(err, switchboard.ErrDraining)
	})
	if _, err := nc.Request(ctxT(t), "x", nil); !errors.Is(err, switchboard.ErrDraining) {
		t.Fatalf("Request while draining = %v", err)
	}
	if err := nc.Publish("x", nil); err != nil {
		t.Fatalf("Publish while draining = %v", err)
	}
	close(release)
	if err := recv(t, done); err != nil {
		t.Fatal(err)
	}
}

func TestDrainTimeout(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	release := make(chan struct{})
	nc.Subscribe("stuck", func(*switchboard.Msg) { <-release })
	nc.Publish("stuck", nil)
	flush(t, nc)
	start := time.Now()
	err := nc.Drain(ctxT(t, 50*time.Millisecond))
	if !errors.Is(err, switchboard.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Drain = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Drain took %v", d)
	}
	if !nc.IsClosed() {
		t.Fatal("not closed")
	}
	// Drain closed the Conn without waiting; Close waits for the callback.
	time.AfterFunc(20*time.Millisecond, func() { close(release) })
	nc.Close()
}

func TestSubscriptionDrain(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	var got atomic.Int64
	sub, _ := nc.Subscribe("sd", func(*switchboard.Msg) {
		time.Sleep(50 * time.Microsecond)
		got.Add(1)
	})
	for range 200 {
		nc.Publish("sd", nil)
	}
	if err := sub.Drain(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if got.Load() != 200 {
		t.Fatalf("got %d of 200", got.Load())
	}
	if sub.IsValid() {
		t.Fatal("valid after Drain")
	}
	nc.Publish("sd", nil)
	flush(t, nc)
	if got.Load() != 200 {
		t.Fatal("message after Drain")
	}
	if !nc.IsConnected() {
		t.Fatal("subscription Drain closed the Conn")
	}
}

func TestClose(t *testing.T) {
	ts := startServer(t)
	var closedCalls atomic.Int64
	nc := connect(t, ts.URL(), &switchboard.Options{ClosedHandler: func(*switchboard.Conn) { closedCalls.Add(1) }})
	sub, _ := nc.SubscribeSync("c")
	sub2, _ := nc.Subscribe("c", func(*switchboard.Msg) {})
	nc.Publish("c", []byte("before close"))
	if err := nc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := nc.Close(); err != nil {
		t.Fatal(err)
	}
	if closedCalls.Load() != 1 {
		t.Fatalf("ClosedHandler ran %d times", closedCalls.Load())
	}
	if nc.IsConnected() || !nc.IsClosed() || nc.ConnectedURL() != "" {
		t.Fatal("state after Close")
	}
	for name, err := range map[string]error{
		"Publish":     nc.Publish("c", nil),
		"Flush":       nc.Flush(ctxT(t)),
		"Unsubscribe": sub2.Unsubscribe(),
		"Drain":       nc.Drain(ctxT(t)),
	} {
		if !errors.Is(err, switchboard.ErrClosed) {
			t.Errorf("%s after Close = %v", name, err)
		}
	}
	if _, err := nc.Subscribe("c", func(*switchboard.Msg) {}); !errors.Is(err, switchboard.ErrClosed) {
		t.Errorf("Subscribe after Close = %v", err)
	}
	if _, err := nc.Request(ctxT(t), "c", nil); !errors.Is(err, switchboard.ErrClosed) {
		t.Errorf("Request after Close = %v", err)
	}
	if _, err := sub.NextMsg(ctxT(t)); !errors.Is(err, switchboard.ErrClosed) {
		t.Errorf("NextMsg after Close = %v", err)
	}
}

func TestCloseFlushesPublishes(t *testing.T) {
	ts := startServer(t)
	recvc := connect(t, ts.URL(), nil)
	sub, _ := recvc.SubscribeSync("last")
	flush(t, recvc)
	nc := connect(t, ts.URL(), nil)
	for range 1000 {
		nc.Publish("last", make([]byte, 100))
	}
	nc.Close()
	for i := range 1000 {
		if _, err := sub.NextMsg(ctxT(t)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

func TestCloseFromCallbackAndHandler(t *testing.T) {
	ts := startServer(t)
	done := make(chan struct{})
	nc := connect(t, ts.URL(), &switchboard.Options{
		ClosedHandler: func(c *switchboard.Conn) { c.Close(); close(done) },
	})
	nc.Subscribe("bye", func(m *switchboard.Msg) {
		nc.Close() // must not deadlock
	})
	nc.Publish("bye", nil)
	recv(t, done)
	nc.Close()
}

func TestDrainFromCallback(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	errc := make(chan error, 1)
	nc.Subscribe("drainme", func(m *switchboard.Msg) {
		errc <- nc.Drain(ctxT(t))
	})
	nc.Publish("drainme", nil)
	if err := recv(t, errc); err != nil {
		t.Fatal(err)
	}
	nc.Close()
}

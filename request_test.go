package switchboard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"switchboard"
)

func TestRequestReply(t *testing.T) {
	ts := startServer(t)
	server := connect(t, ts.URL(), nil)
	client := connect(t, ts.URL(), nil)
	server.Subscribe("svc.echo", func(m *switchboard.Msg) {
		if err := m.Respond(append([]byte("echo: "), m.Data...)); err != nil {
			t.Error(err)
		}
	})
	server.Subscribe("svc.hdr", func(m *switchboard.Msg) {
		h := switchboard.Header{}
		h.Set("X-In", m.Header.Get("X-Req"))
		if err := m.RespondMsg(&switchboard.Msg{Header: h, Data: []byte("ok")}); err != nil {
			t.Error(err)
		}
	})
	flush(t, server)

	m, err := client.Request(ctxT(t), "svc.echo", []byte("hi"))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "echo: hi" || !strings.HasPrefix(m.Subject, switchboard.InboxPrefix) {
		t.Fatalf("reply %q on %q", m.Data, m.Subject)
	}
	// The shared request inbox cannot be unsubscribed by accident.
	if err := m.Sub.Unsubscribe(); !errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("Unsubscribe of the inbox = %v", err)
	}
	h := switchboard.Header{"X-Req": {"42"}}
	m, err = client.RequestMsg(ctxT(t), &switchboard.Msg{Subject: "svc.hdr", Header: h})
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("X-In") != "42" || string(m.Data) != "ok" {
		t.Fatalf("reply %+v", m)
	}

	// Many concurrent requests each get their own reply.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := fmt.Sprint(i)
			for range 10 {
				m, err := client.Request(ctxT(t), "svc.echo", []byte(want))
				if err != nil {
					t.Error(err)
					return
				}
				if string(m.Data) != "echo: "+want {
					t.Errorf("got %q want %q", m.Data, want)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestRespondErrors(t *testing.T) {
	m := &switchboard.Msg{Subject: "x", Reply: "y"}
	if err := m.Respond(nil); !errors.Is(err, switchboard.ErrNotBound) {
		t.Fatalf("Respond unbound = %v", err)
	}
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	sub, _ := nc.SubscribeSync("noreply")
	nc.Publish("noreply", nil)
	got, err := sub.NextMsg(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Respond(nil); !errors.Is(err, switchboard.ErrNoReply) {
		t.Fatalf("Respond without reply = %v", err)
	}
}

func TestNoResponders(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	start := time.Now()
	_, err := nc.Request(ctxT(t), "nobody.home", []byte("?"))
	if !errors.Is(err, switchboard.ErrNoResponders) {
		t.Fatalf("Request = %v", err)
	}
	if errors.Is(err, switchboard.ErrTimeout) {
		t.Fatal("no responders must not look like a timeout")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestRequestTimeout(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	nc.Subscribe("silent", func(*switchboard.Msg) {}) // never responds
	flush(t, nc)
	start := time.Now()
	_, err := nc.Request(ctxT(t, 50*time.Millisecond), "silent", nil)
	if !errors.Is(err, switchboard.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Request = %v", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Fatalf("returned after %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	_, err = nc.Request(ctx, "silent", nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, switchboard.ErrTimeout) {
		t.Fatalf("cancelled Request = %v", err)
	}
	// A late reply to a request that gave up is dropped quietly.
	late := connect(t, ts.URL(), nil)
	late.Subscribe("late", func(m *switchboard.Msg) {
		time.Sleep(50 * time.Millisecond)
		m.Respond([]byte("late"))
	})
	flush(t, late)
	if _, err := nc.Request(ctxT(t, 10*time.Millisecond), "late", nil); !errors.Is(err, switchboard.ErrTimeout) {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	nc.Subscribe("fast", func(m *switchboard.Msg) { m.Respond([]byte("fast")) })
	m, err := nc.Request(ctxT(t), "fast", nil)
	if err != nil || string(m.Data) != "fast" {
		t.Fatalf("got %v %v", m, err)
	}
}

func TestRequestWhileClosing(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	nc.Subscribe("silent", func(*switchboard.Msg) {})
	errc := make(chan error, 1)
	go func() {
		_, err := nc.Request(context.Background(), "silent", nil)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	nc.Close()
	if err := recv(t, errc); !errors.Is(err, switchboard.ErrClosed) {
		t.Fatalf("Request during Close = %v", err)
	}
}

func TestNewInbox(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		in := switchboard.NewInbox()
		if !strings.HasPrefix(in, "_INBOX.") || len(in) != len("_INBOX.")+22 || strings.ContainsAny(in[7:], ".* >") {
			t.Fatalf("inbox %q", in)
		}
		if seen[in] {
			t.Fatalf("duplicate %q", in)
		}
		seen[in] = true
	}
}

func TestPublishRequestWithInbox(t *testing.T) {
	ts := startServer(t)
	nc := connect(t, ts.URL(), nil)
	nc.Subscribe("svc", func(m *switchboard.Msg) { m.Respond([]byte("pong")) })
	inbox := switchboard.NewInbox()
	sub, _ := nc.SubscribeSync(inbox)
	if err := nc.PublishRequest("svc", inbox, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(ctxT(t))
	if err != nil || string(m.Data) != "pong" {
		t.Fatalf("got %v %v", m, err)
	}
}

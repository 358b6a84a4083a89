package switchboard_test

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"switchboard"
)

func TestInteropNatsGo(t *testing.T) {
	ts := startServer(t)
	ours := connect(t, ts.URL(), nil)
	theirs, err := nats.Connect(ts.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()

	// nats.go publishes with headers, we receive.
	sub, _ := ours.SubscribeSync("interop.a")
	flush(t, ours)
	nm := nats.NewMsg("interop.a")
	nm.Header.Set("Trace-Id", "t1")
	nm.Header.Add("Multi", "1")
	nm.Header.Add("Multi", "2")
	nm.Data = []byte("from nats.go")
	nm.Reply = "their.reply"
	if err := theirs.PublishMsg(nm); err != nil {
		t.Fatal(err)
	}
	theirs.Flush()
	m, err := sub.NextMsg(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "from nats.go" || m.Reply != "their.reply" || m.Header.Get("Trace-Id") != "t1" || len(m.Header.Values("Multi")) != 2 {
		t.Fatalf("got %+v", m)
	}

	// We publish with headers, nats.go receives.
	nsub, err := theirs.SubscribeSync("interop.b")
	if err != nil {
		t.Fatal(err)
	}
	theirs.Flush()
	h := switchboard.Header{}
	h.Set("Trace-Id", "t2")
	if err := ours.PublishMsg(&switchboard.Msg{Subject: "interop.b", Header: h, Data: []byte("from switchboard")}); err != nil {
		t.Fatal(err)
	}
	got, err := nsub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data) != "from switchboard" || got.Header.Get("Trace-Id") != "t2" {
		t.Fatalf("nats.go got %+v", got)
	}

	// Requests both ways.
	theirs.Subscribe("interop.svc", func(m *nats.Msg) { m.Respond(append([]byte("nats.go: "), m.Data...)) })
	theirs.Flush()
	r, err := ours.Request(ctxT(t), "interop.svc", []byte("hi"))
	if err != nil || string(r.Data) != "nats.go: hi" {
		t.Fatalf("Request to nats.go: %v %v", r, err)
	}
	ours.Subscribe("interop.our", func(m *switchboard.Msg) { m.Respond(append([]byte("switchboard: "), m.Data...)) })
	flush(t, ours)
	nr, err := theirs.Request("interop.our", []byte("hi"), 5*time.Second)
	if err != nil || string(nr.Data) != "switchboard: hi" {
		t.Fatalf("Request from nats.go: %v %v", nr, err)
	}
	// nats.go sees our no-responders handling the same way.
	if _, err := theirs.Request("interop.none", nil, 5*time.Second); !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("nats.go no responders: %v", err)
	}
}

func TestAuthorization(t *testing.T) {
	ts := startServer(t, func(o *server.Options) { o.Authorization = "s3cret" })
	_, err := switchboard.Connect(ctxT(t), ts.URL(), &switchboard.Options{Token: "wrong"})
	if !errors.Is(err, switchboard.ErrAuthorization) {
		t.Fatalf("wrong token: %v", err)
	}
	_, err = switchboard.Connect(ctxT(t), ts.URL(), nil)
	if !errors.Is(err, switchboard.ErrAuthorization) {
		t.Fatalf("no token: %v", err)
	}
	nc := connect(t, ts.URL(), &switchboard.Options{Token: "s3cret", Name: "tok"})
	flush(t, nc)

	us := startServer(t, func(o *server.Options) {
		o.Users = []*server.User{{Username: "alice", Password: "pw"}}
	})
	if _, err := switchboard.Connect(ctxT(t), us.URL(), &switchboard.Options{User: "alice", Password: "nope"}); !errors.Is(err, switchboard.ErrAuthorization) {
		t.Fatalf("bad password: %v", err)
	}
	nc2 := connect(t, us.URL(), &switchboard.Options{User: "alice", Password: "pw"})
	flush(t, nc2)
}

func TestPermissionErrors(t *testing.T) {
	ts := startServer(t, func(o *server.Options) {
		o.Users = []*server.User{{
			Username: "bob", Password: "pw",
			Permissions: &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: []string{"ok.>"}},
				Subscribe: &server.SubjectPermission{Allow: []string{"ok.>"}},
			},
		}}
	})
	ev := newEvents()
	var errSub *switchboard.Subscription
	o := ev.options(&switchboard.Options{User: "bob", Password: "pw"})
	inner := o.ErrorHandler
	o.ErrorHandler = func(c *switchboard.Conn, s *switchboard.Subscription, err error) {
		if s != nil {
			errSub = s
		}
		inner(c, s, err)
	}
	nc := connect(t, ts.URL(), o)
	secret, _ := nc.SubscribeSync("secret.stuff")
	err := recv(t, ev.errc)
	if !errors.Is(err, switchboard.ErrPermission) {
		t.Fatalf("subscribe: %v", err)
	}
	if errSub != secret {
		t.Fatalf("error reported for %v", errSub)
	}
	nc.Publish("forbidden", nil)
	if err := recv(t, ev.errc); !errors.Is(err, switchboard.ErrPermission) {
		t.Fatalf("publish: %v", err)
	}
	// The connection stays up.
	sub, _ := nc.SubscribeSync("ok.x")
	nc.Publish("ok.x", []byte("fine"))
	if m, err := sub.NextMsg(ctxT(t)); err != nil || string(m.Data) != "fine" {
		t.Fatalf("%v %v", m, err)
	}
	if !nc.IsConnected() || ev.disconnects.Load() != 0 {
		t.Fatal("disconnected by a permissions error")
	}
}

func TestServerErrorIs(t *testing.T) {
	for text, want := range map[string]error{
		"Permissions Violation for Publish to \"x\"": switchboard.ErrPermission,
		"Authorization Violation":                    switchboard.ErrAuthorization,
		"User Authentication Expired":                switchboard.ErrAuthorization,
		"Maximum Payload Violation":                  switchboard.ErrMaxPayload,
		"Slow Consumer":                              switchboard.ErrSlowConsumer,
		"Invalid Publish Subject":                    switchboard.ErrBadSubject,
		"Stale Connection":                           switchboard.ErrStaleConnection,
	} {
		err := error(&switchboard.ServerError{Msg: text})
		if !errors.Is(err, want) {
			t.Errorf("%q does not match %v", text, want)
		}
		if errors.Is(err, switchboard.ErrClosed) {
			t.Errorf("%q matches ErrClosed", text)
		}
	}
	if errors.Is(&switchboard.ServerError{Msg: "Unknown Protocol Operation"}, switchboard.ErrPermission) {
		t.Error("unknown op matches ErrPermission")
	}
}

package switchboard_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"switchboard"
)

// events records handler calls.
type events struct {
	disconnects atomic.Int64
	reconnects  atomic.Int64
	closed      atomic.Int64
	mu          sync.Mutex
	errs        []error
	causes      []error
	errc        chan error
	reconnected chan struct{}
}

func newEvents() *events {
	return &events{errc: make(chan error, 100), reconnected: make(chan struct{}, 100)}
}

func (e *events) options(o *switchboard.Options) *switchboard.Options {
	if o == nil {
		o = &switchboard.Options{}
	}
	o.DisconnectHandler = func(_ *switchboard.Conn, err error) {
		e.mu.Lock()
		e.causes = append(e.causes, err)
		e.mu.Unlock()
		e.disconnects.Add(1)
	}
	o.ReconnectHandler = func(*switchboard.Conn) {
		e.reconnects.Add(1)
		e.reconnected <- struct{}{}
	}
	o.ClosedHandler = func(*switchboard.Conn) { e.closed.Add(1) }
	o.ErrorHandler = func(_ *switchboard.Conn, _ *switchboard.Subscription, err error) {
		e.mu.Lock()
		e.errs = append(e.errs, err)
		e.mu.Unlock()
		e.errc <- err
	}
	return o
}

func TestReconnectServerRestart(t *testing.T) {
	ts := startServer(t)
	ev := newEvents()
	nc := connect(t, ts.URL(), ev.options(nil))
	got := make(chan string, 100)
	nc.Subscribe("r.>", func(m *switchboard.Msg) { got <- string(m.Data) })
	auto, _ := nc.SubscribeSync("auto")
	auto.AutoUnsubscribe(3)
	nc.Publish("auto", nil) // 1 of 3 before the outage
	nc.Publish("r.1", []byte("before"))
	if v := recv(t, got); v != "before" {
		t.Fatal(v)
	}
	if _, err := auto.NextMsg(ctxT(t)); err != nil {
		t.Fatal(err)
	}

	ts.Shutdown()
	waitFor(t, "disconnect", func() bool { return !nc.IsConnected() })
	for i := range 10 {
		if err := nc.Publish("r.2", []byte(fmt.Sprint("during-", i))); err != nil {
			t.Fatal(err)
		}
	}
	flushed := make(chan error, 1)
	go func() { flushed <- nc.Flush(ctxT(t)) }()
	ts.Restart()
	recv(t, ev.reconnected)
	if err := recv(t, flushed); err != nil {
		t.Fatalf("Flush across the outage: %v", err)
	}
	for i := range 10 {
		if v := recv(t, got); v != fmt.Sprint("during-", i) {
			t.Fatalf("got %q want during-%d", v, i)
		}
	}
	// The subscription resumed for other publishers too.
	other := connect(t, ts.URL(), nil)
	other.Publish("r.3", []byte("after"))
	if v := recv(t, got); v != "after" {
		t.Fatal(v)
	}
	// The AutoUnsubscribe count carried over: 2 more, not 3.
	for range 5 {
		other.Publish("auto", nil)
	}
	flush(t, other)
	for range 2 {
		if _, err := auto.NextMsg(ctxT(t)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := auto.NextMsg(ctxT(t, 50*time.Millisecond)); !errors.Is(err, switchboard.ErrBadSubscription) {
		t.Fatalf("after the count: %v", err)
	}
	if st := nc.Stats(); st.Reconnects != 1 {
		t.Fatalf("stats %+v", st)
	}
	if ev.disconnects.Load() != 1 || ev.reconnects.Load() != 1 || ev.closed.Load() != 0 {
		t.Fatalf("handlers: %d disconnects, %d reconnects, %d closed", ev.disconnects.Load(), ev.reconnects.Load(), ev.closed.Load())
	}
}

func TestReconnectUnixProxy(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	ev := newEvents()
	nc := connect(t, px.URL(), ev.options(nil))
	if nc.ConnectedURL() != px.URL() {
		t.Fatal(nc.ConnectedURL())
	}
	sub, _ := nc.SubscribeSync("u")
	for round := range 3 {
		px.Cut()
		recv(t, ev.reconnected)
		flush(t, nc)
		nc.Publish("u", []byte(fmt.Sprint(round)))
		m, err := sub.NextMsg(ctxT(t))
		if err != nil || string(m.Data) != fmt.Sprint(round) {
			t.Fatalf("round %d: %v %v", round, m, err)
		}
	}
	if nc.Stats().Reconnects != 3 {
		t.Fatal(nc.Stats())
	}
}

func TestRequestAcrossOutage(t *testing.T) {
	ts := startServer(t)
	responder := connect(t, ts.URL(), nil)
	responder.Subscribe("svc", func(m *switchboard.Msg) { m.Respond([]byte("ok")) })
	flush(t, responder)
	px := startUnixProxy(t, ts.Addr())
	ev := newEvents()
	nc := connect(t, px.URL(), ev.options(nil))
	if _, err := nc.Request(ctxT(t), "svc", nil); err != nil { // creates the inbox
		t.Fatal(err)
	}
	px.Down()
	waitFor(t, "disconnect", func() bool { return !nc.IsConnected() })
	type result struct {
		m   *switchboard.Msg
		err error
	}
	res := make(chan result, 1)
	go func() {
		m, err := nc.Request(ctxT(t), "svc", nil)
		res <- result{m, err}
	}()
	time.Sleep(50 * time.Millisecond) // the request waits in the reconnect buffer
	px.Up()
	r := recv(t, res)
	if r.err != nil || string(r.m.Data) != "ok" {
		t.Fatalf("Request across outage: %v %v", r.m, r.err)
	}
}

func TestReconnectBufferFull(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	nc := connect(t, px.URL(), &switchboard.Options{ReconnectBufferSize: 1000})
	px.Down()
	waitFor(t, "disconnect", func() bool { return !nc.IsConnected() })
	var err error
	n := 0
	for ; n < 100; n++ {
		if err = nc.Publish("x", make([]byte, 100)); err != nil {
			break
		}
	}
	if !errors.Is(err, switchboard.ErrReconnectBufferFull) || n < 5 || n > 10 {
		t.Fatalf("after %d publishes: %v", n, err)
	}

	none := connect(t, ts.URL(), &switchboard.Options{ReconnectBufferSize: -1})
	ts.Shutdown()
	waitFor(t, "disconnect", func() bool { return !none.IsConnected() })
	if err := none.Publish("x", nil); !errors.Is(err, switchboard.ErrReconnectBufferFull) {
		t.Fatalf("unbuffered Publish while disconnected = %v", err)
	}
}

func TestNoReconnect(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	ev := newEvents()
	nc := connect(t, px.URL(), ev.options(&switchboard.Options{NoReconnect: true}))
	px.Cut()
	waitFor(t, "close", nc.IsClosed)
	waitFor(t, "ClosedHandler", func() bool { return ev.closed.Load() == 1 })
	if err := nc.Publish("x", nil); !errors.Is(err, switchboard.ErrClosed) {
		t.Fatal(err)
	}
	if px.Accepted() != 1 {
		t.Fatalf("%d connections", px.Accepted())
	}
}

func TestMaxReconnects(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	ev := newEvents()
	nc := connect(t, px.URL(), ev.options(&switchboard.Options{MaxReconnects: 3, ReconnectWait: time.Millisecond}))
	px.Down()
	waitFor(t, "close", nc.IsClosed)
	waitFor(t, "ClosedHandler", func() bool { return ev.closed.Load() == 1 })
	if ev.disconnects.Load() != 1 || ev.reconnects.Load() != 0 {
		t.Fatalf("%d disconnects, %d reconnects", ev.disconnects.Load(), ev.reconnects.Load())
	}
}

func TestCloseDuringReconnect(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	nc := connect(t, px.URL(), &switchboard.Options{ReconnectWait: 50 * time.Millisecond})
	sub, _ := nc.SubscribeSync("x")
	px.Down()
	waitFor(t, "disconnect", func() bool { return !nc.IsConnected() })
	flushErr := make(chan error, 1)
	go func() { flushErr <- nc.Flush(ctxT(t)) }()
	time.Sleep(10 * time.Millisecond)
	start := time.Now()
	nc.Close()
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}
	if err := recv(t, flushErr); !errors.Is(err, switchboard.ErrClosed) {
		t.Fatalf("Flush = %v", err)
	}
	if _, err := sub.NextMsg(ctxT(t)); !errors.Is(err, switchboard.ErrClosed) {
		t.Fatalf("NextMsg = %v", err)
	}
}

func TestStaleConnection(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	ev := newEvents()
	nc := connect(t, px.URL(), ev.options(&switchboard.Options{PingInterval: 20 * time.Millisecond, MaxPingsOut: 2}))
	px.Freeze(toClient) // PONGs stop arriving
	if err := recv(t, ev.errc); !errors.Is(err, switchboard.ErrStaleConnection) {
		t.Fatalf("ErrorHandler got %v", err)
	}
	px.Thaw()
	recv(t, ev.reconnected)
	ev.mu.Lock()
	cause := ev.causes[0]
	ev.mu.Unlock()
	if !errors.Is(cause, switchboard.ErrStaleConnection) {
		t.Fatalf("disconnect cause %v", cause)
	}
	flush(t, nc)
}

func TestBackpressure(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	nc := connect(t, px.URL(), &switchboard.Options{WriteBufferLimit: 64 << 10, DialTimeout: 200 * time.Millisecond})
	px.Freeze(toServer)
	blocked := make(chan error, 1)
	var n atomic.Int64
	go func() {
		data := make([]byte, 1024)
		for {
			if err := nc.Publish("bp", data); err != nil {
				blocked <- err
				return
			}
			n.Add(1)
		}
	}()
	// The socket buffers fill, then the outbound buffer reaches the limit
	// and Publish blocks.
	var last int64 = -1
	waitFor(t, "Publish to block", func() bool {
		cur := n.Load()
		stalled := cur == last && cur > 64
		last = cur
		time.Sleep(20 * time.Millisecond)
		return stalled
	})
	select {
	case err := <-blocked:
		t.Fatalf("Publish returned %v instead of blocking", err)
	default:
	}
	nc.Close()
	if err := recv(t, blocked); !errors.Is(err, switchboard.ErrClosed) {
		t.Fatalf("blocked Publish after Close = %v", err)
	}
}

// fakeServer is a scripted NATS server on TCP for protocol situations a
// real server will not produce on demand. script runs once per accepted
// connection, with its index, after the handshake.
func fakeServer(t *testing.T, script func(i int, c net.Conn, r *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				fmt.Fprintf(c, "INFO {\"server_id\":\"fake\",\"version\":\"0\",\"headers\":true,\"max_payload\":1048576,\"proto\":1}\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "PING") {
						break
					}
				}
				fmt.Fprintf(c, "PONG\r\n")
				script(i, c, r)
			}()
		}
	}()
	return "tcp://" + ln.Addr().String()
}

// serveQuietly answers PINGs until the connection closes.
func serveQuietly(c net.Conn, r *bufio.Reader) {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if strings.HasPrefix(line, "PING") {
			fmt.Fprintf(c, "PONG\r\n")
		}
	}
}

func TestServerSlowConsumerError(t *testing.T) {
	url := fakeServer(t, func(i int, c net.Conn, r *bufio.Reader) {
		if i == 0 {
			fmt.Fprintf(c, "-ERR 'Slow Consumer Detected'\r\n")
			return
		}
		serveQuietly(c, r)
	})
	ev := newEvents()
	nc := connect(t, url, ev.options(nil))
	if err := recv(t, ev.errc); !errors.Is(err, switchboard.ErrSlowConsumer) {
		t.Fatalf("ErrorHandler got %v", err)
	}
	var se *switchboard.ServerError
	ev.mu.Lock()
	if !errors.As(ev.errs[0], &se) || se.Msg != "Slow Consumer Detected" {
		t.Fatalf("error %#v", ev.errs[0])
	}
	ev.mu.Unlock()
	recv(t, ev.reconnected)
	ev.mu.Lock()
	cause := ev.causes[0]
	ev.mu.Unlock()
	if !errors.Is(cause, switchboard.ErrSlowConsumer) {
		t.Fatalf("disconnect cause %v", cause)
	}
	flush(t, nc)
}

func TestServerPingAndInfoUpdate(t *testing.T) {
	pong := make(chan struct{})
	url := fakeServer(t, func(i int, c net.Conn, r *bufio.Reader) {
		fmt.Fprintf(c, "PING\r\n")
		line, err := r.ReadString('\n')
		if err != nil || line != "PONG\r\n" {
			t.Errorf("client answered %q, %v", line, err)
			return
		}
		close(pong)
		fmt.Fprintf(c, "INFO {\"server_id\":\"fake\",\"max_payload\":100}\r\n+OK\r\n")
		serveQuietly(c, r)
	})
	nc := connect(t, url, nil)
	recv(t, pong)
	waitFor(t, "INFO update", func() bool { return nc.MaxPayload() == 100 })
	if err := nc.Publish("x", make([]byte, 101)); !errors.Is(err, switchboard.ErrMaxPayload) {
		t.Fatal(err)
	}
	flush(t, nc)
}

func TestServerProtocolError(t *testing.T) {
	url := fakeServer(t, func(i int, c net.Conn, r *bufio.Reader) {
		if i == 0 {
			time.Sleep(20 * time.Millisecond)
			fmt.Fprintf(c, "BOGUS\r\n")
			serveQuietly(c, r)
			return
		}
		serveQuietly(c, r)
	})
	ev := newEvents()
	nc := connect(t, url, ev.options(nil))
	recv(t, ev.reconnected)
	flush(t, nc)
}

// TestChaos runs every kind of operation concurrently while the proxy
// keeps cutting the connection, then checks the Conn still works and that
// Close leaves no goroutine behind (TestMain's goleak check).
func TestChaos(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	responder := connect(t, ts.URL(), nil)
	responder.Subscribe("chaos.svc", func(m *switchboard.Msg) { m.Respond(m.Data) })
	flush(t, responder)
	nc := connect(t, px.URL(), &switchboard.Options{ReconnectWait: time.Millisecond, MaxReconnectWait: 5 * time.Millisecond})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(i int) {
		defer wg.Done()
		var subs []*switchboard.Subscription
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			switch n % 7 {
			case 0:
				s, err := nc.Subscribe(fmt.Sprintf("chaos.%d.%d", i, n), func(*switchboard.Msg) {})
				if err == nil {
					subs = append(subs, s)
				}
			case 1:
				nc.Publish(fmt.Sprintf("chaos.%d.%d", i, n-1), []byte("x"))
			case 2:
				nc.Request(ctx, "chaos.svc", []byte("x"))
			case 3:
				nc.Flush(ctx)
			case 4:
				if len(subs) > 0 {
					subs[0].Unsubscribe()
					subs = subs[1:]
				}
			case 5:
				if len(subs) > 0 {
					subs[0].AutoUnsubscribe(2)
				}
			case 6:
				if len(subs) > 0 {
					subs[len(subs)-1].Drain(ctx)
					subs = subs[:len(subs)-1]
				}
			}
			cancel()
		}
	}
	for i := range 4 {
		wg.Add(1)
		go worker(i)
	}
	for range 10 {
		time.Sleep(30 * time.Millisecond)
		px.Cut()
	}
	close(stop)
	wg.Wait()

	waitFor(t, "reconnect", nc.IsConnected)
	m, err := nc.Request(ctxT(t), "chaos.svc", []byte("final"))
	if err != nil || string(m.Data) != "final" {
		t.Fatalf("after chaos: %v %v", m, err)
	}
	if nc.Stats().Reconnects == 0 {
		t.Fatal("no reconnects")
	}
}

// A hub that completes the handshake and drops the connection at once is
// not hammered: the reconnect delay keeps growing across such short-lived
// connections instead of starting over after each handshake.
func TestReconnectBackoffSurvivesFlappingHub(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepts := make(chan time.Time, 64)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepts <- time.Now()
			c.Write([]byte("INFO {\"server_id\":\"flap\",\"max_payload\":1048576,\"headers\":true,\"proto\":1}\r\n"))
			r := bufio.NewReader(c)
			for {
				line, err := r.ReadString('\n')
				if err != nil || line == "PING\r\n" {
					break
				}
			}
			c.Write([]byte("PONG\r\n"))
			c.Close()
		}
	}()
	defer func() { l.Close(); wg.Wait() }()
	nc, err := switchboard.Connect(ctxT(t), "nats://"+l.Addr().String(), &switchboard.Options{
		ReconnectWait: 10 * time.Millisecond, MaxReconnectWait: 400 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	var at []time.Time
	for len(at) < 7 {
		select {
		case ts := <-accepts:
			at = append(at, ts)
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d connections", len(at))
		}
	}
	// The 6th reconnect waits backoff(6+) = 10ms·2^5, capped at 400ms,
	// randomised to at least half: 160ms. Starting over after each
	// handshake, it would wait 5–10ms. (A lower bound: sleeping is never
	// shorter than asked, however loaded the machine.)
	if gap := at[6].Sub(at[5]); gap < 160*time.Millisecond {
		t.Fatalf("reconnect %d came %v after the previous one; the backoff started over", 6, gap)
	}
}

package hub

import (
	"bytes"
	"context"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Regression tests for bugs found in review: each of the others failed
// before its fix (TestCloseRacingServe and TestConnectAfterSubIsIgnored
// under -race).

// A delivery that matched a subscription just before its UNSUB (or a sid
// reuse) must be dropped, and must never remove the sid's new owner.
func TestLateDeliveryAfterUnsubLeavesNoSubscriptions(t *testing.T) {
	th := startHub(t, Config{})
	tr := th.transports()[0]
	a := dialRaw(t, tr)
	go io.Copy(io.Discard, a.nc)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		p := dialRaw(t, tr)
		go io.Copy(io.Discard, p.nc)
		wg.Add(1)
		go func() {
			defer wg.Done()
			batch := []byte(strings.Repeat("PUB a 0\r\n\r\n", 2000))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := p.nc.Write(batch); err != nil {
					return
				}
			}
		}()
	}
	cycle := []byte(strings.Repeat("SUB a 1\r\nUNSUB 1 1\r\nSUB b 1\r\nUNSUB 1\r\n", 500))
	for range 15 {
		a.nc.Write(cycle)
	}
	close(stop)
	wg.Wait()
	a.nc.Close()
	waitFor(t, "the subscriber to leave", func() bool { return th.Stats().Connections == 3 })
	if n := th.Stats().Subscriptions; n != 0 {
		t.Fatalf("%d subscriptions of a closed client left in the sublist", n)
	}
}

// Close racing Serve's start must still wait for Serve's goroutines (run
// with -race: the WaitGroup Add must not race Wait).
func TestCloseRacingServe(t *testing.T) {
	for i := range 200 {
		h, _ := New(Config{})
		l, err := net.Listen("unix", filepath.Join(t.TempDir(), "s"))
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- h.Serve(context.Background(), l) }()
		if i%2 == 0 {
			time.Sleep(time.Duration(i%7) * time.Microsecond)
		}
		h.Close()
		<-done
	}
}

// A CONNECT after SUB must not change options deliveries read (run with
// -race).
func TestConnectAfterSubIsIgnored(t *testing.T) {
	th := startHub(t, Config{})
	tr := th.transports()[0]
	a := dialRaw(t, tr)
	a.send("SUB foo 1\r\nPING\r\n")
	a.expect("PONG")
	p := dialRaw(t, tr)
	go io.Copy(io.Discard, p.nc)
	frame := strings.Repeat("HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", 200)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			if _, err := p.nc.Write([]byte(frame)); err != nil {
				return
			}
		}
	}()
	a.send("CONNECT {\"headers\":true}\r\n")
	<-done
	// Without headers, a's messages stay plain MSGs, and the late CONNECT
	// is refused with -ERR.
	sawErr := false
	for range 2*2000 + 1 { // 2000 messages of two lines each, and the -ERR somewhere among them
		l := a.line()
		switch {
		case l == "-ERR 'CONNECT After SUB Ignored'":
			sawErr = true
		case strings.HasPrefix(l, "HMSG"):
			t.Fatalf("got %q after a refused CONNECT", l)
		}
		if sawErr {
			break
		}
	}
	if !sawErr {
		t.Fatal("late CONNECT not refused")
	}
}

// The 503 no-responders reply counts as a delivery: it honours and uses up
// an auto-unsubscribe limit.
func TestNoRespondersCountsTowardsMax(t *testing.T) {
	th := startHub(t, Config{})
	rc := dialRaw(t, th.transports()[0])
	rc.send("CONNECT {\"headers\":true,\"no_responders\":true}\r\nSUB inbox.1 1\r\nUNSUB 1 1\r\nPUB nobody inbox.1 0\r\n\r\nPING\r\n")
	rc.expect("HMSG inbox.1 1 16 16")
	rc.expect("NATS/1.0 503")
	rc.expect("")
	rc.expect("")
	rc.expect("PONG")
	rc.send("PUB nobody inbox.1 0\r\n\r\nPING\r\n")
	if l := rc.line(); l != "PONG" {
		t.Fatalf("a second 503 was delivered past max=1: %q", l)
	}
	if n := th.Stats().Subscriptions; n != 0 {
		t.Fatalf("max=1 inbox still registered: %d", n)
	}
}

// A peer that sends PINGs and never reads is cut off at MaxPending.
func TestSelfGeneratedOutputIsBounded(t *testing.T) {
	const maxPending = 1 << 20
	th := startHub(t, Config{MaxPending: maxPending, MaxPayload: 1024, WriteDeadline: 20 * time.Second})
	rc := dialRaw(t, th.transports()[0])
	rc.send("CONNECT {\"verbose\":true}\r\n")
	chunk := []byte(strings.Repeat("PING\r\n", 64<<10))
	go func() {
		for {
			rc.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := rc.nc.Write(chunk); err != nil {
				return
			}
		}
	}()
	waitFor(t, "the PING flooder to be cut off", func() bool { return th.Stats().SlowConsumers == 1 })
}

type opaqueConn struct{ net.Conn }
type opaqueListener struct{ net.Listener }

func (l opaqueListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return opaqueConn{c}, nil
}

// On a transport without a raw file descriptor (TLS, WebSocket), the -ERR
// for a protocol violation still reaches the peer before the close.
func TestProtocolErrorReachesPeerWithoutRawConn(t *testing.T) {
	// The wrapped connection carries no peer credentials: anonymous.
	h, _ := New(Config{Policy: openPolicy(t)})
	sock := filepath.Join(t.TempDir(), "s")
	raw, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Serve(context.Background(), opaqueListener{raw}) }()
	defer func() { h.Close(); <-done }()
	for i := range 20 {
		nc, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		nc.Write([]byte("FOO bar\r\n"))
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(nc)
		nc.Close()
		if !bytes.Contains(b, []byte("-ERR 'Unknown Protocol Operation'")) {
			t.Fatalf("try %d: -ERR lost; got %q", i, b)
		}
	}
}

// WriteDeadline is about progress: a subscriber that keeps reading, only
// slower than its backlog, is not a slow consumer. (A behaviour test: here
// the writer picks the backlog up in pieces, so it also passed before the
// fix that requeues a timed-out partial write.)
func TestSteadyReaderIsNotSlowConsumer(t *testing.T) {
	// The burst takes the reader ~4 s, twice the deadline; a write makes
	// progress within it (a unix socket wakes its writer once most of its
	// buffer has drained: ~3 MB here, ~1 s of reading).
	th := startHub(t, Config{WriteDeadline: 2 * time.Second, MaxPending: 32 << 20, MaxPayload: 64 << 10})
	tr := th.transports()[0]
	sub := dialRaw(t, tr)
	sub.send("CONNECT {}\r\nSUB x 1\r\nPING\r\n")
	sub.expect("PONG")
	pub := dialRaw(t, tr)
	frame := "PUB x 61440\r\n" + strings.Repeat("y", 60<<10) + "\r\n"
	go pub.nc.Write([]byte(strings.Repeat(frame, 200))) // 12 MiB burst
	time.Sleep(200 * time.Millisecond)
	buf := make([]byte, 64<<10)
	want := 200 * (len("MSG x 1 61440\r\n") + 60<<10 + 2)
	for total := 0; total < want; {
		sub.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := sub.r.Read(buf)
		total += n
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", total, want, err)
		}
		time.Sleep(20 * time.Millisecond) // ~3 MB/s at most: far slower than the burst
	}
	if n := th.Stats().SlowConsumers; n != 0 {
		t.Fatalf("a steadily reading subscriber was cut off (%d slow consumers)", n)
	}
}

// A peer that sends an oversized PUB with its whole body at once can still
// read the -ERR: the hub writes it before closing. (The close with unread
// input makes the kernel send a reset; a client that discards its socket
// on the resulting write error, as Node's does, may miss the -ERR — nats.js
// checks max_payload itself, so it never sends such a frame.)
func TestProtocolErrorWithUnreadInputReachesPeer(t *testing.T) {
	th := startHub(t, Config{MaxPayload: 1024})
	for _, tr := range th.transports() {
		t.Run(tr.name, func(t *testing.T) {
			for i := range 20 {
				nc, err := tr.dial()
				if err != nil {
					t.Fatal(err)
				}
				frame := "CONNECT {}\r\nPUB a 200000\r\n" + strings.Repeat("x", 200000) + "\r\n"
				go nc.Write([]byte(frame))
				time.Sleep(20 * time.Millisecond) // the hub rejects before we read
				nc.SetReadDeadline(time.Now().Add(5 * time.Second))
				b, err := io.ReadAll(nc)
				nc.Close()
				if !bytes.Contains(b, []byte("-ERR 'Maximum Payload Violation'")) {
					t.Fatalf("try %d: -ERR lost (read %q, %v)", i, b, err)
				}
			}
		})
	}
}

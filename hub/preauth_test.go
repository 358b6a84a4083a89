package hub

import (
	"bufio"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// A thousand TCP connections that never send CONNECT are all closed once
// the auth timeout passes, with -ERR 'Authentication Timeout', while an
// authenticated client keeps working throughout.
func TestSilentConnectionsClosedAfterAuthTimeout(t *testing.T) {
	const n = 1000
	th := startHub(t, Config{
		Policy:      testPolicy(t, []string{"alice"}, "[[rule]]\nwho = [\"login:alice\"]\nallow_publish = [\">\"]\nallow_subscribe = [\">\"]\n"),
		AuthTimeout: 500 * time.Millisecond,
	})
	alice := login(t, th, "alice")
	alice.send("SUB work 1\r\n")
	alice.ping()

	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := net.Dial("tcp", th.tcp)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}

	// While they wait, alice's traffic flows.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	rounds := 0
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			alice.nc.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := alice.nc.Write([]byte("PUB work 2\r\nhi\r\n")); err != nil {
				return
			}
			if _, err := alice.r.ReadString('\n'); err != nil { // MSG line
				return
			}
			if _, err := alice.r.ReadString('\n'); err != nil { // payload
				return
			}
			rounds++
		}
	}()

	var closed sync.WaitGroup
	errs := make(chan string, n)
	for _, c := range conns {
		closed.Add(1)
		go func() {
			defer closed.Done()
			c.SetReadDeadline(time.Now().Add(15 * time.Second))
			r := bufio.NewReader(c)
			info, _ := r.ReadString('\n')
			if !strings.HasPrefix(info, "INFO ") {
				errs <- "no INFO: " + info
				return
			}
			errLine, _ := r.ReadString('\n')
			if errLine != "-ERR 'Authentication Timeout'\r\n" {
				errs <- "got " + errLine
				return
			}
			if _, err := r.ReadByte(); err == nil {
				errs <- "more after the -ERR"
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				errs <- "not closed"
			}
		}()
	}
	closed.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}
	if rounds == 0 {
		t.Fatal("the authenticated client got nothing through")
	}
	// Alice is still connected and served: PONG comes after any message
	// still in flight.
	alice.send("PING\r\n")
	for line := alice.line(); line != "PONG"; line = alice.line() {
		if !strings.HasPrefix(line, "MSG work") && line != "hi" {
			t.Fatalf("alice got %q", line)
		}
	}
	if got := th.Stats().AuthFailures; got != n {
		t.Errorf("AuthFailures = %d, want %d", got, n)
	}
	waitFor(t, "the silent connections to be gone", func() bool { return th.Stats().Connections == 1 })
}

// An unauthenticated peer that announces a huge payload, or sends a
// control line without end, is cut off after a few KiB: the hub never
// buffers what it announced. A hundred peers each sending 1 MiB would
// make the hub allocate 100 MiB if it buffered payloads before CONNECT.
func TestPreAuthFramesAllocateNothingLarge(t *testing.T) {
	th := startHub(t, Config{
		Policy:         testPolicy(t, []string{"alice"}, "[[rule]]\nwho = [\"login:alice\"]\nallow_publish = [\">\"]\n"),
		MaxControlLine: 1 << 20, // a generous limit for authenticated clients
	})
	junk := strings.Repeat("x", 1<<20)
	hugePub := []byte("PUB x 1048576\r\n" + junk)
	endless := []byte("CONNECT {\"user\":\"" + junk) // never ends
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var bad []string
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", th.tcp)
			if err != nil {
				mu.Lock()
				bad = append(bad, err.Error())
				mu.Unlock()
				return
			}
			defer c.Close()
			send := hugePub
			if i%2 == 1 {
				send = endless
			}
			c.SetDeadline(time.Now().Add(10 * time.Second))
			go c.Write(send) // the hub closes before reading it all
			r := bufio.NewReader(c)
			r.ReadString('\n') // INFO
			line, _ := r.ReadString('\n')
			if line != "-ERR 'Authorization Violation'\r\n" {
				mu.Lock()
				bad = append(bad, "got "+line)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	for _, b := range bad {
		t.Error(b)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
		t.Errorf("allocated %d MiB serving 100 unauthenticated peers", grew>>20)
	}
}

// Audit lines about refused connections are bounded hub-wide: a
// connect-and-fail loop cannot flood the log.
func TestConnAuditBudget(t *testing.T) {
	var a auditLimiter
	logged := 0
	for range 3 * connAuditPerSecond {
		if ok, _ := a.allow(); ok {
			logged++
		}
	}
	// The loop takes microseconds: well within one second's budget.
	if logged != connAuditPerSecond {
		t.Fatalf("logged %d of %d in a burst, want %d", logged, 3*connAuditPerSecond, connAuditPerSecond)
	}
	a.start = a.start.Add(-time.Second) // the next second
	if ok, dropped := a.allow(); !ok || dropped != 2*connAuditPerSecond {
		t.Fatalf("next second: ok %v, dropped %d; want true, %d", ok, dropped, 2*connAuditPerSecond)
	}
}

package hub

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestVerbose(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		rc := dialRaw(t, tr)
		rc.send("CONNECT {\"verbose\":true}\r\n")
		rc.expect("+OK")
		rc.send("SUB a 1\r\nPUB a 2\r\nhi\r\nUNSUB 1\r\nPING\r\n")
		rc.expect("+OK")
		// The PUB's +OK comes before the echoed message, as in nats-server.
		rc.expect("+OK")
		rc.expect("MSG a 1 2")
		rc.expect("hi")
		rc.expect("+OK")
		rc.expect("PONG")
	})
}

func TestInvalidSubjects(t *testing.T) {
	forEachTransport(t, Config{}, func(t *testing.T, th *testHub, tr transport) {
		rc := dialRaw(t, tr)
		rc.send("CONNECT {}\r\nSUB a..b 1\r\n")
		rc.expect("-ERR 'Invalid Subject'")
		rc.send("SUB a.>.b 1\r\n")
		rc.expect("-ERR 'Invalid Subject'")
		rc.send("PUB a.* 1\r\nx\r\n")
		rc.expect("-ERR 'Invalid Publish Subject'")
		rc.send("PUB a.> 1\r\nx\r\n")
		rc.expect("-ERR 'Invalid Publish Subject'")
		// The connection survives subject errors.
		rc.send("PING\r\n")
		rc.expect("PONG")
		if n := th.Stats().Subscriptions; n != 0 {
			t.Fatalf("%d subscriptions after invalid SUBs", n)
		}
	})
}

func TestProtocolViolationsClose(t *testing.T) {
	cases := []struct{ name, send, err string }{
		{"unknown op", "FOO bar\r\n", "-ERR 'Unknown Protocol Operation'"},
		{"server op from client", "MSG a 1 1\r\nx\r\n", "-ERR 'Unknown Protocol Operation'"},
		{"payload too big", "PUB a 2000\r\n", "-ERR 'Maximum Payload Violation'"},
		{"control line too long", "PUB " + strings.Repeat("a", 5000) + " 1\r\n", "-ERR 'Maximum Control Line Exceeded'"},
		{"bad connect json", "CONNECT {nope\r\n", "-ERR 'Invalid Connect Options'"},
	}
	forEachTransport(t, Config{MaxPayload: 1024}, func(t *testing.T, th *testHub, tr transport) {
		for _, tc := range cases {
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				rc := dialRaw(t, tr)
				rc.send(tc.send)
				if got := rc.line(); got != tc.err {
					t.Fatalf("got %q, want %q", got, tc.err)
				}
				rc.expectClosed()
			})
		}
	})
}

func TestHugeLineWithoutNewlineIsBounded(t *testing.T) {
	th := startHub(t, Config{})
	rc := dialRaw(t, th.transports()[0])
	// 8 MiB with no newline: the hub must give up after the control line
	// limit instead of buffering it.
	go rc.nc.Write(append([]byte("PUB "), bytes.Repeat([]byte("a"), 8<<20)...))
	if got := rc.line(); got != "-ERR 'Maximum Control Line Exceeded'" {
		t.Fatalf("got %q", got)
	}
	rc.expectClosed()
}

func TestSlowConsumerIsCutOffOthersUnaffected(t *testing.T) {
	forEachTransport(t, Config{MaxPending: 256 << 10, MaxPayload: 1024}, func(t *testing.T, th *testHub, tr transport) {
		before := th.Stats().SlowConsumers
		slow := dialRaw(t, tr)
		slow.send("CONNECT {}\r\nSUB flood 1\r\nPING\r\n")
		slow.expect("PONG")
		// slow reads, but far slower than the publisher sends: about
		// 3 MB/s. Much slower, and a loaded machine can stall it past the
		// write deadline: the kernel frees a socket's send buffer, and
		// wakes a blocked writer, in steps of whole queued messages (on
		// older kernels up to half the buffer each), so a consumer that
		// takes one step longer than WriteDeadline to read is closed
		// without the -ERR. (Reading 4 KiB every 20 ms, it was.)
		tail := make(chan string, 1)
		go func() {
			var buf []byte
			chunk := make([]byte, 16<<10)
			slow.nc.SetReadDeadline(time.Now().Add(30 * time.Second))
			for {
				k, err := slow.r.Read(chunk)
				buf = append(buf, chunk[:k]...)
				if len(buf) > 4096 {
					buf = buf[len(buf)-4096:]
				}
				if err != nil {
					tail <- string(buf)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
		fast := natsConn(t, th, tr)
		var got atomic.Int64
		s, _ := fast.Subscribe("flood", func(*nats.Msg) { got.Add(1) })
		s.SetPendingLimits(-1, -1)
		fast.Flush()
		pub := natsConn(t, th, tr)
		const n, batch = 20000, 200
		payload := make([]byte, 512)
		for i := 0; i < n; i += batch {
			for range batch {
				pub.Publish("flood", payload)
			}
			pub.Flush()
			// Pace the publisher to the fast subscriber, which must never
			// fall MaxPending behind.
			waitFor(t, "fast subscriber to keep up", func() bool { return got.Load() >= int64(i) })
		}
		waitFor(t, "fast subscriber to get everything", func() bool { return got.Load() == n })
		waitFor(t, "slow consumer counted", func() bool { return th.Stats().SlowConsumers == before+1 })
		select {
		case end := <-tail:
			if !strings.HasSuffix(end, "-ERR 'Slow Consumer'\r\n") {
				t.Fatalf("slow consumer's stream ends with %q", end[max(0, len(end)-80):])
			}
		case <-time.After(30 * time.Second):
			t.Fatal("slow consumer was not disconnected")
		}
	})
}

func TestPingPongAndStaleConnections(t *testing.T) {
	th := startHub(t, Config{PingInterval: 50 * time.Millisecond, MaxPingsOut: 2})
	rc := dialRaw(t, th.transports()[0])
	rc.send("CONNECT {}\r\n")
	rc.expect("PING")
	rc.send("PONG\r\n")
	rc.expect("PING")
	// Stop answering: after MaxPingsOut more pings the hub gives up.
	rc.expect("PING")
	rc.expect("-ERR 'Stale Connection'")
	rc.expectClosed()
}

func TestMaxConnections(t *testing.T) {
	th := startHub(t, Config{MaxConnections: 2})
	tr := th.transports()[1]
	dialRaw(t, tr)
	dialRaw(t, tr)
	nc, err := tr.dial()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	rc := &rawConn{t: t, nc: nc, r: newReader(nc)}
	rc.expect("-ERR 'maximum connections exceeded'")
	rc.expectClosed()
}

func TestMaxSubscriptions(t *testing.T) {
	th := startHub(t, Config{MaxSubscriptions: 2})
	rc := dialRaw(t, th.transports()[0])
	rc.send("CONNECT {}\r\nSUB a 1\r\nSUB b 2\r\nSUB c 3\r\n")
	rc.expect("-ERR 'Maximum Subscriptions Exceeded'")
	rc.send("PING\r\n")
	rc.expect("PONG")
}

func TestShutdownFlushesPending(t *testing.T) {
	h, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "s.sock")
	l, err := ListenUnix(sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Serve(t.Context(), l) }()
	tr := transport{name: "unix", dial: func() (net.Conn, error) { return net.Dial("unix", sock) }}
	sub := dialRaw(t, tr)
	sub.send("CONNECT {}\r\nSUB a 1\r\nPING\r\n")
	sub.expect("PONG")
	pub := dialRaw(t, tr)
	pub.send("CONNECT {}\r\nPUB a 5\r\nhello\r\nPING\r\n")
	pub.expect("PONG")
	if err := h.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != ErrServerClosed {
		t.Fatalf("Serve: %v", err)
	}
	sub.expect("MSG a 1 5")
	sub.expect("hello")
	sub.expectClosed()
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("socket file left behind: %v", err)
	}
}

func TestUnixSocketFile(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sub", "hub.sock")
	l, err := ListenUnix(sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	// A live socket is not replaced.
	if _, err := ListenUnix(sock, 0); err == nil || !strings.Contains(err.Error(), "another process is listening") {
		t.Fatalf("second listen: %v", err)
	}
	l.Close()

	// A stale socket (nobody listening) is replaced.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	l2, err := ListenUnix(sock, 0o660)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	fi, _ = os.Stat(sock)
	if fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v, want 0660", fi.Mode().Perm())
	}
	l2.Close()

	// A regular file is never removed.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep"), 0o600)
	if _, err := ListenUnix(file, 0); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("listen on a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("regular file was touched")
	}
}

func TestConfigValidation(t *testing.T) {
	for _, cfg := range []Config{
		{MaxPayload: -1},
		{MaxPayload: 1 << 30},
		{MaxControlLine: 10},
		{MaxPending: 10, MaxPayload: 1000},
		{WriteDeadline: -time.Second},
		{MaxConnections: -1},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", cfg)
		}
	}
}

// TestIdleAfterBackloggedWrite: a connection whose socket once filled up
// (so the writer goroutine took over, with a write deadline) must still get
// messages after idling longer than that deadline.
func TestIdleAfterBackloggedWrite(t *testing.T) {
	forEachTransport(t, Config{WriteDeadline: 200 * time.Millisecond, MaxPayload: 1024}, func(t *testing.T, th *testHub, tr transport) {
		sub := dialRaw(t, tr)
		sub.send("CONNECT {}\r\nSUB x 1\r\nPING\r\n")
		sub.expect("PONG")
		pub := dialRaw(t, tr)
		pub.send("CONNECT {}\r\n")
		const n = 16384
		frame := "PUB x 1024\r\n" + strings.Repeat("y", 1024) + "\r\n"
		go pub.nc.Write([]byte(strings.Repeat(frame, n) + "PING\r\n"))
		time.Sleep(100 * time.Millisecond) // not reading: the socket fills
		want := []byte("MSG x 1 1024\r\n" + strings.Repeat("y", 1024) + "\r\n")
		got := make([]byte, len(want))
		for i := range n {
			sub.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.ReadFull(sub.r, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("message %d: %v %q", i, err, got[:min(len(got), 40)])
			}
		}
		pub.expect("PONG")
		time.Sleep(400 * time.Millisecond) // idle past the write deadline
		pub.send("PUB x 5\r\nhello\r\nPING\r\n")
		pub.expect("PONG")
		sub.expect("MSG x 1 5")
		sub.expect("hello")
	})
}

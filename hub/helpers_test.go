package hub

import (
	"bufio"
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"switchboard/auth"
	"switchboard/internal/proctest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// transport is one way of reaching the hub; every conformance test runs
// over each.
type transport struct {
	name string
	url  string // for nats.go
	dial func() (net.Conn, error)
}

// testHub is a running hub with a unix and a TCP listener.
type testHub struct {
	*Hub
	sock string
	tcp  string
}

// startHub starts a hub on a unix socket and a TCP port. Unless cfg sets a
// policy, TCP clients need no credentials (proctest.OpenPolicy): the
// conformance tests are about the protocol; auth_test.go is about policy.
func startHub(t testing.TB, cfg Config) *testHub {
	t.Helper()
	if cfg.Policy == nil {
		cfg.Policy = openPolicy(t)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "hub.sock")
	ul, err := ListenUnix(sock, 0)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := ListenTCP("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Serve(context.Background(), ul, tl) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return &testHub{Hub: h, sock: sock, tcp: tl.Addr().String()}
}

func openPolicy(t testing.TB) *auth.Policy {
	t.Helper()
	p, err := auth.Parse("open-policy", []byte(proctest.OpenPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (th *testHub) transports() []transport {
	return []transport{
		{"unix", "nats://unix", func() (net.Conn, error) { return net.Dial("unix", th.sock) }},
		{"tcp", "nats://" + th.tcp, func() (net.Conn, error) { return net.Dial("tcp", th.tcp) }},
	}
}

// forEachTransport runs fn as a subtest per transport against one hub.
func forEachTransport(t *testing.T, cfg Config, fn func(t *testing.T, th *testHub, tr transport)) {
	th := startHub(t, cfg)
	for _, tr := range th.transports() {
		t.Run(tr.name, func(t *testing.T) { fn(t, th, tr) })
	}
}

// unixDialer lets nats.go, which has no unix socket support, reach the hub
// over a unix socket through its custom dialer hook.
type unixDialer struct{ path string }

func (d unixDialer) Dial(_, _ string) (net.Conn, error) { return net.Dial("unix", d.path) }

// natsConn connects nats.go to the hub over tr.
func natsConn(t testing.TB, th *testHub, tr transport, opts ...nats.Option) *nats.Conn {
	t.Helper()
	opts = append([]nats.Option{nats.NoReconnect(), nats.Timeout(5 * time.Second)}, opts...)
	if tr.name == "unix" {
		opts = append(opts, nats.SetCustomDialer(unixDialer{th.sock}))
	}
	nc, err := nats.Connect(tr.url, opts...)
	if err != nil {
		t.Fatalf("nats.Connect over %s: %v", tr.name, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// rawConn speaks the protocol by hand, for what a well-behaved client
// library would never send.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dialRaw(t testing.TB, tr transport) *rawConn {
	t.Helper()
	nc, err := tr.dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	rc := &rawConn{t: t, nc: nc, r: bufio.NewReaderSize(nc, 1<<16)}
	if line := rc.line(); !strings.HasPrefix(line, "INFO {") {
		t.Fatalf("first line %q, want INFO", line)
	}
	return rc
}

func (rc *rawConn) send(s string) {
	rc.t.Helper()
	if _, err := rc.nc.Write([]byte(s)); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

// line reads one CRLF-terminated line, without the CRLF.
func (rc *rawConn) line() string {
	rc.t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := rc.r.ReadString('\n')
	if err != nil {
		rc.t.Fatalf("read line: %v (got %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

func (rc *rawConn) expect(want string) {
	rc.t.Helper()
	if got := rc.line(); got != want {
		rc.t.Fatalf("got %q, want %q", got, want)
	}
}

// expectClosed reads until EOF, which must come within a few seconds.
func (rc *rawConn) expectClosed() {
	rc.t.Helper()
	rc.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, err := rc.r.ReadByte(); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				rc.t.Fatal("connection not closed by the hub")
			}
			return
		}
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func newReader(nc net.Conn) *bufio.Reader { return bufio.NewReaderSize(nc, 1<<16) }

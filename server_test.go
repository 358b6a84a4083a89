package switchboard_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"switchboard"
	"switchboard/auth"
	"switchboard/hub"
	"switchboard/internal/proctest"
)

// The tests run against a real server embedded in the test process: the
// Switchboard hub by default, or nats-server with
// SWITCHBOARD_TEST_SERVER=nats (scripts/test.sh runs both). Everything
// below is test plumbing: the server, and a unix-socket byte proxy in front
// of its TCP port that can cut or freeze connections.

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// useNATS reports whether the tests run against nats-server.
var useNATS = os.Getenv("SWITCHBOARD_TEST_SERVER") == "nats"

// testServer is an embedded server that can be restarted on the same port.
// Its options are nats-server's; the hub takes the ones it supports.
type testServer struct {
	t    testing.TB
	opts server.Options
	mu   sync.Mutex
	srv  *server.Server
	hub  *hub.Hub
	done chan error
}

// startServer starts a nats-server on a free port; mod may adjust its
// options (auth, permissions, max payload). It is shut down at cleanup.
func startServer(t testing.TB, mod ...func(*server.Options)) *testServer {
	t.Helper()
	ts := &testServer{t: t, opts: server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}}
	for _, f := range mod {
		f(&ts.opts)
	}
	if !useNATS && len(ts.opts.Nkeys) > 0 {
		t.Skip("the hub does not support nkeys; run with SWITCHBOARD_TEST_SERVER=nats")
	}
	ts.start()
	t.Cleanup(ts.Shutdown)
	return ts
}

func (ts *testServer) start() {
	ts.t.Helper()
	if !useNATS {
		if !ts.startHub() {
			ts.t.Fatal("hub did not start")
		}
		return
	}
	ts.startNATS()
	// Later restarts reuse the port.
	ts.opts.Port = ts.srv.Addr().(*net.TCPAddr).Port
}

// startHub runs the hub on ts.opts.Port (a free port when -1); it reports
// false if the port cannot be bound yet.
func (ts *testServer) startHub() bool {
	ts.t.Helper()
	pol, err := auth.Parse("test-policy", []byte(hubPolicy(ts.t, &ts.opts)))
	if err != nil {
		ts.t.Fatalf("policy: %v", err)
	}
	h, err := hub.New(hub.Config{MaxPayload: int(ts.opts.MaxPayload), Policy: pol})
	if err != nil {
		ts.t.Fatalf("hub: %v", err)
	}
	port := max(ts.opts.Port, 0)
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	ts.opts.Port = l.Addr().(*net.TCPAddr).Port
	done := make(chan error, 1)
	go func() { done <- h.Serve(context.Background(), l) }()
	ts.mu.Lock()
	ts.hub, ts.done = h, done
	ts.mu.Unlock()
	return true
}

func (ts *testServer) startNATS() {
	ts.t.Helper()
	o := ts.opts // nats-server modifies its options
	s, err := server.NewServer(&o)
	if err != nil {
		ts.t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(5 * time.Second) {
		ts.t.Fatal("nats-server not ready")
	}
	ts.mu.Lock()
	ts.srv = s
	ts.mu.Unlock()
}

// URL returns the server's client URL (nats://127.0.0.1:port).
func (ts *testServer) URL() string {
	return fmt.Sprintf("nats://127.0.0.1:%d", ts.opts.Port)
}

// Addr returns host:port.
func (ts *testServer) Addr() string { return fmt.Sprintf("127.0.0.1:%d", ts.opts.Port) }

// Shutdown stops the server (idempotent).
func (ts *testServer) Shutdown() {
	ts.mu.Lock()
	s := ts.srv
	ts.srv = nil
	h, done := ts.hub, ts.done
	ts.hub = nil
	ts.mu.Unlock()
	if h != nil {
		h.Close()
		<-done
	}
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts a fresh server on the same port (after Shutdown).
func (ts *testServer) Restart() {
	ts.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !useNATS {
		if ts.startHub() {
			return
		}
		if time.Now().After(deadline) {
			ts.t.Fatal("hub did not restart on its port")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		o := ts.opts
		s, err := server.NewServer(&o)
		if err != nil {
			ts.t.Fatalf("nats-server: %v", err)
		}
		go s.Start()
		if s.ReadyForConnections(2 * time.Second) {
			ts.mu.Lock()
			ts.srv = s
			ts.mu.Unlock()
			return
		}
		s.Shutdown()
		s.WaitForShutdown()
		if time.Now().After(deadline) {
			ts.t.Fatal("nats-server did not restart on its port")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// unixProxy listens on a unix socket and copies bytes to and from a TCP
// address, so that tests can use unix:// URLs, cut connections, refuse new
// ones and stall either direction.
type unixProxy struct {
	t      testing.TB
	path   string
	target string
	wg     sync.WaitGroup

	mu       sync.Mutex
	ln       net.Listener // nil while Down
	conns    map[net.Conn]struct{}
	frozen   [2]chan struct{} // per direction (toClient, toServer); non-nil while frozen
	accepted int
}

const (
	toClient = 0
	toServer = 1
)

func startUnixProxy(t testing.TB, target string) *unixProxy {
	t.Helper()
	p := &unixProxy{t: t, path: filepath.Join(t.TempDir(), "sb.sock"), target: target, conns: make(map[net.Conn]struct{})}
	p.Up()
	t.Cleanup(p.Close)
	return p
}

func (p *unixProxy) URL() string { return "unix://" + p.path }

// Up (re)starts listening.
func (p *unixProxy) Up() {
	p.t.Helper()
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(ln)
}

// Down stops listening and cuts every connection.
func (p *unixProxy) Down() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	p.Cut()
}

// Accepted returns how many connections were accepted so far.
func (p *unixProxy) Accepted() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *unixProxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.accepted++
		p.conns[c] = struct{}{}
		p.conns[s] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(s, c, toServer)
		go p.pipe(c, s, toClient)
	}
}

// pipe copies src to dst, waiting while its direction is frozen.
func (p *unixProxy) pipe(dst, src net.Conn, dir int) {
	defer p.wg.Done()
	defer func() {
		dst.Close()
		src.Close()
		p.mu.Lock()
		delete(p.conns, dst)
		delete(p.conns, src)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		p.mu.Lock()
		fz := p.frozen[dir]
		p.mu.Unlock()
		if fz != nil {
			<-fz
		}
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut closes every proxied connection; the listener stays as it is.
func (p *unixProxy) Cut() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Freeze stops copying in direction dir (toClient or toServer) until Thaw;
// a read already in progress still delivers its bytes.
func (p *unixProxy) Freeze(dir int) {
	p.mu.Lock()
	if p.frozen[dir] == nil {
		p.frozen[dir] = make(chan struct{})
	}
	p.mu.Unlock()
}

// Thaw resumes copying in both directions.
func (p *unixProxy) Thaw() {
	p.mu.Lock()
	for i, fz := range p.frozen {
		if fz != nil {
			close(fz)
			p.frozen[i] = nil
		}
	}
	p.mu.Unlock()
}

// Close stops the proxy and waits for its goroutines.
func (p *unixProxy) Close() {
	p.Down()
	p.Thaw()
	p.wg.Wait()
}

// connect connects to url with opts and closes the Conn at cleanup.
func connect(t testing.TB, url string, opts *switchboard.Options) *switchboard.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := switchboard.Connect(ctx, url, opts)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// ctxT returns a context that ends after d (default 5s) or at cleanup.
func ctxT(t testing.TB, d ...time.Duration) context.Context {
	dd := 5 * time.Second
	if len(d) > 0 {
		dd = d[0]
	}
	ctx, cancel := context.WithTimeout(context.Background(), dd)
	t.Cleanup(cancel)
	return ctx
}

// flush fails the test if nc.Flush fails.
func flush(t testing.TB, nc *switchboard.Conn) {
	t.Helper()
	if err := nc.Flush(ctxT(t)); err != nil {
		t.Fatalf("flush: %v", err)
	}
}

// waitFor polls cond until it holds or 20s pass (a loaded CI machine can
// take seconds for what takes milliseconds here; a passing wait costs
// nothing).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv receives from ch or fails after 5s.
func recv[T any](t testing.TB, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("timed out receiving")
		panic("unreachable")
	}
}

// hubPolicy translates the nats-server options the tests use (token,
// users with passwords and permissions) into the same policy for the hub;
// without any, network clients need no credentials (proctest.OpenPolicy).
func hubPolicy(t testing.TB, o *server.Options) string {
	t.Helper()
	users := o.Users
	if o.Username != "" {
		users = append(users, &server.User{Username: o.Username, Password: o.Password})
	}
	if o.Authorization == "" && len(users) == 0 {
		return proctest.OpenPolicy
	}
	var b strings.Builder
	quote := func(list []string) string {
		q := make([]string, len(list))
		for i, s := range list {
			q[i] = strconv.Quote(s)
		}
		return "[" + strings.Join(q, ", ") + "]"
	}
	all := `allow_publish = [">", "$SB.>"]` + "\nallow_subscribe = [\">\"]\n"
	if o.Authorization != "" {
		fmt.Fprintf(&b, "[[token]]\nname = \"test\"\ntoken = %q\n[[rule]]\nwho = [\"token:test\"]\n%s", o.Authorization, all)
	}
	for _, u := range users {
		// The lowest bcrypt cost keeps the tests fast; the hub accepts any.
		hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "[[user]]\nname = %q\npassword = %q\n[[rule]]\nwho = [%q]\n", u.Username, hash, "login:"+u.Username)
		p := u.Permissions
		if p == nil {
			b.WriteString(all)
			continue
		}
		if p.Publish != nil {
			fmt.Fprintf(&b, "allow_publish = %s\ndeny_publish = %s\n", quote(p.Publish.Allow), quote(p.Publish.Deny))
		}
		if p.Subscribe != nil {
			fmt.Fprintf(&b, "allow_subscribe = %s\ndeny_subscribe = %s\n", quote(p.Subscribe.Allow), quote(p.Subscribe.Deny))
		}
	}
	return b.String()
}

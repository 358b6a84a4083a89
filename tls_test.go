package switchboard_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"switchboard"
	"switchboard/internal/certtest"
)

// The TLS tests run against nats-server whatever SWITCHBOARD_TEST_SERVER
// says (startNATS below): the embedded hub takes its TLS settings from its
// own configuration, not from nats-server options. Tests that need no TLS
// on the server side (TestTLSNotOffered, the fake-server tests) run against
// whichever server is selected, or none.

// natsTLS is an in-process nats-server that can be restarted on its port.
type natsTLS struct {
	t    testing.TB
	opts server.Options
	mu   sync.Mutex
	srv  *server.Server
}

// startNATS starts nats-server on a free port with TLS presenting srv (if
// not nil); mod adjusts the options (TLSVerify, tokens, users). It stops at
// cleanup.
func startNATS(t testing.TB, srv *certtest.Cert, mod ...func(*server.Options)) *natsTLS {
	t.Helper()
	n := &natsTLS{t: t, opts: server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}}
	if srv != nil {
		n.opts.TLSConfig = srv.ServerConfig()
		n.opts.TLSTimeout = 5 // seconds; the -race detector makes handshakes slow
	}
	for _, f := range mod {
		f(&n.opts)
	}
	if n.opts.TLSVerify {
		n.opts.TLSConfig.ClientAuth = tls.RequireAndVerifyClientCert
	}
	n.start(5 * time.Second)
	n.opts.Port = n.Server().Addr().(*net.TCPAddr).Port
	t.Cleanup(n.Shutdown)
	return n
}

// start starts the server; it reports false if it was not ready in time.
func (n *natsTLS) start(wait time.Duration) bool {
	n.t.Helper()
	o := n.opts // nats-server modifies its options
	s, err := server.NewServer(&o)
	if err != nil {
		n.t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(wait) {
		s.Shutdown()
		s.WaitForShutdown()
		return false
	}
	n.mu.Lock()
	n.srv = s
	n.mu.Unlock()
	return true
}

func (n *natsTLS) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

func (n *natsTLS) Addr() string { return fmt.Sprintf("127.0.0.1:%d", n.opts.Port) }

// URL returns scheme://127.0.0.1:port.
func (n *natsTLS) URL(scheme string) string { return scheme + "://" + n.Addr() }

// Shutdown stops the server (idempotent).
func (n *natsTLS) Shutdown() {
	n.mu.Lock()
	s := n.srv
	n.srv = nil
	n.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// Restart starts a fresh server on the same port, after Shutdown.
func (n *natsTLS) Restart() {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !n.start(2 * time.Second) {
		if time.Now().After(deadline) {
			n.t.Fatal("nats-server did not restart on its port")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// tlsConns returns the TLS version of each client connection the server
// has ("" for plaintext ones).
func (n *natsTLS) tlsConns(t testing.TB) []string {
	t.Helper()
	cz, err := n.Server().Connz(nil)
	if err != nil {
		t.Fatal(err)
	}
	var v []string
	for _, c := range cz.Conns {
		v = append(v, c.TLSVersion)
	}
	return v
}

// roundTrip checks that a message published on nc comes back to it.
func roundTrip(t *testing.T, nc *switchboard.Conn) {
	t.Helper()
	sub, err := nc.SubscribeSync("tls.echo")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Publish("tls.echo", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	m, err := sub.NextMsg(ctxT(t))
	if err != nil || string(m.Data) != "secret" {
		t.Fatalf("round trip: %v %v", m, err)
	}
}

// connectErr connects, expecting failure, and returns the error.
func connectErr(t *testing.T, url string, opts *switchboard.Options) error {
	t.Helper()
	nc, err := switchboard.Connect(ctxT(t), url, opts)
	if err == nil {
		nc.Close()
		t.Fatalf("connect %s succeeded", url)
	}
	return err
}

// wantErr fails unless err matches target and its text has every one of
// the substrings.
func wantErr(t *testing.T, err, target error, substrings ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v does not match %v", err, target)
	}
	for _, s := range substrings {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("error %q does not mention %q", err, s)
		}
	}
}

// TestTLSConnect: tls:// and nats:// with a TLSConfig both end up on TLS;
// messages flow; TLSClientConfig built from the CA file works too.
func TestTLSConnect(t *testing.T) {
	ca := certtest.New(t)
	ns := startNATS(t, ca.Server())

	nc := connect(t, ns.URL("tls"), &switchboard.Options{TLSConfig: ca.ClientConfig()})
	roundTrip(t, nc)

	cfg, err := switchboard.TLSClientConfig(ca.CertFile, "", "")
	if err != nil {
		t.Fatal(err)
	}
	nc2 := connect(t, ns.URL("nats"), &switchboard.Options{TLSConfig: cfg})
	roundTrip(t, nc2)

	// Both connections are TLS on the server's side.
	v := ns.tlsConns(t)
	if len(v) != 2 || v[0] == "" || v[1] == "" {
		t.Fatalf("server's TLS versions: %q", v)
	}
	// Messages cross between the two TLS connections.
	sub, _ := nc2.SubscribeSync("tls.cross")
	flush(t, nc2)
	nc.Publish("tls.cross", []byte("x"))
	if _, err := sub.NextMsg(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// TestTLSServerName: the URL's host is checked against the certificate;
// Options.TLSConfig.ServerName overrides it.
func TestTLSServerName(t *testing.T) {
	ca := certtest.New(t)
	ns := startNATS(t, ca.Server("hub.example"))
	err := connectErr(t, ns.URL("tls"), &switchboard.Options{TLSConfig: ca.ClientConfig()})
	wantErr(t, err, switchboard.ErrTLS, "x509: cannot validate certificate for 127.0.0.1")

	cfg := ca.ClientConfig()
	cfg.ServerName = "hub.example"
	roundTrip(t, connect(t, ns.URL("tls"), &switchboard.Options{TLSConfig: cfg}))
}

// TestTLSWrongCA: a hub certificate from another CA fails with the x509
// error in the text.
func TestTLSWrongCA(t *testing.T) {
	ns := startNATS(t, certtest.New(t).Server())
	other := certtest.New(t)
	for _, url := range []string{ns.URL("tls"), ns.URL("nats")} {
		err := connectErr(t, url, &switchboard.Options{TLSConfig: other.ClientConfig()})
		wantErr(t, err, switchboard.ErrTLS, "x509: certificate signed by unknown authority")
	}
}

// TestTLSRequiredByHub: over nats:// without a TLSConfig, a hub whose INFO
// says tls_required gets TLS anyway, verified against the system roots
// and the URL's host. Our test CA is not among the system roots, so the
// upgrade is visible as a verification failure; with a TLSConfig it works.
func TestTLSRequiredByHub(t *testing.T) {
	ca := certtest.New(t)
	ns := startNATS(t, ca.Server())
	err := connectErr(t, ns.URL("nats"), nil)
	wantErr(t, err, switchboard.ErrTLS, "x509: certificate signed by unknown authority", "system's root CAs")

	// A hub that offers TLS without requiring it (allow_non_tls): the
	// client uses it only when it asks.
	opt := startNATS(t, ca.Server(), func(o *server.Options) { o.AllowNonTLS = true })
	plain := connect(t, opt.URL("nats"), nil)
	roundTrip(t, plain)
	secure := connect(t, opt.URL("tls"), &switchboard.Options{TLSConfig: ca.ClientConfig()})
	roundTrip(t, secure)
	v := opt.tlsConns(t)
	if len(v) != 2 || (v[0] == "") == (v[1] == "") {
		t.Fatalf("want one plaintext and one TLS connection, server has %q", v)
	}
}

// TestTLSNotOffered: a client that requires TLS refuses a hub that does
// not offer it, before sending CONNECT (and so its credentials). Runs
// against the selected server.
func TestTLSNotOffered(t *testing.T) {
	ts := startServer(t)
	err := connectErr(t, "tls://"+ts.Addr(), nil)
	wantErr(t, err, switchboard.ErrTLS, "does not offer", "tls://")
	err = connectErr(t, ts.URL(), &switchboard.Options{TLSConfig: certtest.New(t).ClientConfig()})
	wantErr(t, err, switchboard.ErrTLS, "does not offer", "TLSConfig")
}

// TestTLSUnixSocket: TLS over unix sockets is refused, whether the client
// asks for it or the hub does.
func TestTLSUnixSocket(t *testing.T) {
	ca := certtest.New(t)
	err := connectErr(t, "unix:///nonexistent/sb.sock", &switchboard.Options{TLSConfig: ca.ClientConfig()})
	wantErr(t, err, switchboard.ErrTLS, "unix sockets")

	ns := startNATS(t, ca.Server())
	px := startUnixProxy(t, ns.Addr())
	err = connectErr(t, px.URL(), nil)
	wantErr(t, err, switchboard.ErrTLS, "requires TLS", "unix sockets")
}

// TestTLSMutual: a hub that verifies client certificates accepts one from
// its CA and refuses none, an expired one and one from another CA.
func TestTLSMutual(t *testing.T) {
	ca := certtest.New(t)
	ns := startNATS(t, ca.Server(), func(o *server.Options) { o.TLSVerify = true })
	alice := ca.Client("alice", time.Time{}, time.Time{})

	cfg, err := switchboard.TLSClientConfig(ca.CertFile, alice.CertFile, alice.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	roundTrip(t, connect(t, ns.URL("tls"), &switchboard.Options{TLSConfig: cfg}))

	for name, c := range map[string]*tls.Config{
		"no certificate": ca.ClientConfig(),
		"expired":        ca.Client("old", time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)).ClientConfig(),
		"other CA": func() *tls.Config {
			c := certtest.New(t).Client("mallory", time.Time{}, time.Time{}).ClientConfig()
			c.RootCAs = ca.Pool
			return c
		}(),
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			err := connectErr(t, ns.URL("tls"), &switchboard.Options{TLSConfig: c, DialTimeout: 5 * time.Second})
			wantErr(t, err, switchboard.ErrTLS, "tls:")
		})
	}
}

// TestTLSCredentials: token and user/password over TLS; bad ones are
// authorization errors, not TLS errors.
func TestTLSCredentials(t *testing.T) {
	ca := certtest.New(t)
	srv := ca.Server()
	tok := startNATS(t, srv, func(o *server.Options) { o.Authorization = "s3cret" })
	opts := func(o switchboard.Options) *switchboard.Options { o.TLSConfig = ca.ClientConfig(); return &o }
	roundTrip(t, connect(t, tok.URL("tls"), opts(switchboard.Options{Token: "s3cret"})))
	for _, o := range []switchboard.Options{{Token: "wrong"}, {}} {
		err := connectErr(t, tok.URL("tls"), opts(o))
		if !errors.Is(err, switchboard.ErrAuthorization) || errors.Is(err, switchboard.ErrTLS) {
			t.Fatalf("token %q: %v", o.Token, err)
		}
	}

	up := startNATS(t, srv, func(o *server.Options) {
		o.Users = []*server.User{{Username: "alice", Password: "pw"}}
	})
	roundTrip(t, connect(t, up.URL("tls"), opts(switchboard.Options{User: "alice", Password: "pw"})))
	err := connectErr(t, up.URL("tls"), opts(switchboard.Options{User: "alice", Password: "nope"}))
	wantErr(t, err, switchboard.ErrAuthorization)
	// Plaintext credentials never reach a TLS hub.
	err = connectErr(t, up.URL("nats"), &switchboard.Options{User: "alice", Password: "pw"})
	wantErr(t, err, switchboard.ErrTLS)
}

// TestTLSReconnect: after the hub restarts the client reconnects over TLS
// and its subscription works again.
func TestTLSReconnect(t *testing.T) {
	ca := certtest.New(t)
	ns := startNATS(t, ca.Server())
	ev := newEvents()
	nc := connect(t, ns.URL("tls"), ev.options(&switchboard.Options{TLSConfig: ca.ClientConfig(), ReconnectWait: 20 * time.Millisecond}))
	sub, err := nc.SubscribeSync("tls.again")
	if err != nil {
		t.Fatal(err)
	}
	flush(t, nc)
	ns.Shutdown()
	waitFor(t, "disconnect", func() bool { return ev.disconnects.Load() == 1 })
	ns.Restart()
	recv(t, ev.reconnected)
	nc.Publish("tls.again", []byte("back"))
	if m, err := sub.NextMsg(ctxT(t)); err != nil || string(m.Data) != "back" {
		t.Fatalf("after reconnect: %v %v", m, err)
	}
	if v := ns.tlsConns(t); len(v) != 1 || v[0] == "" {
		t.Fatalf("server's TLS versions after reconnect: %q", v)
	}
}

// TestTLSClientConfigErrors: bad files and half a key pair are ErrTLS
// errors naming the file.
func TestTLSClientConfigErrors(t *testing.T) {
	ca := certtest.New(t)
	cli := ca.Client("c", time.Time{}, time.Time{})
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate\n"), 0o600)
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		ca, cert, key, want string
	}{
		{missing, "", "", "missing.pem"},
		{junk, "", "", "junk.pem"},
		{"", cli.CertFile, "", "without its key"},
		{"", "", cli.KeyFile, "without its certificate"},
		{"", cli.CertFile, ca.CertFile, "ca.pem"},
		{"", missing, cli.KeyFile, "missing.pem"},
	} {
		_, err := switchboard.TLSClientConfig(tc.ca, tc.cert, tc.key)
		if !errors.Is(err, switchboard.ErrTLS) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("TLSClientConfig(%q, %q, %q) = %v, want ErrTLS mentioning %q", tc.ca, tc.cert, tc.key, err, tc.want)
		}
	}
	cfg, err := switchboard.TLSClientConfig("", "", "")
	if err != nil || cfg.RootCAs != nil || len(cfg.Certificates) != 0 || cfg.MinVersion != tls.VersionTLS12 {
		t.Fatalf("TLSClientConfig with no files = %+v, %v", cfg, err)
	}
	cfg, err = switchboard.TLSClientConfig(ca.CertFile, cli.CertFile, cli.KeyFile)
	if err != nil || cfg.RootCAs == nil || len(cfg.Certificates) != 1 {
		t.Fatalf("TLSClientConfig = %+v, %v", cfg, err)
	}
}

// fakeHub accepts one connection on a fresh TCP port and runs serve on it.
// The returned URL is nats://; the test waits for serve at cleanup.
func fakeHub(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		serve(c)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return "nats://" + ln.Addr().String()
}

const fakeInfo = `INFO {"server_id":"fake","version":"0.0.0","max_payload":1048576,"headers":true,"proto":1%s}` + "\r\n"

// TestHandshakeServerErrors: -ERRs during the handshake (before PONG) are
// the Connect error: a bad login matches ErrAuthorization, and the hub's
// authentication timeout says so.
func TestHandshakeServerErrors(t *testing.T) {
	for _, tc := range []struct {
		msg  string
		want []string
	}{
		{"Authorization Violation", []string{"Authorization Violation"}},
		{"Authentication Timeout", []string{"Authentication Timeout", "authentication timeout expired"}},
	} {
		url := fakeHub(t, func(c net.Conn) {
			fmt.Fprintf(c, fakeInfo, `,"auth_required":true`)
			r := bufio.NewReader(c)
			line, _ := r.ReadString('\n')
			if !strings.HasPrefix(line, "CONNECT ") || !strings.Contains(line, `"auth_token":"tok"`) || !strings.Contains(line, `"tls_required":false`) {
				t.Errorf("fake hub got %q", line)
			}
			fmt.Fprintf(c, "-ERR '%s'\r\n", tc.msg)
		})
		err := connectErr(t, url, &switchboard.Options{Token: "tok"})
		wantErr(t, err, switchboard.ErrAuthorization, tc.want...)
		var se *switchboard.ServerError
		if !errors.As(err, &se) || se.Msg != tc.msg {
			t.Fatalf("%v is not the ServerError %q", err, tc.msg)
		}
	}
}

// TestTLSConnectSaysTLS: after the hub's plaintext INFO the client starts
// TLS on the same connection and its CONNECT, sent over TLS, has
// tls_required set.
func TestTLSConnectSaysTLS(t *testing.T) {
	ca := certtest.New(t)
	scfg := ca.Server().ServerConfig()
	url := fakeHub(t, func(c net.Conn) {
		fmt.Fprintf(c, fakeInfo, `,"tls_required":true`)
		tc := tls.Server(c, scfg)
		if err := tc.Handshake(); err != nil {
			t.Errorf("fake hub: TLS handshake: %v", err)
			return
		}
		r := bufio.NewReader(tc)
		line, _ := r.ReadString('\n')
		if !strings.HasPrefix(line, "CONNECT ") || !strings.Contains(line, `"tls_required":true`) {
			t.Errorf("fake hub got %q over TLS", line)
		}
		if line, _ = r.ReadString('\n'); line != "PING\r\n" {
			t.Errorf("fake hub got %q, want PING", line)
		}
		fmt.Fprint(tc, "PONG\r\n")
		r.ReadString('\n') // until the client closes
	})
	nc := connect(t, url, &switchboard.Options{TLSConfig: ca.ClientConfig()})
	nc.Close()
}

// TestTLSHandshakeTimeout: a hub that asks for TLS and then stalls is cut
// off by DialTimeout (an ErrTLS) or by Connect's ctx (its error).
func TestTLSHandshakeTimeout(t *testing.T) {
	stall := func(c net.Conn) {
		fmt.Fprintf(c, fakeInfo, `,"tls_required":true`)
		io.Copy(io.Discard, c) // the ClientHello is never answered; until the client gives up
	}
	cfg := certtest.New(t).ClientConfig()

	start := time.Now()
	err := connectErr(t, fakeHub(t, stall), &switchboard.Options{TLSConfig: cfg, DialTimeout: 200 * time.Millisecond})
	wantErr(t, err, switchboard.ErrTLS, "did not answer")
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("took %v", d)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = switchboard.Connect(ctx, fakeHub(t, stall), &switchboard.Options{TLSConfig: cfg})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect with ctx deadline = %v", err)
	}

	ctx2, cancel2 := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel2)
	_, err = switchboard.Connect(ctx2, fakeHub(t, stall), &switchboard.Options{TLSConfig: cfg})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Connect with cancelled ctx = %v", err)
	}
}

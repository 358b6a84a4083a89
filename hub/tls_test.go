package hub

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"switchboard/auth"
	"switchboard/internal/certtest"
)

// startTLSHub runs a hub whose only listener is TLS on a free port, with
// the listener configured from files as `switchboard serve` does.
func startTLSHub(t *testing.T, cfg Config, o auth.TLSOptions) string {
	t.Helper()
	tc, err := auth.ServerTLSConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ListenTLS("127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		h.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return l.Addr().String()
}

const tlsRules = `
[[rule]]
who = ["cert:web"]
allow_publish = ["web.>"]
allow_subscribe = ["web.>"]

[[rule]]
who = ["login:alice"]
allow_publish = ["alice.>"]
allow_subscribe = ["alice.>"]
`

func TestMutualTLS(t *testing.T) {
	ca := certtest.New(t)
	srv := ca.Server()
	addr := startTLSHub(t, Config{Policy: testPolicy(t, []string{"alice"}, tlsRules)},
		auth.TLSOptions{CertFile: srv.CertFile, KeyFile: srv.KeyFile, ClientCAFile: ca.CertFile, Verify: true})
	url := "tls://" + addr

	t.Run("nats.go with a client certificate", func(t *testing.T) {
		web := ca.Client("web", time.Time{}, time.Time{})
		errc := make(chan error, 1)
		nc, err := nats.Connect(url, nats.ClientCert(web.CertFile, web.KeyFile), nats.RootCAs(ca.CertFile),
			nats.NoReconnect(), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errc <- err }))
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		sub, err := nc.SubscribeSync("web.>")
		if err != nil {
			t.Fatal(err)
		}
		if err := nc.Publish("web.page", []byte("hi")); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil || string(m.Data) != "hi" {
			t.Fatalf("round trip over mTLS: %v %v", m, err)
		}
		// Its identity is cert:web, which may not publish elsewhere.
		nc.Publish("alice.x", []byte("no"))
		nc.Flush()
		select {
		case err := <-errc:
			if !strings.Contains(err.Error(), `Permissions Violation for Publish to "alice.x"`) {
				t.Fatalf("got %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no permissions error for cert:web publishing to alice.x")
		}
	})

	other := certtest.New(t)
	for name, opts := range map[string][]nats.Option{
		"certificate from another CA": {nats.ClientCert(other.Client("web", time.Time{}, time.Time{}).CertFile, other.Client("web", time.Time{}, time.Time{}).KeyFile)},
		"expired certificate": func() []nats.Option {
			c := ca.Client("web", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
			return []nats.Option{nats.ClientCert(c.CertFile, c.KeyFile)}
		}(),
		"no certificate":                 nil,
		"no certificate, valid password": {nats.UserInfo("alice", "pw")},
	} {
		t.Run(name, func(t *testing.T) {
			opts := append([]nats.Option{nats.RootCAs(ca.CertFile), nats.NoReconnect(), nats.Timeout(5 * time.Second)}, opts...)
			nc, err := nats.Connect(url, opts...)
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
		})
	}

	t.Run("plaintext client", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		r := bufio.NewReader(c)
		info, _ := r.ReadString('\n')
		if !strings.Contains(info, `"tls_required":true`) || !strings.Contains(info, `"tls_verify":true`) {
			t.Fatalf("INFO: %s", info)
		}
		c.Write([]byte("CONNECT {}\r\nSUB > 1\r\n"))
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := r.ReadByte(); err == nil {
			t.Fatal("the hub answered a plaintext client after INFO")
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the hub kept a plaintext client connected")
		}
	})
}

func TestTLSWithPassword(t *testing.T) {
	ca := certtest.New(t)
	srv := ca.Server()
	addr := startTLSHub(t, Config{Policy: testPolicy(t, []string{"alice"}, tlsRules)},
		auth.TLSOptions{CertFile: srv.CertFile, KeyFile: srv.KeyFile})
	// Replies come to an inbox alice may subscribe to.
	nc, err := nats.Connect("tls://"+addr, nats.UserInfo("alice", "pw"), nats.RootCAs(ca.CertFile), nats.NoReconnect(), nats.CustomInboxPrefix("alice.inbox"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if got := nc.ConnectedUrl(); !strings.HasPrefix(got, "tls://") {
		t.Fatalf("connected to %s", got)
	}
	resp, err := nc.Request("alice.nobody", nil, 2*time.Second)
	if !errors.Is(err, nats.ErrNoResponders) {
		t.Fatalf("request: %v %v", resp, err)
	}
	if _, err := nats.Connect("tls://"+addr, nats.UserInfo("alice", "wrong"), nats.RootCAs(ca.CertFile), nats.NoReconnect()); err == nil ||
		!strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("wrong password over TLS: %v", err)
	}
}

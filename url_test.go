package switchboard_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"switchboard"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct{ url, network, addr string }{
		{"unix:///run/sb.sock", "unix", "/run/sb.sock"},
		{"UNIX:///tmp/x", "unix", "/tmp/x"},
		{"tcp://127.0.0.1:4222", "tcp", "127.0.0.1:4222"},
		{"nats://localhost:4333", "tcp", "localhost:4333"},
		{"nats://localhost", "tcp", "localhost:4222"},
		{"nats://localhost/", "tcp", "localhost:4222"},
		{"tcp://[::1]:5000", "tcp", "[::1]:5000"},
		{"nats://[::1]", "tcp", "[::1]:4222"},
		{"example.com:4222", "tcp", "example.com:4222"},
		{"tls://hub.example:4443", "tcp", "hub.example:4443"},
		{"TLS://hub.example", "tcp", "hub.example:4222"},
		{"tls://[::1]", "tcp", "[::1]:4222"},
	} {
		n, a, err := switchboard.ParseURL(tc.url)
		if err != nil || n != tc.network || a != tc.addr {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.url, n, a, err, tc.network, tc.addr)
		}
	}
	for _, bad := range []string{
		"unix://", "unix://relative/path", "tcp://", "tcp://host", "tcp://host:0", "tcp://host:99999",
		"tcp://host:port", "http://host:80", "ws://x:1", "host", "/abs/path", "tcp://:4222",
		"nats://user:pw@host:4222", "tcp://host:4222/path", "tcp://ho st:1", "://x",
		"tls://", "tls://a:b:c", "tls://u@h:1", "tls://host:4222/x",
	} {
		_, _, err := switchboard.ParseURL(bad)
		if !errors.Is(err, switchboard.ErrBadURL) {
			t.Errorf("ParseURL(%q) = %v, want ErrBadURL", bad, err)
		} else if !strings.Contains(err.Error(), bad) {
			t.Errorf("error %q does not quote the URL", err)
		}
	}
}

func TestParseURLDefault(t *testing.T) {
	t.Setenv("SWITCHBOARD_URL", "tcp://127.0.0.1:7777")
	n, a, err := switchboard.ParseURL("")
	if err != nil || n != "tcp" || a != "127.0.0.1:7777" {
		t.Fatalf("%q %q %v", n, a, err)
	}
	t.Setenv("SWITCHBOARD_URL", "")
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	n, a, err = switchboard.ParseURL("")
	if err != nil || n != "unix" || a != "/run/user/1000/switchboard.sock" {
		t.Fatalf("%q %q %v", n, a, err)
	}
}

func TestConnectErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := switchboard.Connect(ctx, "bogus://x", nil); !errors.Is(err, switchboard.ErrBadURL) {
		t.Fatalf("bad URL: %v", err)
	}
	sock := "unix://" + t.TempDir() + "/none.sock"
	_, err := switchboard.Connect(ctx, sock, nil)
	if err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("missing socket: %v", err)
	}
	t.Setenv("SWITCHBOARD_URL", sock)
	if _, err := switchboard.Connect(ctx, "", nil); err == nil || !strings.Contains(err.Error(), "none.sock") {
		t.Fatalf("default URL: %v", err)
	}
	if _, err := switchboard.Connect(ctx, "127.0.0.1:1", &switchboard.Options{DialTimeout: -1}); !errors.Is(err, switchboard.ErrBadArgument) {
		t.Fatalf("bad options: %v", err)
	}
	// A server that accepts but never speaks: DialTimeout bounds the handshake.
	px := startUnixProxy(t, "127.0.0.1:1") // accepts, then fails to dial the target and closes
	_, err = switchboard.Connect(ctx, px.URL(), &switchboard.Options{DialTimeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("connected to nothing")
	}
	cctx, ccancel := context.WithCancel(ctx)
	ccancel()
	if _, err := switchboard.Connect(cctx, px.URL(), nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	ts := startServer(t)
	px := startUnixProxy(t, ts.Addr())
	px.Freeze(toClient) // INFO never arrives
	start := time.Now()
	_, err := switchboard.Connect(context.Background(), px.URL(), &switchboard.Options{DialTimeout: 100 * time.Millisecond})
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Connect = %v after %v", err, time.Since(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = switchboard.Connect(ctx, px.URL(), nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Connect with ctx deadline = %v", err)
	}
	px.Thaw()
}

package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"switchboard/internal/certtest"
	"switchboard/internal/proctest"
)

// tlsNATS starts an in-process nats-server that requires TLS with a
// certificate from ca; mod sets its authentication. It returns the
// tls:// URL and stops the server at cleanup. (nats-server is the peer
// here: the hub's own TLS is tested with the hub.)
func tlsNATS(t *testing.T, ca *certtest.CA, mod func(*server.Options)) string {
	t.Helper()
	o := &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, TLSTimeout: 5}
	o.TLSConfig = ca.Server().ServerConfig()
	mod(o)
	if o.TLSVerify {
		o.TLSConfig.ClientAuth = tls.RequireAndVerifyClientCert
	}
	s, err := server.NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return fmt.Sprintf("tls://127.0.0.1:%d", s.Addr().(*net.TCPAddr).Port)
}

// TestClientTLSToken: pub, sub, req and reply over TLS with a token, from
// the flag or from $SWITCHBOARD_TOKEN (the flag wins); a wrong CA, a wrong
// token and bad TLS flags fail with one clear line.
func TestClientTLSToken(t *testing.T) {
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	ca := certtest.New(t)
	url := tlsNATS(t, ca, func(o *server.Options) { o.Authorization = "s3cret" })
	tlsArgs := []string{"--server", url, "--tls-ca", ca.CertFile}
	env := []string{proctest.Env("SWITCHBOARD_TOKEN", "s3cret")}
	args := func(a ...string) []string { return append(a, tlsArgs...) }

	reply := proctest.Start(t, env, bin, args("reply", "echo")...)
	reply.WaitOutput("answering requests on echo", 10*time.Second)
	sub := proctest.Start(t, env, bin, args("sub", "news", "--count", "1")...)
	sub.WaitOutput("subscribed to news", 10*time.Second)

	if _, stderr, code := runCLI(t, env, "", bin, args("pub", "news", "over tls")...); code != 0 {
		t.Fatalf("pub exit %d: %s", code, stderr)
	}
	if got := sub.Line(10 * time.Second); got != "[news] over tls" {
		t.Fatalf("sub printed %q", got)
	}
	// The token from the flag, overriding a wrong one in the environment.
	wrongEnv := []string{proctest.Env("SWITCHBOARD_TOKEN", "wrong")}
	if out, stderr, code := runCLI(t, wrongEnv, "", bin, args("req", "echo", "ping", "--token", "s3cret")...); code != 0 || out != "ping\n" {
		t.Fatalf("req: %q %q exit %d", out, stderr, code)
	}

	// Runtime failures: exit 1, one line that says why.
	other := certtest.New(t)
	for _, tc := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"wrong CA", env, []string{"pub", "news", "x", "--server", url, "--tls-ca", other.CertFile}, "x509: certificate signed by unknown authority"},
		{"system roots", env, []string{"pub", "news", "x", "--server", url}, "--tls-ca names the CA"},
		{"wrong token", wrongEnv, args("req", "echo", "x"), "Authorization Violation"},
		{"no token", nil, args("pub", "news", "x", "--token", ""), "Authorization Violation"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			_, stderr, code := runCLI(t, tc.env, "", bin, tc.args...)
			if code != 1 || !strings.Contains(stderr, tc.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Fatalf("exit %d, want 1 and one line mentioning %q; stderr %q", code, tc.want, stderr)
			}
			if strings.Contains(stderr, "s3cret") {
				t.Fatalf("the token shows in %q", stderr)
			}
		})
	}

	// Usage errors: exit 2.
	cli := ca.Client("cli", time.Time{}, time.Time{})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing CA file", []string{"--server", url, "--tls-ca", t.TempDir() + "/nope.pem"}, "nope.pem"},
		{"cert without key", []string{"--server", url, "--tls-cert", cli.CertFile}, "--tls-key"},
		{"TLS over unix", []string{"--server", "unix:///tmp/x.sock", "--tls-ca", ca.CertFile}, "unix sockets"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			_, stderr, code := runCLI(t, env, "", bin, append([]string{"pub", "news", "x"}, tc.args...)...)
			if code != 2 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, want 2 mentioning %q; stderr %q", code, tc.want, stderr)
			}
		})
	}

	reply.Signal(syscall.SIGTERM)
	if code := reply.Wait(10 * time.Second); code != 0 {
		t.Fatalf("reply exit %d: %s", code, reply.Output())
	}
	if code := sub.Wait(10 * time.Second); code != 0 {
		t.Fatalf("sub exit %d: %s", code, sub.Output())
	}
}

// TestClientMutualTLSPassword: mutual TLS plus a user and password from
// $SWITCHBOARD_USER and $SWITCHBOARD_PASSWORD; without the client
// certificate the hub refuses the connection.
func TestClientMutualTLSPassword(t *testing.T) {
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	ca := certtest.New(t)
	url := tlsNATS(t, ca, func(o *server.Options) {
		o.TLSVerify = true
		o.Users = []*server.User{{Username: "alice", Password: "pw"}}
	})
	cli := ca.Client("alice", time.Time{}, time.Time{})
	env := []string{proctest.Env("SWITCHBOARD_USER", "alice"), proctest.Env("SWITCHBOARD_PASSWORD", "pw")}
	mtls := []string{"--server", url, "--tls-ca", ca.CertFile, "--tls-cert", cli.CertFile, "--tls-key", cli.KeyFile}

	if _, stderr, code := runCLI(t, env, "", bin, append([]string{"pub", "a", "b"}, mtls...)...); code != 0 {
		t.Fatalf("pub with mutual TLS: exit %d: %s", code, stderr)
	}
	_, stderr, code := runCLI(t, env, "", bin, "pub", "a", "b", "--server", url, "--tls-ca", ca.CertFile)
	if code != 1 || !strings.Contains(stderr, "TLS") || !strings.Contains(stderr, "certificate") {
		t.Fatalf("pub without a client certificate: exit %d, stderr %q", code, stderr)
	}
	_, stderr, code = runCLI(t, env, "", bin, append([]string{"pub", "a", "b", "--password", "nope"}, mtls...)...)
	if code != 1 || !strings.Contains(stderr, "Authorization Violation") {
		t.Fatalf("pub with a wrong password: exit %d, stderr %q", code, stderr)
	}
}

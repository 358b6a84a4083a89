package interop

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"switchboard/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// requiredEnv makes a missing prerequisite fail the test instead of
// skipping it, for CI that must not lose this coverage silently.
const requiredEnv = "SWITCHBOARD_INTEROP_REQUIRED"

// skipOrFail skips the test because a prerequisite is missing, or fails it
// when requiredEnv is set to 1.
func skipOrFail(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requiredEnv) == "1" {
		t.Fatalf("%s (%s=1, so this is a failure, not a skip)", msg, requiredEnv)
	}
	t.Skip(msg)
}

// hub is a running `switchboard serve`.
type hub struct {
	url  string // nats://127.0.0.1:PORT
	proc *proctest.Proc
}

// startHub starts `switchboard serve` on a free loopback TCP port (and a
// private unix socket) with the extra flags given, waits until it accepts
// TCP connections, and stops it with SIGTERM when the test ends, checking
// that it exits 0.
func startHub(t *testing.T, extra ...string) *hub {
	t.Helper()
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	for attempt := 0; ; attempt++ {
		dir := t.TempDir()
		addr := freeAddr(t)
		args := []string{"serve",
			"--socket", filepath.Join(dir, "hub.sock"),
			"--listen", addr,
			"--data", filepath.Join(dir, "data"),
		}
		if !slices.Contains(extra, "--policy") && !slices.Contains(extra, "--config") {
			// These peers connect over TCP without credentials.
			pol := filepath.Join(dir, "policy.toml")
			if err := os.WriteFile(pol, []byte(proctest.OpenPolicy), 0o600); err != nil {
				t.Fatal(err)
			}
			args = append(args, "--policy", pol)
		}
		args = append(args, extra...)
		p := proctest.Start(t, nil, bin, args...)
		if err := waitTCP(addr, 15*time.Second); err != nil {
			// Another process may have taken the port between freeAddr
			// and the hub's listen; try another one.
			if attempt < 3 && strings.Contains(p.Output(), "address already in use") {
				continue
			}
			t.Fatalf("hub on %s: %v; output:\n%s", addr, err, p.Output())
		}
		h := &hub{url: "nats://" + addr, proc: p}
		t.Cleanup(func() {
			p.Signal(syscall.SIGTERM)
			if code := p.Wait(15 * time.Second); code != 0 {
				t.Errorf("hub exited %d after SIGTERM; output:\n%s", code, p.Output())
			}
		})
		return h
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitTCP waits until addr accepts a TCP connection.
func waitTCP(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// connectGo opens a nats.go connection to the hub, closed when the test
// ends (before the hub is stopped).
func connectGo(t *testing.T, url, name string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, nats.Name(name), nats.NoReconnect(),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			t.Errorf("nats.go %s: async error on %q: %v", name, subj, err)
		}))
	if err != nil {
		t.Fatalf("nats.go connect %s: %v", url, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// waitSubscribed returns once some other client has a subscription that
// matches subject. It sends requests to subject until one is not answered
// with "no responders": the hub answers 503 only when nothing matches, so
// exactly one probe (the last) reaches the subscriber, with "probe" as its
// body.
func waitSubscribed(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := nc.Request(subject, []byte("probe"), 300*time.Millisecond)
		if err == nil || errors.Is(err, nats.ErrTimeout) {
			return
		}
		if !errors.Is(err, nats.ErrNoResponders) {
			t.Fatalf("probe request on %s: %v", subject, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing subscribed to %s within 20s", subject)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// run runs name with args in dir with env (the whole environment) and
// returns its combined output, failing the test if it does not finish
// within timeout.
func run(t *testing.T, timeout time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %s did not finish within %v; output:\n%s", name, strings.Join(args, " "), timeout, out)
	}
	return string(out), err
}

// offline reports whether a tool's output says the network was
// unreachable, as opposed to a real failure.
func offline(out string) bool {
	for _, s := range []string{
		"no such host", "dial tcp", "connection refused", "network is unreachable",
		"i/o timeout", "TLS handshake timeout", "proxyconnect",
		"ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "ENETUNREACH",
		"Temporary failure resolving", "Could not resolve",
	} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// envWithout returns the current environment without the variables whose
// names start with one of prefixes, plus extra.
func envWithout(prefixes []string, extra ...string) []string {
	var env []string
next:
	for _, kv := range os.Environ() {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

package interop

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"switchboard/internal/proctest"
)

// natscliVersion is the nats CLI the test builds. v0.5.1 needs Go 1.26 and
// its own go.sum resolves through the module proxy.
const natscliVersion = "v0.5.1"

// writeDeadline is the hub's --write-deadline in TestNatsCLI: short, so that
// idle connections cross it within the test.
const writeDeadline = time.Second

// natsCLI runs the nats CLI against one hub.
type natsCLI struct {
	bin   string
	url   string
	extra []string // environment overrides: a private HOME and config dirs
}

// args puts the flags that pin the CLI to our hub in front of args.
func (c *natsCLI) args(args ...string) []string {
	return append([]string{"--no-context", "--server", c.url}, args...)
}

// run runs the CLI to completion, without any NATS_* variables from the
// environment, and returns its combined output.
func (c *natsCLI) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return run(t, 60*time.Second, "", envWithout([]string{"NATS_"}, c.extra...), c.bin, c.args(args...)...)
}

// mustRun runs the CLI and fails the test unless it exits 0.
func (c *natsCLI) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("nats %s: %v; output:\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// start runs the CLI in the background; it is killed when the test ends.
// (--server and --no-context override any NATS_URL or NATS_CONTEXT.)
func (c *natsCLI) start(t *testing.T, args ...string) *proctest.Proc {
	t.Helper()
	return proctest.Start(t, c.extra, c.bin, c.args(args...)...)
}

// TestNatsCLI drives the hub with the official nats CLI
// (github.com/nats-io/natscli), including nats bench.
func TestNatsCLI(t *testing.T) {
	bin := buildNatsCLI(t)
	h := startHub(t, "--write-deadline", writeDeadline.String())
	home := t.TempDir()
	cli := &natsCLI{bin: bin, url: h.url, extra: []string{
		"HOME=" + home,
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_DATA_HOME=" + filepath.Join(home, "data"),
		"NO_COLOR=1",
	}}
	nc := connectGo(t, h.url, "interop-go")

	t.Run("version", func(t *testing.T) {
		out := strings.TrimSpace(mustOut(t, exec.Command(bin, "--version")))
		if out != natscliVersion {
			t.Errorf("nats --version = %q, want %q", out, natscliVersion)
		}
	})

	t.Run("pub", func(t *testing.T) {
		sub, err := nc.SubscribeSync("interop.cli.pub")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		cli.mustRun(t, "pub", "interop.cli.pub", "hello {{Count}}", "--count", "3", "-H", "X-A:1", "-H", "X-B:two words")
		cli.mustRun(t, "pub", "interop.cli.pub", "plain")
		for i, want := range []string{"hello 1", "hello 2", "hello 3", "plain"} {
			m, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if string(m.Data) != want {
				t.Errorf("message %d: body %q, want %q", i, m.Data, want)
			}
			if i < 3 && (m.Header.Get("X-A") != "1" || m.Header.Get("X-B") != "two words") {
				t.Errorf("message %d: headers %v", i, m.Header)
			}
		}
	})

	t.Run("sub", func(t *testing.T) {
		sub := cli.start(t, "sub", "--count", "4", "interop.cli.sub.>")
		waitSubscribed(t, nc, "interop.cli.sub.probe") // the first of the 4
		cli.mustRun(t, "pub", "interop.cli.sub.a.b", "from cli {{Count}}", "--count", "2")
		hm := nats.NewMsg("interop.cli.sub.hdr")
		hm.Data = []byte("from go")
		hm.Header.Set("X-Go", "yes")
		if err := nc.PublishMsg(hm); err != nil {
			t.Fatal(err)
		}
		if code := sub.Wait(15 * time.Second); code != 0 {
			t.Fatalf("nats sub --count 4 exited %d; output:\n%s", code, sub.Output())
		}
		out := sub.Output()
		for _, want := range []string{
			`Received on "interop.cli.sub.probe"`,
			`Received on "interop.cli.sub.a.b"`, "from cli 1", "from cli 2",
			`Received on "interop.cli.sub.hdr"`, "X-Go: yes", "from go",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("nats sub output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("reply-request", func(t *testing.T) {
		rep := cli.start(t, "reply", "interop.cli.svc", "answer")
		rep.WaitOutput("Listening on", 15*time.Second)
		// A Go requester reaches the CLI responder...
		m, err := nc.Request("interop.cli.svc", []byte("from go"), 5*time.Second)
		if err != nil {
			t.Fatalf("Go request to nats reply: %v; reply output:\n%s", err, rep.Output())
		}
		if string(m.Data) != "answer" {
			t.Errorf("Go request got %q, want \"answer\"", m.Data)
		}
		// ...and the CLI requester too, with headers.
		out := cli.mustRun(t, "request", "interop.cli.svc", "question", "-H", "X-Q:1")
		if !strings.Contains(out, "answer") {
			t.Errorf("nats request output lacks the answer:\n%s", out)
		}
		if !strings.Contains(rep.Output(), "question") {
			t.Errorf("nats reply did not show the request:\n%s", rep.Output())
		}
	})

	t.Run("request-go-responder", func(t *testing.T) {
		sub, err := nc.Subscribe("interop.cli.goecho", func(m *nats.Msg) {
			r := nats.NewMsg(m.Reply)
			r.Data = append([]byte("go says: "), m.Data...)
			r.Header.Set("X-Seen", m.Header.Get("X-Q"))
			m.RespondMsg(r)
		})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		nc.Flush()
		out := cli.mustRun(t, "request", "interop.cli.goecho", "hi", "-H", "X-Q:42")
		for _, want := range []string{"go says: hi", "X-Seen: 42"} {
			if !strings.Contains(out, want) {
				t.Errorf("nats request output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("request-no-responders", func(t *testing.T) {
		start := time.Now()
		out, _ := cli.run(t, "request", "interop.cli.nobody", "x", "--timeout", "10s")
		if !strings.Contains(out, "No responders") {
			t.Errorf("nats request to a subject nobody serves:\n%s", out)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("no responders took %v (the request timeout is 10s)", d)
		}
	})

	rate := regexp.MustCompile(`[0-9,]+ msgs/sec`)

	t.Run("bench-pub-sub", func(t *testing.T) {
		const msgs = "10000"
		bsub := cli.start(t, "bench", "sub", "interop.cli.bench", "--msgs", msgs, "--no-progress")
		// One probe is delivered and counts as one of the messages; the
		// publishers send all of theirs, so the last one is not needed.
		waitSubscribed(t, nc, "interop.cli.bench")
		out := cli.mustRun(t, "bench", "pub", "interop.cli.bench", "--msgs", msgs, "--clients", "2", "--size", "128B", "--no-progress")
		if !strings.Contains(out, "Core NATS publisher") || !rate.MatchString(out) {
			t.Errorf("nats bench pub printed no rate:\n%s", out)
		}
		if code := bsub.Wait(60 * time.Second); code != 0 {
			t.Fatalf("nats bench sub exited %d:\n%s", code, bsub.Output())
		}
		if s := bsub.Output(); !strings.Contains(s, "subscriber stats") || !rate.MatchString(s) {
			t.Errorf("nats bench sub printed no rate:\n%s", s)
		}
		t.Logf("bench pub:\n%s\nbench sub:\n%s", out, bsub.Output())
	})

	t.Run("bench-service", func(t *testing.T) {
		serve := cli.start(t, "bench", "service", "serve", "interop.cli.bsvc", "--clients", "2", "--no-progress")
		waitSubscribed(t, nc, "interop.cli.bsvc")
		out := cli.mustRun(t, "bench", "service", "request", "interop.cli.bsvc", "--msgs", "4000", "--clients", "2", "--no-progress")
		if !strings.Contains(out, "requester aggregated stats") || !rate.MatchString(out) {
			t.Errorf("nats bench service request printed no rate:\n%s", out)
		}
		t.Logf("bench service request:\n%s", out)

		// The benchmark's responders are long-lived connections: after an
		// idle spell longer than the hub's write deadline they must still
		// be served (nats micro ls asks them for their service info).
		time.Sleep(writeDeadline + 500*time.Millisecond)
		out = cli.mustRun(t, "request", "interop.cli.bsvc", "after idle")
		if !regexp.MustCompile(`(?m)^ok$`).MatchString(out) {
			t.Errorf("request after idle got no \"ok\" from nats bench service serve:\n%s", out)
		}
		out = cli.mustRun(t, "micro", "ls", "--json")
		var services []struct {
			ID        string `json:"id"`
			Endpoints []struct {
				Subject string `json:"subject"`
			} `json:"endpoints"`
		}
		if err := json.Unmarshal([]byte(out), &services); err != nil {
			t.Fatalf("nats micro ls --json: %v\n%s", err, out)
		}
		ids := map[string]bool{}
		for _, s := range services {
			for _, e := range s.Endpoints {
				if e.Subject == "interop.cli.bsvc" {
					ids[s.ID] = true
				}
			}
		}
		if len(ids) != 2 {
			t.Errorf("nats micro ls found %d bench service instances, want 2:\n%s", len(ids), out)
		}
		if s := serve.Output(); strings.Contains(s, "Disconnected") || strings.Contains(s, "Reconnected") {
			t.Errorf("the hub disconnected nats bench service serve:\n%s", s)
		}
	})

	t.Run("connection-tools", func(t *testing.T) {
		out := cli.mustRun(t, "rtt")
		if !strings.Contains(out, h.url) {
			t.Errorf("nats rtt:\n%s", out)
		}
		out = cli.mustRun(t, "server", "check", "connection")
		if !strings.Contains(out, "OK Connection OK") {
			t.Errorf("nats server check connection:\n%s", out)
		}
		out = cli.mustRun(t, "account", "info")
		for _, want := range []string{"Headers Supported: true", "Maximum Payload: 1.0 MiB", "JetStream is not supported"} {
			if !strings.Contains(out, want) {
				t.Errorf("nats account info lacks %q:\n%s", want, out)
			}
		}
	})

	// The system account ($SYS) and JetStream ($JS.API) are not part of the
	// hub: the CLI's commands for them must fail fast with "no responders",
	// not hang, and leave the hub working.
	t.Run("unsupported-fail-fast", func(t *testing.T) {
		for _, args := range [][]string{
			{"server", "ping", "--timeout", "10s"},
			{"server", "list", "--timeout", "10s"},
			{"stream", "ls", "--timeout", "10s"},
		} {
			start := time.Now()
			out, err := cli.run(t, args...)
			d := time.Since(start)
			if err == nil {
				t.Errorf("nats %s succeeded against the hub; update README.md:\n%s", strings.Join(args, " "), out)
			}
			if d > 5*time.Second {
				t.Errorf("nats %s took %v to fail; want a fast no-responders error:\n%s", strings.Join(args, " "), d, out)
			}
		}
		if _, err := nc.Request("interop.cli.nobody", nil, 2*time.Second); !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("hub after unsupported commands: %v", err)
		}
	})
}

func mustOut(t *testing.T, cmd *exec.Cmd) string {
	t.Helper()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out)
}

// buildNatsCLI returns the nats CLI binary, building it with `go install`
// from the module proxy the first time into a cache directory that outlives
// the test run (os.UserCacheDir()/switchboard/natscli-VERSION). It skips
// the test when the go command or the module proxy is unavailable.
func buildNatsCLI(t *testing.T) string {
	t.Helper()
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		cacheRoot = os.TempDir()
	}
	dir := filepath.Join(cacheRoot, "switchboard", "natscli-"+natscliVersion)
	bin := filepath.Join(dir, "nats")
	if out, err := exec.Command(bin, "--version").Output(); err == nil && strings.TrimSpace(string(out)) == natscliVersion {
		return bin
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		skipOrFail(t, "the go command is needed to build the nats CLI: %v", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Build into a private directory, then rename: a concurrent run never
	// sees a half-written binary.
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	t.Logf("building nats CLI %s into %s (first run only; this takes a few minutes)", natscliVersion, dir)
	start := time.Now()
	env := envWithout([]string{"GOFLAGS=", "GOWORK=", "GOBIN=", "GO111MODULE="},
		"GOFLAGS=-mod=mod", "GOWORK=off", "GOBIN="+tmp, "GO111MODULE=on")
	out, err := run(t, 15*time.Minute, tmp, env, goBin, "install", "github.com/nats-io/natscli/nats@"+natscliVersion)
	if err != nil {
		if offline(out) {
			skipOrFail(t, "cannot build the nats CLI: the Go module proxy is unreachable: %v\n%s", err, out)
		}
		t.Fatalf("go install github.com/nats-io/natscli/nats@%s: %v\n%s", natscliVersion, err, out)
	}
	if err := os.Rename(filepath.Join(tmp, "nats"), bin); err != nil {
		t.Fatal(err)
	}
	t.Logf("built nats CLI in %v", time.Since(start).Round(time.Second))
	return bin
}

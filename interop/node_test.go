package interop

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"switchboard/internal/proctest"
)

// nodeChecks are the checks interop.mjs runs, in order; every one must
// print "ok NAME".
var nodeChecks = []string{
	"connect",
	"flush-rtt",
	"pubsub",
	"pubsub-wildcard-star",
	"pubsub-wildcard-gt",
	"unsubscribe-max",
	"queue-group",
	"request-reply",
	"request-reply-go",
	"headers",
	"no-responders",
	"payload-512KiB",
	"max-payload",
	"max-payload-hub",
	"no-echo",
	"verbose-pedantic",
	"inbox-prefix",
	"publish-to-go",
	"drain",
	"drain-connection",
}

// nodeOutCount is how many messages interop.mjs publishes on
// interop.node.out for the Go subscriber.
const nodeOutCount = 1000

// TestNodeClient runs nodejs/interop.mjs (the official NATS JavaScript
// client, npm package nats v2) against the hub, with a nats.go responder
// and subscriber as its Go peers.
func TestNodeClient(t *testing.T) {
	node := nodeTools(t)
	dir, err := filepath.Abs("nodejs")
	if err != nil {
		t.Fatal(err)
	}
	npmInstall(t, dir)

	h := startHub(t)
	nc := connectGo(t, h.url, "interop-go")

	// The Go responder: answers with the request's body and headers, and
	// adds X-Responder: go when the request had headers.
	_, err = nc.Subscribe("interop.go.echo", func(m *nats.Msg) {
		r := nats.NewMsg(m.Reply)
		r.Data = m.Data
		if len(m.Header) > 0 {
			for k, v := range m.Header {
				r.Header[k] = v
			}
			r.Header.Set("X-Responder", "go")
		}
		if err := m.RespondMsg(r); err != nil {
			t.Errorf("Go responder: %v", err)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The Go subscriber for what the script publishes.
	out := make(chan *nats.Msg, nodeOutCount+100)
	if _, err := nc.ChanSubscribe("interop.node.out", out); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	script := filepath.Join(dir, "interop.mjs")
	p := proctest.Start(t, []string{"INTEROP_OUT_COUNT=" + strconv.Itoa(nodeOutCount)}, node, script, h.url)
	results := map[string]string{} // check name -> "ok" or the failure
	var order []string
	for {
		line := p.Line(90 * time.Second)
		if line == "all checks passed" || strings.HasSuffix(line, "check(s) failed") {
			break
		}
		switch {
		case strings.HasPrefix(line, "ok "):
			name := strings.TrimPrefix(line, "ok ")
			results[name] = "ok"
			order = append(order, name)
		case strings.HasPrefix(line, "FAIL "):
			name, why, _ := strings.Cut(strings.TrimPrefix(line, "FAIL "), ": ")
			results[name] = why
			order = append(order, name)
		default:
			t.Logf("node: %s", line)
		}
	}
	code := p.Wait(30 * time.Second)

	for _, name := range nodeChecks {
		t.Run(name, func(t *testing.T) {
			switch r, ok := results[name]; {
			case !ok:
				t.Errorf("interop.mjs printed no result for %s", name)
			case r != "ok":
				t.Errorf("interop.mjs: %s", r)
			}
		})
	}
	for _, name := range order {
		if !contains(nodeChecks, name) {
			t.Errorf("interop.mjs ran check %q that the Go test does not know; add it to nodeChecks", name)
		}
	}
	if code != 0 {
		t.Errorf("node interop.mjs exited %d; output:\n%s", code, p.Output())
	}

	t.Run("go-receives-node-publishes", func(t *testing.T) {
		timeout := time.After(10 * time.Second)
		for i := range nodeOutCount {
			select {
			case m := <-out:
				if got, want := string(m.Data), strconv.Itoa(i); got != want {
					t.Fatalf("message %d from node: body %q, want %q (out of order or lost)", i, got, want)
				}
			case <-timeout:
				t.Fatalf("Go subscriber got %d of %d messages from node", i, nodeOutCount)
			}
		}
		if err := nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if n := len(out); n != 0 {
			t.Errorf("Go subscriber got %d extra messages", n)
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// nodeTools returns the path of node, installing nodejs and npm with
// apt-get when they are missing and we are root; otherwise it skips.
func nodeTools(t *testing.T) string {
	t.Helper()
	node, errNode := exec.LookPath("node")
	_, errNpm := exec.LookPath("npm")
	if errNode == nil && errNpm == nil {
		return node
	}
	aptGet, errApt := exec.LookPath("apt-get")
	if errApt != nil || os.Geteuid() != 0 {
		skipOrFail(t, "node and npm are required (install Node.js 18 or newer with npm, e.g. apt-get install nodejs npm); node: %v, npm: %v", errNode, errNpm)
	}
	pkgs := []string{"nodejs", "npm"}
	if errNode == nil {
		pkgs = []string{"npm"}
	}
	t.Logf("installing %s with apt-get", strings.Join(pkgs, " "))
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := run(t, 5*time.Minute, "", env, aptGet, "update"); err != nil {
		skipOrFail(t, "apt-get update: %v\n%s", err, out)
	}
	args := append([]string{"install", "-y", "--no-install-recommends"}, pkgs...)
	if out, err := run(t, 10*time.Minute, "", env, aptGet, args...); err != nil {
		skipOrFail(t, "apt-get install %s: %v\n%s", strings.Join(pkgs, " "), err, out)
	}
	node, errNode = exec.LookPath("node")
	_, errNpm = exec.LookPath("npm")
	if errNode != nil || errNpm != nil {
		skipOrFail(t, "node or npm still missing after apt-get install: %v, %v", errNode, errNpm)
	}
	return node
}

// npmInstall runs `npm ci` in dir unless node_modules already holds exactly
// the versions package-lock.json pins.
func npmInstall(t *testing.T, dir string) {
	t.Helper()
	why := nodeModulesStale(dir)
	if why == "" {
		return
	}
	t.Logf("npm ci: %s", why)
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "npm_config_update_notifier=false", "npm_config_loglevel=error")
	out, err := run(t, 5*time.Minute, dir, env, npm, "ci", "--no-audit", "--no-fund")
	if err != nil {
		if offline(out) {
			skipOrFail(t, "npm ci could not reach the npm registry: %v\n%s", err, out)
		}
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
	if why := nodeModulesStale(dir); why != "" {
		t.Fatalf("after npm ci, node_modules is still not what package-lock.json pins: %s", why)
	}
}

// nodeModulesStale returns why dir/node_modules does not match
// dir/package-lock.json, or "" if it does.
func nodeModulesStale(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		return err.Error()
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		return fmt.Sprintf("package-lock.json: %v", err)
	}
	for path, want := range lock.Packages {
		if !strings.HasPrefix(path, "node_modules/") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(path), "package.json"))
		if err != nil {
			return fmt.Sprintf("%s is missing", path)
		}
		var got struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(b, &got); err != nil || got.Version != want.Version {
			return fmt.Sprintf("%s is %q, want %q", path, got.Version, want.Version)
		}
	}
	return ""
}

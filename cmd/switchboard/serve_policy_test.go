package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"switchboard/internal/proctest"
)

// Policy keys may live in the hub's config file: here a rule there
// denies the test's own uid (the hub's owner) a subject, and the hub
// enforces it with the rule's line in the audit log.
func TestPolicyInConfigFile(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "hub.sock")
	cfg := filepath.Join(dir, "hub.toml")
	os.WriteFile(cfg, []byte(`socket = "`+sock+`"
listen = ""
auth_timeout = "1s"

[[rule]]
who = ["*"]
deny_publish = ["audit.>"]
`), 0o600)
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	hub := proctest.Start(t, nil, bin, "serve", "--config", cfg, "--data", filepath.Join(dir, "data"))
	proctest.WaitForSocket(t, sock, 10*time.Second)
	env := []string{"SWITCHBOARD_URL=unix://" + sock}
	if _, stderr, code := runCLI(t, env, "", bin, "pub", "audit.x", "no"); code != 1 || !strings.Contains(stderr, `Permissions Violation for Publish to "audit.x"`) {
		t.Fatalf("pub audit.x: exit %d, stderr %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, env, "", bin, "pub", "other.x", "yes"); code != 0 {
		t.Fatalf("pub other.x: exit %d, stderr %q", code, stderr)
	}
	hub.WaitOutput("hub.toml:7", 10*time.Second) // the audit line names the rule's deny_publish line
}

func TestPolicyConfigErrors(t *testing.T) {
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	pol := write("policy.toml", "[[rule]]\nwho = [\"*\"]\ndeny_subscribe = [\"x\"]\n")
	sock := filepath.Join(dir, "s.sock")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"policy twice", []string{"--config", write("a.toml", "[[rule]]\nwho = [\"*\"]\ndeny_subscribe = [\"y\"]\n"), "--policy", pol}, "keep one"},
		{"bad principal", []string{"--policy", write("b.toml", "[[rule]]\nwho = [\"pid:1\"]\nallow_publish = [\">\"]\n")}, "b.toml:2"},
		{"bad pattern", []string{"--policy", write("c.toml", "[[rule]]\nwho = [\"*\"]\nallow_publish = [\"a..b\"]\n")}, "c.toml:3"},
		{"tls key without cert", []string{"--tls-key", pol}, "tls"},
		{"verify without ca", []string{"--tls-cert", pol, "--tls-key", pol, "--tls-verify", "--listen", "127.0.0.1:0"}, "client CA"},
		{"unknown socket group", []string{"--socket-group", "no-such-group-here"}, "socket_group"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			args := append([]string{"serve", "--socket", sock, "--listen", ""}, tc.args...)
			_, stderr, code := runCLI(t, nil, "", bin, args...)
			if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q: want exit 2 and one line mentioning %q", code, stderr, tc.want)
			}
		})
	}
}

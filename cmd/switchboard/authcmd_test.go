package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"switchboard/auth"
	"switchboard/internal/proctest"
)

// authPolicy is the example with a third rule, so that line
// numbers are not all small.
const authPolicy = `[[rule]]
who = ["uid:4242"]
allow_publish = ["orders.>"]
allow_subscribe = [">"]

[[rule]]
who = ["*"]
# a comment line
deny_subscribe = ["secrets.>"]

[[rule]]
name = "web"
who = ["cert:web"]
allow_publish = ["web.*"]
`

func TestAuthCheck(t *testing.T) {
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.toml")
	os.WriteFile(pol, []byte(authPolicy), 0o600)
	// uid 4242 is given a gid so that the check does not depend on the
	// users of this machine.
	me := []string{"--policy", pol, "--who", "uid:4242", "--who", "gid:4242", "--owner-uid", "1"}
	cases := []struct {
		args []string
		code int
		want []string // lines of stdout, in order
	}{
		{append(me, "--pub", "orders.new"), 0, []string{
			`allow: publish "orders.new" by uid:4242 — rule 1 (` + pol + `:3) allow_publish "orders.>"`,
			`principals: * gid:4242 uid:4242`,
		}},
		{append(me, "--sub", "secrets.x"), 1, []string{
			`deny: subscribe "secrets.x" by uid:4242 — rule 2 (` + pol + `:9) deny_subscribe "secrets.>"`,
		}},
		{append(me, "--pub", "secrets.x"), 1, []string{
			`deny: publish "secrets.x" by uid:4242 — no rule allows it`,
		}},
		{append(me, "--sub", "*.x"), 0, []string{
			`allow: subscribe "*.x" by uid:4242 — rule 1 (` + pol + `:4) allow_subscribe ">"`,
			`filtered: `,
		}},
		{[]string{"--policy", pol, "--who", "cert:web", "--pub", "web.a"}, 0, []string{
			`allow: publish "web.a" by cert:web — rule 3 "web" (` + pol + `:14) allow_publish "web.*"`,
			`principals: * cert:web`,
		}},
		{[]string{"--policy", pol, "--who", "uid:0", "--who", "gid:0", "--pub", "$SB.x"}, 0, []string{
			`allow: publish "$SB.x" by uid:0 — the built-in owner rule allow_publish "$SB.>"`,
		}},
		{[]string{"--policy", pol, "--who", "login:someone", "--pub", "orders.new"}, 1, []string{
			`deny: publish "orders.new" by login:someone — no rule allows it`,
			`note: no rule allows this identity anything`,
		}},
	}
	for _, tc := range cases {
		args := append([]string{"auth", "check"}, tc.args...)
		out, stderr, code := runCLI(t, nil, "", bin, args...)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d; stdout %q stderr %q", tc.args, code, tc.code, out, stderr)
			continue
		}
		lines := strings.Split(out, "\n")
		for _, w := range tc.want {
			i := 0
			for i < len(lines) && !strings.HasPrefix(lines[i], w) {
				i++
			}
			if i == len(lines) {
				t.Errorf("%v: stdout lacks a line %q:\n%s", tc.args, w, out)
				break
			}
			lines = lines[i+1:]
		}
	}
}

func TestAuthCheckUsageErrors(t *testing.T) {
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.toml")
	os.WriteFile(pol, []byte(authPolicy), 0o600)
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[[rule]]\nwho = [\"uid:x\"]\nallow_publish = [\"a..b\"]\n"), 0o600)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--policy", bad, "--who", "uid:1", "--pub", "a"}, bad + ":2: rule #1: who"},
		{[]string{"--policy", filepath.Join(dir, "none.toml"), "--who", "uid:1", "--pub", "a"}, "none.toml"},
		{[]string{"--policy", pol, "--who", "uid:1", "--pub", "a", "--sub", "b"}, "exactly one of --pub and --sub"},
		{[]string{"--policy", pol, "--who", "uid:1"}, "exactly one of --pub and --sub"},
		{[]string{"--policy", pol, "--pub", "a"}, "--who"},
		{[]string{"--who", "uid:1", "--pub", "a"}, "--policy"},
		{[]string{"--policy", pol, "--who", "uid:1", "--pub", "a.*"}, "not a valid literal subject"},
		{[]string{"--policy", pol, "--who", "uid:1", "--sub", "a..b"}, "not a valid subject pattern"},
		{[]string{"--policy", pol, "--who", "host:x", "--pub", "a"}, `unknown principal kind "host"`},
		{[]string{"--policy", pol, "--who", "uid:x", "--pub", "a"}, "must be a number"},
		{[]string{"--policy", pol, "--who", "gid:5", "--pub", "a"}, "needs its uid"},
		{[]string{"--policy", pol, "--who", "uid:1", "--pub", "a", "--bogus"}, "unknown flag"},
		{[]string{"extra", "--policy", pol, "--who", "uid:1", "--pub", "a"}, "unknown command"},
	}
	for _, tc := range cases {
		args := append([]string{"auth", "check"}, tc.args...)
		_, stderr, code := runCLI(t, nil, "", bin, args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %q", tc.args, code, stderr)
			continue
		}
		if strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: stderr %q: want one line mentioning %q", tc.args, stderr, tc.want)
		}
	}
}

func TestAuthHashAndToken(t *testing.T) {
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	out, stderr, code := runCLI(t, nil, "correct horse\nsecond line\n", bin, "auth", "hash")
	hash := strings.TrimSpace(out)
	if code != 0 || bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")) != nil {
		t.Fatalf("auth hash: exit %d, %q %q", code, out, stderr)
	}
	if cost, _ := bcrypt.Cost([]byte(hash)); cost != auth.HashCost {
		t.Errorf("cost %d", cost)
	}
	if _, stderr, code := runCLI(t, nil, "", bin, "auth", "hash"); code != 2 || !strings.Contains(stderr, "no password") {
		t.Errorf("auth hash without input: exit %d %q", code, stderr)
	}

	out, stderr, code = runCLI(t, nil, "", bin, "auth", "token", "backup")
	m := regexp.MustCompile(`^([A-Za-z0-9_-]{43})\n\n(\[\[token\]\]\nname = "backup"\nsha256 = "([0-9a-f]{64})"\n)$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("auth token: exit %d, stdout %q stderr %q", code, out, stderr)
	}
	if auth.TokenDigest(m[1]) != m[3] {
		t.Errorf("sha256 %s is not the digest of %s", m[3], m[1])
	}
	// The snippet and a hash from `auth hash` make a policy that works.
	policy := "[[user]]\nname = \"web\"\npassword = \"" + hash + "\"\n\n" + m[2] + "\n[[rule]]\nwho = [\"token:backup\", \"login:web\"]\nallow_publish = [\"backup.>\"]\n"
	dir := t.TempDir()
	pol := filepath.Join(dir, "p.toml")
	os.WriteFile(pol, []byte(policy), 0o600)
	for _, who := range []string{"token:backup", "login:web"} {
		if out, stderr, code := runCLI(t, nil, "", bin, "auth", "check", "--policy", pol, "--who", who, "--pub", "backup.x"); code != 0 {
			t.Errorf("check %s: exit %d %q %q", who, code, out, stderr)
		}
	}
	if _, _, code := runCLI(t, nil, "", bin, "auth", "token"); code != 2 {
		t.Errorf("auth token without a name: exit %d", code)
	}
	if _, _, code := runCLI(t, nil, "", bin, "auth"); code != 2 {
		t.Errorf("auth without a subcommand: exit %d", code)
	}
}

package interop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/crypto/bcrypt"
)

// TestNatsCLIAuth logs the official nats CLI in with a token and with a
// password, and checks that the hub refuses it with wrong ones and keeps
// each identity to the subjects its rule grants.
func TestNatsCLIAuth(t *testing.T) {
	bin := buildNatsCLI(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	policy := `
[[user]]
name = "alice"
password = "` + string(hash) + `"

[[token]]
name = "cli"
token = "s3cret-token"

[[rule]]
who = ["login:alice", "token:cli"]
allow_publish = ["interop.auth.>"]
allow_subscribe = ["interop.auth.>", "_INBOX.>"]
`
	path := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	h := startHub(t, "--policy", path)
	home := t.TempDir()
	cli := &natsCLI{bin: bin, url: h.url, extra: []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, "config"), "NO_COLOR=1"}}

	nc, err := nats.Connect(h.url, nats.Token("s3cret-token"), nats.Name("interop-go"), nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("interop.auth.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	cli.mustRun(t, "--token", "s3cret-token", "pub", "interop.auth.token", "by token")
	cli.mustRun(t, "--user", "alice", "--password", "pw", "pub", "interop.auth.login", "by password")
	for _, want := range []string{"by token", "by password"} {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil || string(m.Data) != want {
			t.Fatalf("want %q: %v %v", want, m, err)
		}
	}

	for name, args := range map[string][]string{
		"wrong token":    {"--token", "guess"},
		"wrong password": {"--user", "alice", "--password", "nope"},
		"no credentials": nil,
	} {
		out, err := cli.run(t, append(args, "pub", "interop.auth.x", "refused")...)
		if err == nil || !strings.Contains(strings.ToLower(out), "authorization violation") {
			t.Errorf("%s: err %v, output:\n%s", name, err, out)
		}
	}

	// A subject outside the rule: the CLI's subscription is refused.
	out, err := cli.run(t, "--token", "s3cret-token", "sub", "private.>", "--count", "1", "--timeout", "2s")
	if err == nil || !strings.Contains(out, `Permissions Violation for Subscription to "private.>"`) {
		t.Errorf("sub private.>: err %v, output:\n%s", err, out)
	}
	if m, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Errorf("a refused publish arrived: %q", m.Data)
	}
}

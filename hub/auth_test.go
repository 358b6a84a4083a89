package hub

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"switchboard/auth"
)

// The policy tests log in over TCP as password users: the test process
// runs as the hub's own uid (and often root), which may do everything, so
// restricted identities come from credentials here. Other uids are tested
// with real processes in cmd/switchboard/uid_test.go.

// testPolicy compiles a policy whose [[user]] entries all have password
// "pw" (hashed at the lowest bcrypt cost, to keep the tests fast).
func testPolicy(t testing.TB, users []string, rules string) *auth.Policy {
	t.Helper()
	return testPolicyTop(t, "", users, rules)
}

// testPolicyTop is testPolicy with top-level keys, which TOML needs before
// the first table.
func testPolicyTop(t testing.TB, top string, users []string, rules string) *auth.Policy {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(top)
	for _, u := range users {
		fmt.Fprintf(&b, "\n[[user]]\nname = %q\npassword = %q\n", u, hash)
	}
	b.WriteString(rules)
	p, err := auth.Parse("policy.toml", []byte(b.String()))
	if err != nil {
		t.Fatalf("policy: %v\n%s", err, b.String())
	}
	return p
}

// login dials TCP and sends CONNECT as user (password "pw"), then PING; it
// returns once PONG arrives.
func login(t testing.TB, th *testHub, user string) *rawConn {
	t.Helper()
	rc := dialRaw(t, th.transports()[1])
	rc.send(fmt.Sprintf("CONNECT {\"user\":%q,\"pass\":\"pw\",\"headers\":true}\r\nPING\r\n", user))
	rc.expect("PONG")
	return rc
}

// owner dials the unix socket: the test process's own uid.
func owner(t testing.TB, th *testHub) *rawConn {
	t.Helper()
	rc := dialRaw(t, th.transports()[0])
	rc.send("CONNECT {}\r\nPING\r\n")
	rc.expect("PONG")
	return rc
}

// ping checks the connection is alive and everything sent before was
// processed.
func (rc *rawConn) ping() {
	rc.t.Helper()
	rc.send("PING\r\n")
	rc.expect("PONG")
}

// nextMsg reads one MSG and returns its subject and payload.
func (rc *rawConn) nextMsg() (subj, payload string) {
	rc.t.Helper()
	line := rc.line()
	f := strings.Fields(line)
	if len(f) < 4 || f[0] != "MSG" {
		rc.t.Fatalf("got %q, want MSG", line)
	}
	return f[1], rc.line()
}

// syncBuffer is a log sink safe for the hub's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const enforcementRules = `
[[rule]]
name = "alice reads everything but secrets, writes public"
who = ["login:alice"]
allow_publish = ["public.>"]
allow_subscribe = [">"]
deny_subscribe = ["secrets.>"]

[[rule]]
who = ["login:bob"]
allow_publish = [">"]
deny_publish = ["public.forbidden"]
allow_subscribe = ["public.>"]

[[rule]]
who = ["login:svc"]
allow_subscribe = ["svc.>"]

[[rule]]
who = ["login:limited"]
allow_publish = ["x"]
allow_subscribe = ["x.>"]
max_connections = 2
max_subscriptions = 2
max_payload = 16
`

func TestPolicyEnforcement(t *testing.T) {
	var logs syncBuffer
	th := startHub(t, Config{
		Policy: testPolicy(t, []string{"alice", "bob", "svc", "limited"}, enforcementRules),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	root := owner(t, th)
	root.send("SUB > 1\r\n")
	root.ping()

	t.Run("denied subscribe", func(t *testing.T) {
		alice := login(t, th, "alice")
		alice.send("SUB secrets.> 1\r\n")
		alice.expect(`-ERR 'Permissions Violation for Subscription to "secrets.>"'`)
		// Deny wins for queue subscriptions too.
		alice.send("SUB secrets.x workers 2\r\n")
		alice.expect(`-ERR 'Permissions Violation for Subscription to "secrets.x" using queue "workers"'`)
		alice.ping() // the connection stays
		if got := th.Stats().Subscriptions; got != 1 {
			t.Fatalf("%d subscriptions, want only root's", got)
		}
	})

	t.Run("wildcard never delivers denied subjects", func(t *testing.T) {
		alice := login(t, th, "alice")
		alice.send("SUB > 1\r\nSUB *.x workers 2\r\n")
		alice.ping()
		bob := login(t, th, "bob")
		filtered := th.Stats().Filtered
		bob.send("PUB secrets.x 4\r\nleak\r\nPUB secrets.deep.y 4\r\nleak\r\nPUB public.x 2\r\nok\r\n")
		bob.ping()
		// Exactly two deliveries of public.x (plain and queue), nothing else.
		for range 2 {
			if subj, data := alice.nextMsg(); subj != "public.x" || data != "ok" {
				t.Fatalf("alice got %s %q", subj, data)
			}
		}
		alice.ping()
		if got := th.Stats().Filtered - filtered; got != 3 {
			t.Fatalf("filtered %d deliveries, want 3 (2 on >, 1 on the queue group)", got)
		}
		// Root (no deny rule applies to it) saw all three.
		for _, want := range []string{"secrets.x", "secrets.deep.y", "public.x"} {
			if subj, _ := root.nextMsg(); subj != want {
				t.Fatalf("root got %s, want %s", subj, want)
			}
		}
	})

	t.Run("denied publish is dropped, connection kept", func(t *testing.T) {
		alice := login(t, th, "alice")
		alice.send("PUB private.x 4\r\nleak\r\n")
		alice.expect(`-ERR 'Permissions Violation for Publish to "private.x"'`)
		bob := login(t, th, "bob")
		bob.send("PUB public.forbidden 4\r\nleak\r\n")
		bob.expect(`-ERR 'Permissions Violation for Publish to "public.forbidden"'`)
		alice.send("PUB public.sentinel 1\r\n1\r\n")
		alice.ping()
		if subj, _ := root.nextMsg(); subj != "public.sentinel" {
			t.Fatalf("root got %s first, want the sentinel (a denied publish leaked)", subj)
		}
	})

	t.Run("$SB is reserved", func(t *testing.T) {
		bob := login(t, th, "bob") // allow_publish ">" does not reach $SB.
		bob.send("PUB $SB.TEST.jobs 1\r\nx\r\n")
		bob.expect(`-ERR 'Permissions Violation for Publish to "$SB.TEST.jobs"'`)
		root.send("PUB $SB.TEST.jobs 1\r\nx\r\n")
		if subj, _ := root.nextMsg(); subj != "$SB.TEST.jobs" {
			t.Fatalf("root got %s", subj)
		}
	})

	t.Run("a responder may answer once", func(t *testing.T) {
		svc := login(t, th, "svc") // may subscribe svc.>, publish nothing
		svc.send("SUB svc.time 1\r\n")
		svc.ping()
		requester := owner(t, th)
		requester.send("SUB _INBOX.r1 9\r\nPUB svc.time _INBOX.r1 1\r\n?\r\n")
		if line := svc.line(); line != "MSG svc.time 1 _INBOX.r1 1" {
			t.Fatalf("svc got %q", line)
		}
		svc.line()
		svc.send("PUB _INBOX.r1 5\r\nnoon!\r\n")
		svc.ping()
		if subj, data := requester.nextMsg(); subj != "_INBOX.r1" || data != "noon!" {
			t.Fatalf("requester got %s %q", subj, data)
		}
		// Once only.
		svc.send("PUB _INBOX.r1 5\r\nagain\r\n")
		svc.expect(`-ERR 'Permissions Violation for Publish to "_INBOX.r1"'`)
		// And not to a reply subject it never received.
		svc.send("PUB _INBOX.other 1\r\nx\r\n")
		svc.expect(`-ERR 'Permissions Violation for Publish to "_INBOX.other"'`)
		for range 2 { // root's > saw the request and the one answer
			root.nextMsg()
		}
	})

	t.Run("limits per principal", func(t *testing.T) {
		a := login(t, th, "limited")
		login(t, th, "limited")
		third := dialRaw(t, th.transports()[1])
		third.send("CONNECT {\"user\":\"limited\",\"pass\":\"pw\"}\r\nPING\r\n")
		third.expect("-ERR 'maximum connections exceeded'")
		third.expectClosed()

		a.send("SUB x.1 1\r\nSUB x.2 2\r\nSUB x.3 3\r\n")
		a.expect("-ERR 'Maximum Subscriptions Exceeded'")
		a.send("PUB x 16\r\n0123456789abcdef\r\n")
		a.ping()
		a.send("PUB x 17\r\n0123456789abcdefg\r\n")
		a.expect("-ERR 'Maximum Payload Violation'")
		a.expectClosed()
	})

	t.Run("audit log", func(t *testing.T) {
		out := logs.String()
		for _, want := range []string{
			`msg="permission denied"`, "audit=true", "who.login=alice", "op=subscribe", `subject=secrets.>`,
			"rule=policy.toml:", "transport=tcp",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("audit log lacks %q:\n%s", want, out)
			}
		}
		if th.Stats().Denied < 6 {
			t.Errorf("Denied = %d, want at least 6", th.Stats().Denied)
		}
	})
}

func TestAuthenticationFailures(t *testing.T) {
	var logs syncBuffer
	th := startHub(t, Config{
		Policy: testPolicy(t, []string{"alice"}, "[[rule]]\nwho = [\"login:alice\"]\nallow_publish = [\">\"]\n"),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	tcp := th.transports()[1]
	for name, connect := range map[string]string{
		"wrong password": `CONNECT {"user":"alice","pass":"nope"}`,
		"unknown user":   `CONNECT {"user":"mallory","pass":"pw"}`,
		"no credentials": `CONNECT {}`,
		"unknown token":  `CONNECT {"auth_token":"guess"}`,
	} {
		t.Run(name, func(t *testing.T) {
			rc := dialRaw(t, tcp)
			rc.send(connect + "\r\nPING\r\n")
			rc.expect("-ERR 'Authorization Violation'")
			rc.expectClosed()
		})
	}
	t.Run("operations before CONNECT", func(t *testing.T) {
		rc := dialRaw(t, tcp)
		rc.send("SUB > 1\r\n")
		rc.expect("-ERR 'Authorization Violation'")
		rc.expectClosed()
	})
	if got := th.Stats().AuthFailures; got != 5 {
		t.Errorf("AuthFailures = %d, want 5", got)
	}
	if th.Stats().Subscriptions != 0 {
		t.Error("a refused connection left a subscription")
	}
	if !strings.Contains(logs.String(), `msg="authentication failed"`) {
		t.Errorf("no audit log of the failures:\n%s", logs.String())
	}
	// INFO tells clients to send credentials.
	nc, err := net.Dial("tcp", th.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	info, _ := newReader(nc).ReadString('\n')
	if !strings.Contains(info, `"auth_required":true`) {
		t.Errorf("INFO lacks auth_required: %s", info)
	}
}

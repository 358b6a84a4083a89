package hub

import (
	"fmt"
	"strings"
	"testing"
)

// Regression tests from the security review of the policy: each failed
// before its fix.

const reviewRules = `
[[token]]
name = "t"
token = "review-token"

[[rule]]
name = "alice: sends requests to svc, reads her own inbox"
who = ["login:alice"]
allow_publish = ["svc.>"]
allow_subscribe = ["_INBOX.alice.>"]

[[rule]]
name = "svc: serves svc.>, must never write the audit trail"
who = ["login:svc"]
allow_subscribe = ["svc.>"]
deny_publish = ["audit.>"]

[[rule]]
name = "mallory: may only chat"
who = ["login:mallory"]
allow_publish = ["chat"]
allow_subscribe = ["chat"]

[[rule]]
who = ["token:t"]
allow_publish = ["tok.>"]
allow_subscribe = ["tok.>"]
`

// A responder's one-shot response permission ignores its explicit
// deny_publish and the $SB. reservation: a restricted requester (alice, who
// may not publish to $SB. or audit.>) picks the reply subject and the
// responder publishes there. docs/security.md: "Deny always wins" and
// "Publishing [to $SB.] needs an allow pattern that starts with $SB itself".
// nats-server likewise refuses reserved reply subjects from clients
// (isReservedReply, "Permissions Violation for Publish with Reply of").
func TestResponsePermissionIgnoresDenyAndReservation(t *testing.T) {
	th := startHub(t, Config{Policy: testPolicy(t, []string{"alice", "svc", "mallory"}, reviewRules)})
	root := owner(t, th)
	root.send("SUB > 1\r\n")
	root.ping()
	svc := login(t, th, "svc")
	svc.send("SUB svc.time 1\r\n")
	svc.ping()
	alice := login(t, th, "alice")

	// A reply subject into $SB. is refused from the requester already.
	alice.send("PUB svc.time $SB.Q.jobs 1\r\n?\r\n")
	alice.expect(`-ERR 'Permissions Violation for Publish with Reply of "$SB.Q.jobs"'`)
	for _, reply := range []string{"audit.log"} {
		t.Run(reply, func(t *testing.T) {
			alice.send(fmt.Sprintf("PUB svc.time %s 1\r\n?\r\n", reply))
			alice.ping()
			if line := svc.line(); line != "MSG svc.time 1 "+reply+" 1" {
				t.Fatalf("svc got %q", line)
			}
			svc.line()
			root.nextMsg() // root's > saw the request
			svc.send(fmt.Sprintf("PUB %s 6\r\nforged\r\nPING\r\n", reply))
			want := fmt.Sprintf(`-ERR 'Permissions Violation for Publish to "%s"'`, reply)
			if got := svc.line(); got != want {
				subj, data := root.nextMsg()
				t.Fatalf("svc's answer to %s was accepted (got %q, want %q); root received %s %q",
					reply, got, want, subj, data)
			}
			svc.expect("PONG")
		})
	}
}

// A restricted client grants itself publish permission on any subject: it
// subscribes to a subject it may publish to, publishes a "request" there
// with the reply subject it wants, receives its own message (echo) and so
// gets a response permission for that reply subject. One round trip per
// message, any subject, including $SB.; the same works across two
// connections of the same principal with echo off.
func TestSelfGrantedResponsePermission(t *testing.T) {
	th := startHub(t, Config{Policy: testPolicy(t, []string{"alice", "svc", "mallory"}, reviewRules)})
	root := owner(t, th)
	root.send("SUB > 1\r\n")
	root.ping()
	mallory := login(t, th, "mallory")
	mallory.send("SUB chat 1\r\n")
	mallory.ping()

	mallory.send("PUB chat $SB.ADMIN.shutdown 0\r\n\r\n")
	mallory.expect(`-ERR 'Permissions Violation for Publish with Reply of "$SB.ADMIN.shutdown"'`)
	for _, target := range []string{"secrets.anything"} {
		mallory.send("PUB chat " + target + " 0\r\n\r\n")
		if line := mallory.line(); line != "MSG chat 1 "+target+" 0" {
			t.Fatalf("mallory got %q", line)
		}
		mallory.line()
		root.nextMsg() // the "request" on chat
		mallory.send("PUB " + target + " 6\r\nforged\r\nPING\r\n")
		want := `-ERR 'Permissions Violation for Publish to "` + target + `"'`
		if got := mallory.line(); got != want {
			subj, data := root.nextMsg()
			t.Fatalf("mallory published to %s without permission (got %q, want %q); root received %s %q",
				target, got, want, subj, data)
		}
		mallory.expect("PONG")
	}
}

// The grant and response settings of a connection are read without a lock
// by every goroutine that delivers to it (deliver reads d.respTTL and
// d.grant, deliverable reads s.c.grant), but authorize rewrites them when a
// first CONNECT brings credentials. processConnect only checks that the
// connection has no subscription *now*: a publisher that matched one before
// the UNSUB is still iterating and reading those fields while CONNECT
// rewrites them. Here an early-authorized unix client (no CONNECT yet) has
// many subscriptions, a publisher fans a request out to them, and the
// client UNSUBs them all and sends CONNECT with a token meanwhile.
//
// This test asserts nothing itself: it fails under "go test -race" with a
// data race between client.deliver (route.go) and client.authorize
// (admit.go).
func TestRaceAuthorizeVersusDelivery(t *testing.T) {
	th := startHub(t, Config{
		Policy:     testPolicy(t, []string{"alice", "svc", "mallory"}, reviewRules),
		MaxPending: 1 << 30,
	})
	const n = 2000
	payload := strings.Repeat("x", 16<<10)
	var subs, unsubs strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&subs, "SUB race.x %d\r\n", i)
	}
	for i := n; i >= 1; i-- {
		fmt.Fprintf(&unsubs, "UNSUB %d\r\n", i)
	}
	unsubs.WriteString(`CONNECT {"auth_token":"review-token"}` + "\r\nPING\r\n")
	pub := owner(t, th)
	for range 12 {
		d := dialRaw(t, th.transports()[0]) // authorized at accept, no CONNECT yet
		d.send(subs.String())
		d.ping()
		pub.send(fmt.Sprintf("PUB race.x reply.x %d\r\n%s\r\n", len(payload), payload))
		d.send(unsubs.String())
		for d.line() != "PONG" {
		}
		pub.ping()
		d.nc.Close()
	}
}

// A limit on the shared principal "anonymous" locks out every client that
// would log in: with allow_anonymous, authorizeEarly counts each new TCP
// connection as anonymous before it can send CONNECT, and refuses it with
// -ERR 'maximum connections exceeded' when the anonymous count is full. One
// stranger holding max_connections idle anonymous connections (which are
// not subject to the auth timeout, being authorized at accept) keeps every
// password and token user off the TCP listener.
func TestAnonymousLimitLocksOutLogins(t *testing.T) {
	th := startHub(t, Config{Policy: testPolicyTop(t, "allow_anonymous = true\n", []string{"alice"}, `
[[rule]]
who = ["anonymous"]
allow_subscribe = ["public.>"]
max_connections = 1

[[rule]]
who = ["login:alice"]
allow_publish = [">"]
allow_subscribe = [">"]
`)})
	stranger := dialRaw(t, th.transports()[1]) // anonymous, authorized at accept
	stranger.ping()

	rc := dialRaw(t, th.transports()[1])
	rc.send("CONNECT {\"user\":\"alice\",\"pass\":\"pw\"}\r\nPING\r\n")
	if got := rc.line(); got != "PONG" {
		t.Fatalf("alice, with a valid password, got %q: the anonymous connection limit refused her before CONNECT", got)
	}
}

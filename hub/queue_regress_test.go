package hub

// Regression tests for defects a review found in the $SB.Q. policy surface
// and error reporting; each failed before its fix.
// Each test's comment describes the defect as it was before the fix.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

const queueReviewRules = `
[[rule]]
name = "worker: its own queue only, no secrets"
who = ["login:worker"]
allow_publish = ["$SB.Q.CREATE.mine", "$SB.Q.UPDATE.mine", "$SB.Q.CONSUMER.ADD.mine", "$SB.Q.FETCH.mine.>", "$SB.Q.ACK.mine.>", "mine"]
allow_subscribe = ["_INBOX.>"]
deny_subscribe = ["secret.>"]
deny_publish = ["admin.>"]

[[rule]]
name = "hr publishes secrets"
who = ["login:hr"]
allow_publish = ["secret.>"]

[[rule]]
name = "admin listens to commands"
who = ["login:admin"]
allow_subscribe = ["admin.>"]

[[rule]]
name = "b may only ack as consumer b"
who = ["login:bworker"]
allow_publish = ["$SB.Q.ACK.shared.b.>"]
allow_subscribe = ["_INBOX.>"]
`

func userConn(t *testing.T, th *testHub, user string) *nats.Conn {
	t.Helper()
	return natsConn(t, th, th.transports()[1], nats.UserInfo(user, "pw"))
}

// TestRegressQueueReadsDeniedSubjects: a principal allowed to create and
// fetch from "its" queue names, in the body of $SB.Q.CREATE, subjects it
// may not subscribe to. The hub then stores other principals' messages on
// those subjects and hands them to it: the subscribe deny is bypassed.
func TestRegressQueueReadsDeniedSubjects(t *testing.T) {
	th := startHub(t, Config{DataDir: t.TempDir(), Policy: testPolicy(t, []string{"worker", "hr", "admin", "bworker"}, queueReviewRules)})
	worker := userConn(t, th, "worker")
	hr := userConn(t, th, "hr")

	// The deny works for a plain subscription.
	errs := make(chan error, 1)
	worker.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err })
	if _, err := worker.SubscribeSync("secret.>"); err == nil {
		worker.Flush()
	}
	select {
	case err := <-errs:
		t.Logf("plain subscription to secret.>: %v", err)
	case <-time.After(time.Second):
		t.Fatal("the policy let worker subscribe to secret.>")
	}

	var created struct{ Error string }
	qreq(t, worker, "$SB.Q.CREATE.mine", `{"subjects":["secret.>"]}`, &created)
	if created.Error != "" {
		t.Logf("create refused: %s", created.Error)
		return // not a bypass
	}
	if err := hr.Publish("secret.payroll", []byte("alice earns 1M")); err != nil {
		t.Fatal(err)
	}
	hr.Flush()
	inbox := nats.NewInbox()
	sub, err := worker.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	worker.PublishRequest("$SB.Q.FETCH.mine.default", inbox, []byte(`{"batch":1,"expires":"2s"}`))
	m, err := sub.NextMsg(3 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) == "alice earns 1M" {
		t.Fatalf("worker, denied subscribe on secret.>, read %q (subject %s) through a queue it created", m.Data, m.Header.Get("Sb-Subject"))
	}
}

// TestRegressPushConsumerPublishesForIt: a push consumer's deliver_subject
// is not checked against the creator's publish permission. A principal
// denied publish on admin.> makes the hub publish its own message bodies
// there, from the hub's identity.
func TestRegressPushConsumerPublishesForIt(t *testing.T) {
	th := startHub(t, Config{DataDir: t.TempDir(), Policy: testPolicy(t, []string{"worker", "hr", "admin", "bworker"}, queueReviewRules)})
	worker := userConn(t, th, "worker")
	admin := userConn(t, th, "admin")
	sub, err := admin.SubscribeSync("admin.shutdown")
	if err != nil {
		t.Fatal(err)
	}
	admin.Flush()
	worker.Publish("admin.shutdown", []byte("direct")) // denied
	worker.Flush()
	var created struct{ Error string }
	qreq(t, worker, "$SB.Q.CREATE.mine", `{"consumers":[{"name":"p","deliver_subject":"admin.shutdown"}]}`, &created)
	if created.Error != "" {
		t.Logf("create refused: %s", created.Error)
		return
	}
	if err := worker.Publish("mine", []byte("now")); err != nil {
		t.Fatal(err)
	}
	worker.Flush()
	m, err := sub.NextMsg(2 * time.Second)
	if err == nil {
		t.Fatalf("worker, denied publish on admin.>, got %q onto admin.shutdown through a push consumer", m.Data)
	}
}

// TestRegressAckAsAnotherConsumer: in a work queue every consumer shares
// one group, and the ack handler does not check that the delivery was
// made to the consumer named in the ack subject. A principal allowed only
// $SB.Q.ACK.shared.b.> (consumer b's acks) settles consumer a's delivery.
func TestRegressAckAsAnotherConsumer(t *testing.T) {
	th := startHub(t, Config{DataDir: t.TempDir(), Policy: testPolicy(t, []string{"worker", "hr", "admin", "bworker"}, queueReviewRules)})
	root := natsConn(t, th, th.transports()[0])
	b := userConn(t, th, "bworker")
	var e struct{ Error string }
	qreq(t, root, "$SB.Q.CREATE.shared", `{"ack_wait":"1h","consumers":[{"name":"a"},{"name":"b"}]}`, &e)
	if e.Error != "" {
		t.Fatal(e.Error)
	}
	var a struct{ Seq uint64 }
	qreq(t, root, "shared", "a's job", &a)
	inbox := nats.NewInbox()
	sub, _ := root.SubscribeSync(inbox)
	root.PublishRequest("$SB.Q.FETCH.shared.a", inbox, []byte(`{"batch":1}`))
	m, err := sub.NextMsg(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// Consumer a's ack subject, rewritten to name consumer b.
	tok := strings.Split(m.Reply, ".")
	tok[4] = "b"
	forged := strings.Join(tok, ".")
	var ok struct {
		OK    bool `json:"ok"`
		Error string
	}
	qreq(t, b, forged, "+ACK", &ok)
	var info struct{ Messages int64 }
	qreq(t, root, "$SB.Q.INFO.shared", nil, &info)
	if ok.OK || info.Messages == 0 {
		t.Fatalf("bworker (allowed $SB.Q.ACK.shared.b.> only) acked consumer a's delivery via %s: answer %+v, queue now holds %d", forged, ok, info.Messages)
	}
}

// TestRegressQueueErrorsLeakPaths: errors go to the client verbatim; a
// storage error names the hub's file system paths (DESIGN.md: "the wire
// carries a stable message, the log carries the detail").
func TestRegressQueueErrorsLeakPaths(t *testing.T) {
	dir := t.TempDir()
	th := startHub(t, Config{DataDir: dir, MaxPayload: 8 << 20, MaxPending: 64 << 20})
	nc := natsConn(t, th, th.transports()[0])
	// A file where a queue's directory would go: the Create error names it.
	os.WriteFile(filepath.Join(dir, "queues", "blocked"), nil, 0o600)
	var ce struct{ Error, Code string }
	qreq(t, nc, "$SB.Q.CREATE.blocked", nil, &ce)
	t.Logf("create over a file: code %q error %q", ce.Code, ce.Error)
	var e struct{ Error string }
	qreq(t, nc, "$SB.Q.CREATE.q", nil, &e)
	var upd struct{ Error string }
	qreq(t, nc, "$SB.Q.UPDATE.q", `{"max_msg_size":4194304}`, &upd)
	var pa struct{ Error, Code string }
	qreq(t, nc, "q", strings.Repeat("x", 2<<20), &pa)
	t.Logf("2 MiB publish after max_msg_size was raised to 4 MiB: code %q error %q", pa.Code, pa.Error)
	if pa.Error != "" && (strings.Contains(pa.Error, "journal:") || strings.Contains(pa.Error, dir)) {
		t.Errorf("the client sees the journal's internals: %q (code %s)", pa.Error, pa.Code)
	}
	if strings.Contains(ce.Error, dir) {
		t.Errorf("the client sees the hub's data directory: %q (code %s)", ce.Error, ce.Code)
	}
}

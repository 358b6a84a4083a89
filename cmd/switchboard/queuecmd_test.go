package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestQueueCommands drives the queue commands against a real hub: add,
// push (stdin lines, acks in order), pull (--ack, --raw, --nak), info,
// ls, purge, rm, and the errors' exit codes.
func TestQueueCommands(t *testing.T) {
	bin, env, _ := cliHub(t)
	run := func(stdin string, args ...string) (string, string, int) {
		t.Helper()
		return runCLI(t, env, stdin, bin, args...)
	}
	if out, stderr, code := run("", "queue", "add", "jobs"); code != 0 || !strings.Contains(out, "subjects jobs, work retention") {
		t.Fatalf("add: %d %q %q", code, out, stderr)
	}
	if _, stderr, code := run("", "queue", "add", "jobs"); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("add twice: %d %q", code, stderr)
	}
	out, stderr, code := run("one\ntwo\nthree\n", "queue", "push", "jobs")
	if code != 0 {
		t.Fatalf("push: %d %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last uint64
	for i, l := range lines {
		var a struct {
			Queue     string `json:"queue"`
			Seq       uint64 `json:"seq"`
			Duplicate bool   `json:"duplicate"`
		}
		if err := json.Unmarshal([]byte(l), &a); err != nil || a.Queue != "jobs" || a.Seq <= last || a.Duplicate {
			t.Fatalf("ack line %d %q: %+v %v", i, l, a, err)
		}
		last = a.Seq
	}
	if len(lines) != 3 {
		t.Fatalf("%d ack lines for 3 messages: %q", len(lines), out)
	}
	if out, _, code := run("", "queue", "pull", "jobs", "--raw", "--nak"); code != 0 || out != "one\n" {
		t.Fatalf("pull --nak: %d %q", code, out)
	}
	if out, _, code := run("", "queue", "pull", "jobs", "--count", "2", "--ack"); code != 0 || !strings.HasPrefix(out, "[jobs #") || !strings.Contains(out, "] one\n") || !strings.Contains(out, "] two\n") {
		t.Fatalf("pull --ack: %d %q", code, out)
	}
	out, _, code = run("", "queue", "info", "jobs", "--json")
	var inf struct {
		Messages int `json:"messages"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &inf) != nil || inf.Messages != 1 {
		t.Fatalf("info: %d %q", code, out)
	}
	if out, _, code := run("", "queue", "ls"); code != 0 || !strings.Contains(out, "jobs") {
		t.Fatalf("ls: %d %q", code, out)
	}
	// More than a consumer's max_in_flight (1000) in one pull.
	var many strings.Builder
	for i := range 1500 {
		fmt.Fprintln(&many, i)
	}
	if _, stderr, code := run(many.String(), "queue", "push", "jobs"); code != 0 {
		t.Fatalf("push 1500: %d %q", code, stderr)
	}
	if out, stderr, code := run("", "queue", "pull", "jobs", "--count", "1501", "--ack", "--raw", "--timeout", "20s"); code != 0 || strings.Count(out, "\n") != 1501 {
		t.Fatalf("pull 1501: %d, %d lines, %q", code, strings.Count(out, "\n"), stderr)
	}
	if _, _, code := run("", "queue", "purge", "jobs"); code != 0 {
		t.Fatalf("purge: %d", code)
	}
	if _, stderr, code := run("", "queue", "pull", "jobs", "--timeout", "200ms"); code != 1 || !strings.Contains(stderr, "no message") {
		t.Fatalf("pull from an empty queue: %d %q", code, stderr)
	}
	if _, stderr, code := run("", "queue", "push", "nope", "x"); code != 1 || !strings.Contains(stderr, "no such queue") {
		t.Fatalf("push to a missing queue: %d %q", code, stderr)
	}
	if _, stderr, code := run("", "queue", "add", "bad", "--max-bytes", "lots"); code != 2 || !strings.Contains(stderr, "--max-bytes") {
		t.Fatalf("bad flag: %d %q", code, stderr)
	}
	if _, stderr, code := run("", "queue", "pull", "jobs", "--ack", "--nak"); code != 2 {
		t.Fatalf("--ack and --nak: %d %q", code, stderr)
	}
	if _, _, code := run("", "queue", "rm", "jobs"); code != 0 {
		t.Fatalf("rm: %d", code)
	}
	if out, _, _ := run("", "queue", "ls"); strings.Contains(out, "jobs") {
		t.Fatalf("ls after rm: %q", out)
	}
}

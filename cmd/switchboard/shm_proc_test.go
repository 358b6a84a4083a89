//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"switchboard/internal/proctest"
	"switchboard/internal/protocol"
)

// Shared memory between real processes: `switchboard pub` and `sub` get
// rings from `switchboard serve` on their own, `shm ls` shows them, and a
// publisher or subscriber killed with SIGKILL is reclaimed while the
// others carry on.

// linePub is `switchboard pub SUBJECT` fed line by line.
type linePub struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startLinePub(t *testing.T, env []string, bin, subject string) *linePub {
	t.Helper()
	cmd := exec.Command(bin, "pub", subject)
	cmd.Env = append(os.Environ(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &linePub{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return p
}

func (p *linePub) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("pub stdin: %v", err)
	}
}

func shmList(t *testing.T, env []string, bin string) []protocol.ShmChannel {
	t.Helper()
	out, stderr, code := runCLI(t, env, "", bin, "shm", "ls", "--json")
	if code != 0 {
		t.Fatalf("shm ls exit %d: %s", code, stderr)
	}
	var chans []protocol.ShmChannel
	if err := json.Unmarshal([]byte(out), &chans); err != nil {
		t.Fatalf("shm ls --json: %v: %q", err, out)
	}
	return chans
}

// expectLines reads want from sub in order.
func expectLines(t *testing.T, sub *proctest.Proc, name string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if got, want := sub.Line(10*time.Second), fmt.Sprint("m", i); got != want {
			t.Fatalf("%s printed %q, want %q", name, got, want)
		}
	}
}

func TestShmProcessesKillAndReclaim(t *testing.T) {
	bin, env, _ := cliHub(t)
	sub1 := proctest.Start(t, env, bin, "sub", "frames", "--raw")
	sub1.WaitOutput("subscribed to frames", 10*time.Second)
	sub2 := proctest.Start(t, env, bin, "sub", "frames", "--raw")
	sub2.WaitOutput("subscribed to frames", 10*time.Second)

	pub := startLinePub(t, env, bin, "frames")
	pub.send(t, "m0") // over the socket; the hub offers a ring
	expectLines(t, sub1, "sub1", 0, 1)
	expectLines(t, sub2, "sub2", 0, 1)
	var ring protocol.ShmChannel
	waitFor(t, "a ring with two readers", func() bool {
		cs := shmList(t, env, bin)
		if len(cs) == 1 && cs[0].Ready && len(cs[0].Readers) == 2 {
			ring = cs[0]
			return true
		}
		return false
	})
	if ring.Pattern != "frames" || ring.Forwarder {
		t.Fatalf("ring %+v", ring)
	}
	for i := 1; i < 50; i++ {
		pub.send(t, fmt.Sprint("m", i))
	}
	expectLines(t, sub1, "sub1", 1, 50)
	expectLines(t, sub2, "sub2", 1, 50)
	if cs := shmList(t, env, bin); len(cs) != 1 || cs[0].Messages < 49 {
		t.Fatalf("after 49 messages by ring: %+v", cs)
	}

	// A subscriber killed mid-stream: the ring loses a reader, the other
	// one carries on.
	sub2.Signal(syscall.SIGKILL)
	sub2.Wait(10 * time.Second)
	waitFor(t, "the killed reader detached", func() bool {
		cs := shmList(t, env, bin)
		return len(cs) == 1 && len(cs[0].Readers) == 1
	})
	for i := 50; i < 100; i++ {
		pub.send(t, fmt.Sprint("m", i))
	}
	expectLines(t, sub1, "sub1", 50, 100)

	// The publisher killed: its ring is reclaimed; a new publisher gets a
	// new one and the subscriber carries on.
	pub.cmd.Process.Kill()
	pub.cmd.Wait()
	killed := time.Now()
	waitFor(t, "the ring reclaimed", func() bool { return len(shmList(t, env, bin)) == 0 })
	t.Logf("ring reclaimed %v after SIGKILL (including one shm ls run)", time.Since(killed).Round(time.Millisecond))
	pub2 := startLinePub(t, env, bin, "frames")
	for i := 100; i < 150; i++ {
		pub2.send(t, fmt.Sprint("m", i))
	}
	expectLines(t, sub1, "sub1", 100, 150)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

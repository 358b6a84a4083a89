package backup

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchboard"
	"switchboard/internal/proctest"
)

func TestMain(m *testing.M) { proctest.Main(m) }

// TestCrashedJobIsRedone runs the hub, the agent and two workers as real
// processes. The agent enqueues one job per file of a source directory;
// the first worker takes a job and dies (SIGKILL) halfway through the
// copy; the second worker does every job, the crashed one again after the
// ack wait, and the backup ends up complete and identical to the source.
func TestCrashedJobIsRedone(t *testing.T) {
	sb := proctest.Build(t, "switchboard/cmd/switchboard")
	agentBin := proctest.Build(t, "switchboard/examples/backup/agent")
	workerBin := proctest.Build(t, "switchboard/examples/backup/worker")

	dir := t.TempDir()
	sock := filepath.Join(dir, "hub.sock")
	env := []string{proctest.Env("SWITCHBOARD_URL", "unix://"+sock)}
	hub := proctest.Start(t, nil, sb, "serve", "--socket", sock, "--listen", "", "--data", filepath.Join(dir, "data"))
	proctest.WaitForSocket(t, sock, 10*time.Second)

	// The files to back up. The walk goes in lexical order, so the
	// first job, the one the first worker dies in, is "a-big.bin": large
	// enough that the worker is in the middle of it.
	src, out := filepath.Join(dir, "src"), filepath.Join(dir, "backup")
	files := map[string]int{"a-big.bin": 1 << 20, "notes.txt": 300, "photos/1.jpg": 200 << 10, "photos/2.jpg": 150 << 10, "empty": 0, "db/dump.sql": 64 << 10}
	rng := rand.New(rand.NewPCG(1, 2))
	for name, size := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	agent := proctest.Start(t, env, agentBin, "-src", src, "-ack-wait", "1s")
	if code := agent.Wait(15 * time.Second); code != 0 {
		t.Fatalf("agent exit %d; output:\n%s", code, agent.Output())
	}
	if want := fmt.Sprintf("agent: done: %d jobs enqueued, 0 enqueued already", len(files)); !strings.Contains(agent.Output(), want) {
		t.Fatalf("agent did not say %q; output:\n%s", want, agent.Output())
	}

	// The first worker dies in the middle of its first job.
	w1 := proctest.Start(t, env, workerBin, "-out", out, "-die-mid-job")
	w1.WaitOutput("worker: dying in the middle of a-big.bin", 15*time.Second)
	w1.Wait(10 * time.Second)
	if ws, ok := w1.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the first worker was not killed: %v; output:\n%s", w1.Cmd.ProcessState, w1.Output())
	}
	if _, err := os.Stat(filepath.Join(out, "a-big.bin")); !os.IsNotExist(err) {
		t.Fatalf("the crashed job left a-big.bin in the backup: %v", err)
	}

	// The second worker does everything, the crashed job once its ack
	// wait (1s) ran out.
	w2 := proctest.Start(t, env, workerBin, "-out", out)
	done := map[string]string{}
	for len(done) < len(files) {
		l := w2.Line(20 * time.Second)
		if rest, ok := strings.CutPrefix(l, "worker: backed up "); ok {
			name, _, _ := strings.Cut(rest, " ")
			done[name] = rest
		}
	}
	// (Usually its second delivery; a later one if the machine is so slow
	// that an ack wait ran out again.)
	rest := done["a-big.bin"]
	_, d, _ := strings.Cut(rest, "delivery ")
	if n, err := strconv.Atoi(strings.TrimSuffix(d, ")")); err != nil || n < 2 {
		t.Errorf("a-big.bin: %q, want it done again on a later delivery than the crashed one", rest)
	}

	// The backup is the source, with no partial copy left.
	for name := range files {
		want, _ := os.ReadFile(filepath.Join(src, filepath.FromSlash(name)))
		got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(name)))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("backup of %s: %d bytes (%v), want the %d bytes of the source", name, len(got), err, len(want))
		}
	}
	filepath.WalkDir(out, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".partial") {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
	// Every job acknowledged: the queue is empty, nothing is dead.
	for q, want := range map[string]int64{Queue: 0, DeadQueue: 0} {
		cmd := exec.Command(sb, "queue", "info", q, "--json")
		cmd.Env = append(os.Environ(), env...)
		b, err := cmd.Output()
		var inf switchboard.QueueInfo
		if err == nil {
			err = json.Unmarshal(b, &inf)
		}
		if err != nil || inf.Messages != want {
			t.Errorf("queue %s: %d messages (%v), want %d", q, inf.Messages, err, want)
		}
	}

	w2.Signal(syscall.SIGTERM)
	if code := w2.Wait(10 * time.Second); code != 0 {
		t.Fatalf("worker exit %d after SIGTERM; output:\n%s", code, w2.Output())
	}
	hub.Signal(syscall.SIGTERM)
	if code := hub.Wait(15 * time.Second); code != 0 {
		t.Fatalf("hub exited %d after SIGTERM; output:\n%s", code, hub.Output())
	}
}

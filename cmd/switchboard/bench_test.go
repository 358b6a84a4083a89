package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"switchboard"
	"switchboard/internal/proctest"
)

// buildBenchBinaries builds switchboard and sb-nats-server (once per test
// binary, into one directory, so that bench finds the nats peer next to
// itself). It skips the test if the go command is unavailable.
func buildBenchBinaries(t *testing.T) string {
	t.Helper()
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	peer := proctest.Build(t, "switchboard/cmd/sb-nats-server")
	if filepath.Dir(bin) != filepath.Dir(peer) {
		t.Fatalf("binaries built into different directories: %s, %s", bin, peer)
	}
	return bin
}

// runBenchJSON runs the switchboard binary and decodes its JSON report.
func runBenchJSON(t *testing.T, bin string, args ...string) (*benchReport, map[string]any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("switchboard %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	var rep benchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("switchboard %v: output is not a JSON report: %v\n%s", args, err, stdout.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"machine", "settings", "hub", "nats"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report has no %q", k)
		}
	}
	m := rep.Machine
	if m.Cores < 1 || m.Go == "" || m.OS == "" || m.Date == "" {
		t.Errorf("machine incomplete: %+v", m)
	}
	if rep.Hub.Version == "" || rep.Hub.PID == 0 || rep.NATS == nil || rep.NATS.Version == "" {
		t.Errorf("server info incomplete: hub %+v, nats %+v", rep.Hub, rep.NATS)
	}
	return &rep, raw
}

// TestBenchBinary runs the bench end to end against real server processes.
// It checks the report's structure and that no message went missing, never
// how fast anything was.
func TestBenchBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries and starts servers; skipped with -short")
	}
	bin := buildBenchBinaries(t)
	t.Run("pubsub", func(t *testing.T) { testBenchPubSub(t, bin) })
	t.Run("conns", func(t *testing.T) { testBenchConns(t, bin) })
	t.Run("missing-nats-server", func(t *testing.T) { testBenchMissingNATSServer(t, bin) })
}

func testBenchPubSub(t *testing.T, bin string) {
	// --duration is long so that the message count is exact even on a busy
	// machine; nothing here asserts speed.
	rep, raw := runBenchJSON(t, bin, "bench", "pubsub", "--sizes", "16", "--msgs", "20000",
		"--rounds", "1", "--json", "--vs-nats", "--duration", "1m")
	for _, k := range []string{"runs", "results", "targets"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report has no %q", k)
		}
	}
	want := map[string]bool{"hub/unix": true, "hub/tcp": true, "nats/tcp": true}
	if len(rep.Runs) != len(want) {
		t.Fatalf("got %d runs, want %d: %+v", len(rep.Runs), len(want), rep.Runs)
	}
	for _, r := range rep.Runs {
		name := r.Server + "/" + r.Transport
		if !want[name] {
			t.Errorf("unexpected run on %s", name)
		}
		delete(want, name)
		if r.Workload != "pubsub" || r.Size != 16 || r.Round != 1 || r.Subscribers != 1 {
			t.Errorf("%s: wrong run identity: %+v", name, r)
		}
		if r.Msgs != 20000 || r.Expected != 20000 || r.Received != 20000 {
			t.Errorf("%s: msgs %d, expected %d, received %d; want 20000 each", name, r.Msgs, r.Expected, r.Received)
		}
		if r.Seconds <= 0 || r.MsgsPerSec <= 0 || r.MBPerSec <= 0 {
			t.Errorf("%s: rates missing: %+v", name, r)
		}
	}
	if len(rep.Results) != 3 {
		t.Fatalf("got %d results, want 3", len(rep.Results))
	}
	for _, r := range rep.Results {
		if r.Rounds != 1 || r.Received != r.Expected {
			t.Errorf("result %s/%s: rounds %d, received %d of %d", r.Server, r.Transport, r.Rounds, r.Received, r.Expected)
		}
		if (r.Server == "hub") != (r.Ratio != nil) {
			t.Errorf("result %s/%s: ratio %v; want one exactly on hub rows", r.Server, r.Transport, r.Ratio)
		}
	}
	if len(rep.Targets) != 2 {
		t.Errorf("got %d targets, want the two pub→sub 16 B targets: %+v", len(rep.Targets), rep.Targets)
	}
	for _, tg := range rep.Targets {
		if tg.Workload != "pubsub" || tg.Ratio <= 0 || tg.Want == "" {
			t.Errorf("target incomplete: %+v", tg)
		}
	}
}

func testBenchConns(t *testing.T, bin string) {
	rep, _ := runBenchJSON(t, bin, "bench", "conns", "--n", "200", "--vs-nats", "--json")
	want := []string{"hub/unix", "hub/tcp", "nats/tcp"}
	if len(rep.Conns) != len(want) {
		t.Fatalf("got %d conns results, want %d: %+v", len(rep.Conns), len(want), rep.Conns)
	}
	for i, c := range rep.Conns {
		if got := c.Server + "/" + c.Transport; got != want[i] {
			t.Errorf("conns result %d is %s, want %s", i, got, want[i])
		}
		if c.N != 200 || c.Opened != 200 {
			t.Errorf("%s/%s: opened %d of %d, want 200", c.Server, c.Transport, c.Opened, c.N)
		}
		if c.RSSBefore <= 0 || c.RSSAfter <= 0 {
			t.Errorf("%s/%s: RSS not read: %+v", c.Server, c.Transport, c)
		}
	}
}

func testBenchMissingNATSServer(t *testing.T, bin string) {
	out, err := exec.Command(bin, "bench", "pub", "--vs-nats", "--nats-server", filepath.Join(t.TempDir(), "missing")).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
		t.Fatalf("got %v, want exit code %d\n%s", err, exitUsage, out)
	}
	if !bytes.Contains(out, []byte("go build -o bin/sb-nats-server ./cmd/sb-nats-server")) {
		t.Errorf("error does not say how to build sb-nats-server:\n%s", out)
	}
}

func TestBenchHelpers(t *testing.T) {
	s := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := percentile(s, 0.5); p != 5 {
		t.Errorf("p50 = %d, want 5", p)
	}
	if p := percentile(s, 0.99); p != 10 {
		t.Errorf("p99 = %d, want 10", p)
	}
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median = %v, want 2", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median = %v, want 2.5", m)
	}
	for n, want := range map[int]string{16: "16 B", 1024: "1 KiB", 65536: "64 KiB", 1000: "1000 B"} {
		if got := sizeLabel(n); got != want {
			t.Errorf("sizeLabel(%d) = %q, want %q", n, got, want)
		}
	}
	if got := fmtRate(1234567.4); got != "1,234,567" {
		t.Errorf("fmtRate = %q", got)
	}
	bs := &benchSettings{msgs: 1000000, maxBytes: 2 << 30}
	if n := bs.msgsFor(65536); n != 32768 {
		t.Errorf("msgsFor(64 KiB) = %d, want 32768", n)
	}
}

func TestBenchCounterCatchesGaps(t *testing.T) {
	msg := func(seq uint64) *switchboard.Msg {
		b := make([]byte, 16)
		binary.LittleEndian.PutUint64(b, seq)
		return &switchboard.Msg{Data: b}
	}
	c := newCounter(16)
	c.msg(msg(0))
	c.msg(msg(1))
	c.expect(2)
	<-c.done
	if c.err != nil || c.n.Load() != 2 {
		t.Fatalf("complete run: err %v, n %d", c.err, c.n.Load())
	}

	c = newCounter(16)
	c.msg(msg(0))
	c.msg(msg(2)) // 1 is missing
	if !c.failed() {
		t.Fatal("a missing message was not noticed")
	}

	c = newCounter(16)
	c.msg(&switchboard.Msg{Data: make([]byte, 15)})
	if !c.failed() {
		t.Fatal("a short message was not noticed")
	}
}

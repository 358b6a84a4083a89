//go:build linux

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"switchboard"
	"switchboard/internal/proctest"
)

// Durable queues between real processes: a hub killed with SIGKILL at
// random moments loses no acknowledged message and redelivers none whose
// acknowledgement was confirmed; a consumer killed mid-work gets its
// message redelivered to another one, and a message nobody can handle
// ends in the dead-letter queue. The publishers and consumers are
// testdata/queueclient processes.

// qevent is a line queueclient prints.
type qevent struct {
	Ev        string             `json:"ev"`
	N         int64              `json:"n"`
	Seq       uint64             `json:"seq"`
	Dup       bool               `json:"dup"`
	Delivered int                `json:"delivered"`
	Data      string             `json:"data"`
	Size      int                `json:"size"`
	Header    switchboard.Header `json:"header"`
	Err       string             `json:"err"`
}

func parseEvent(t *testing.T, line string) qevent {
	t.Helper()
	var e qevent
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("queueclient printed %q: %v", line, err)
	}
	return e
}

// nextEvent reads p's next event.
func nextEvent(t *testing.T, p *proctest.Proc) qevent {
	t.Helper()
	return parseEvent(t, p.Line(20*time.Second))
}

// serveProc is `switchboard serve` on a socket and data directory that
// outlive it: the test kills it and starts it again on the same files.
type serveProc struct {
	t         *testing.T
	bin, sock string
	data      string
	p         *proctest.Proc
	env       []string
}

func newServeProc(t *testing.T, bin string) *serveProc {
	dir := t.TempDir()
	sock := filepath.Join(dir, "hub.sock")
	return &serveProc{t: t, bin: bin, sock: sock, data: filepath.Join(dir, "data"), env: []string{"SWITCHBOARD_URL=unix://" + sock}}
}

// start starts the hub and waits until it listens; the queues are open by
// then.
func (s *serveProc) start() {
	s.t.Helper()
	// A killed hub leaves its socket file; the new one replaces it, but
	// WaitForSocket must not mistake the old one for the new.
	if err := os.Remove(s.sock); err != nil && !os.IsNotExist(err) {
		s.t.Fatal(err)
	}
	s.p = proctest.Start(s.t, nil, s.bin, "serve", "--socket", s.sock, "--listen", "", "--data", s.data)
	proctest.WaitForSocket(s.t, s.sock, 15*time.Second)
}

// kill ends the hub with SIGKILL: no shutdown, no flush.
func (s *serveProc) kill() {
	s.t.Helper()
	s.p.Signal(syscall.SIGKILL)
	s.p.Wait(10 * time.Second)
}

// stop ends the hub with SIGTERM and expects a clean exit.
func (s *serveProc) stop() {
	s.t.Helper()
	s.p.Signal(syscall.SIGTERM)
	if code := s.p.Wait(15 * time.Second); code != 0 {
		s.t.Fatalf("serve exit %d after SIGTERM; output:\n%s", code, s.p.Output())
	}
}

// cliOK runs the binary to completion, expects exit 0 and returns stdout.
func cliOK(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	out, stderr, code := runCLI(t, env, "", bin, args...)
	if code != 0 {
		t.Fatalf("switchboard %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	return out
}

// queueInfo is `switchboard queue info NAME --json`.
func queueInfo(t *testing.T, env []string, bin, name string) switchboard.QueueInfo {
	t.Helper()
	out := cliOK(t, env, bin, "queue", "info", name, "--json")
	var inf switchboard.QueueInfo
	if err := json.Unmarshal([]byte(out), &inf); err != nil {
		t.Fatalf("queue info %s --json: %v: %q", name, err, out)
	}
	return inf
}

// fileProc is a queueclient process whose events go to a file, read once
// it has exited: a busy client prints far more lines than a pipe holds.
type fileProc struct {
	cmd  *exec.Cmd
	out  string
	done chan struct{}
}

func startFileProc(t *testing.T, env []string, stdin, out, bin string, args ...string) *fileProc {
	t.Helper()
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &fileProc{cmd: cmd, out: out, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
	})
	return p
}

// events waits for the process to exit and returns what it printed.
func (p *fileProc) events(t *testing.T) []qevent {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%v did not exit within 20s of the hub's death", p.cmd.Args)
	}
	f, err := os.Open(p.out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []qevent
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		evs = append(evs, parseEvent(t, sc.Text()))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

// crashLedger is what the publishers and consumers of the crash test saw,
// and the checks on it. Events are added in the order they happened:
// one cycle's processes after the previous cycle's, each one's lines in
// the order it printed them.
type crashLedger struct {
	t       *testing.T
	seed    uint64
	sent    map[int64]int    // number -> times published
	pubSeq  map[int64]uint64 // number -> the sequence its confirmed publish ack gave
	seqNum  map[uint64]int64 // sequence -> the number it carries
	numSeqs map[int64][]uint64
	got     map[uint64]int // sequence -> deliveries
	acked   map[uint64]int // sequence -> the cycle its ack was confirmed in
	next    int64          // next fresh number

	deliveries, redeliveries, dupAcks int
}

func newCrashLedger(t *testing.T, seed uint64) *crashLedger {
	return &crashLedger{t: t, seed: seed, sent: map[int64]int{}, pubSeq: map[int64]uint64{}, seqNum: map[uint64]int64{},
		numSeqs: map[int64][]uint64{}, got: map[uint64]int{}, acked: map[uint64]int{}}
}

func (l *crashLedger) errorf(format string, args ...any) {
	l.t.Helper()
	l.t.Errorf("seed %d: "+format, append([]any{l.seed}, args...)...)
}

// unconfirmed lists, in order, the numbers published whose ack never came:
// the next publisher publishes them again (same Msg-Id).
func (l *crashLedger) unconfirmed() []int64 {
	var ns []int64
	for n := range l.sent {
		if _, ok := l.pubSeq[n]; !ok {
			ns = append(ns, n)
		}
	}
	slices.Sort(ns)
	return ns
}

func (l *crashLedger) publisher(cycle int, evs []qevent) {
	l.t.Helper()
	for _, e := range evs {
		switch e.Ev {
		case "pub":
			l.sent[e.N]++
			l.next = max(l.next, e.N+1)
		case "ack":
			if l.sent[e.N] == 0 {
				l.errorf("cycle %d: an ack for %d, never published", cycle, e.N)
			}
			if s, ok := l.pubSeq[e.N]; ok && s != e.Seq {
				l.errorf("cycle %d: message %d acknowledged as sequence %d, before as %d", cycle, e.N, e.Seq, s)
			}
			if e.Dup {
				l.dupAcks++
			}
			l.pubSeq[e.N] = e.Seq
			l.carries(cycle, e.Seq, e.N)
		case "end":
			l.ended(cycle, "publisher", e)
		}
	}
}

// carries notes that sequence seq holds message n.
func (l *crashLedger) carries(cycle int, seq uint64, n int64) {
	l.t.Helper()
	if m, ok := l.seqNum[seq]; ok {
		if m != n {
			l.errorf("cycle %d: sequence %d holds %d, before %d", cycle, seq, n, m)
		}
		return
	}
	l.seqNum[seq] = n
	l.numSeqs[n] = append(l.numSeqs[n], seq)
}

func (l *crashLedger) consumer(cycle int, evs []qevent) {
	l.t.Helper()
	for _, e := range evs {
		switch e.Ev {
		case "got":
			n, err := strconv.ParseInt(e.Data, 10, 64)
			if e.Err != "" {
				l.errorf("cycle %d: sequence %d (message %q, %d bytes): %s", cycle, e.Seq, e.Data, e.Size, e.Err)
			}
			if err != nil || l.sent[n] == 0 {
				l.errorf("cycle %d: delivered %q (sequence %d), which was never published", cycle, e.Data, e.Seq)
				continue
			}
			if c, ok := l.acked[e.Seq]; ok {
				l.errorf("cycle %d: sequence %d (message %d) delivered again; its ack was confirmed in cycle %d", cycle, e.Seq, n, c)
			}
			if l.got[e.Seq] > 0 {
				l.redeliveries++
			}
			l.got[e.Seq]++
			l.deliveries++
			l.carries(cycle, e.Seq, n)
		case "acked":
			if l.got[e.Seq] == 0 {
				l.errorf("cycle %d: ack confirmed for sequence %d, never delivered", cycle, e.Seq)
			}
			l.acked[e.Seq] = cycle
		case "end":
			l.ended(cycle, "consumer", e)
		}
	}
}

// ended checks why a client stopped: the hub's death, not an error the
// hub answered (a full or failed queue, a stale delivery).
func (l *crashLedger) ended(cycle int, who string, e qevent) {
	l.t.Helper()
	if strings.Contains(e.Err, "switchboard: hub:") {
		l.errorf("cycle %d: the %s stopped on an error from the hub: %s", cycle, who, e.Err)
	}
}

// check runs the end-of-run checks, once the queue is drained.
func (l *crashLedger) check() {
	l.t.Helper()
	lost := 0
	for n, seq := range l.pubSeq {
		if l.got[seq] == 0 {
			if lost++; lost <= 10 {
				l.errorf("message %d was acknowledged to its publisher as sequence %d and never delivered", n, seq)
			}
		}
	}
	if lost > 0 {
		l.errorf("%d acknowledged messages lost", lost)
	}
	twice := 0
	for n, seqs := range l.numSeqs {
		if len(seqs) > 1 {
			// Republished with the same Msg-Id after a crash: the
			// dedup table is rebuilt from the journal at restart, so
			// the second publish must find the first.
			if twice++; twice <= 10 {
				l.errorf("message %d (Msg-Id m%d, published %d times) stored as sequences %v: deduplication missed it across a restart", n, n, l.sent[n], seqs)
			}
		}
	}
}

// crashCycles is how many times TestQueueHubKilled kills the hub:
// $SWITCHBOARD_CRASH_CYCLES, or 20.
func crashCycles(t *testing.T) int {
	s := os.Getenv("SWITCHBOARD_CRASH_CYCLES")
	if s == "" {
		return 20
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("SWITCHBOARD_CRASH_CYCLES=%q: want a positive number", s)
	}
	return n
}

// crashSeed is $SWITCHBOARD_CRASH_SEED, or the clock.
func crashSeed(t *testing.T) uint64 {
	s := os.Getenv("SWITCHBOARD_CRASH_SEED")
	if s == "" {
		return uint64(time.Now().UnixNano())
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatalf("SWITCHBOARD_CRASH_SEED=%q: want a number", s)
	}
	return n
}

// TestQueueHubKilled runs a publisher and a consumer process against a hub
// and kills the hub with SIGKILL at a random moment, again and again, on
// the same data directory. The publisher publishes numbered messages
// (with Msg-Ids) and records every acknowledgement; after a crash the next
// one publishes again those whose ack did not come. The consumer fetches,
// acknowledges concurrently and records the acks the hub confirmed. At the
// end the queue is drained and the records checked: every acknowledged
// message delivered, no sequence delivered again once its ack was
// confirmed, nothing delivered that was not published, no republished
// message stored twice.
//
// SWITCHBOARD_CRASH_CYCLES sets the number of crashes (default 20) and
// SWITCHBOARD_CRASH_SEED the seed of the random choices: each cycle's
// crash delay, publish window, fetch batch and message size.
func TestQueueHubKilled(t *testing.T) {
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	qc := proctest.Build(t, "switchboard/cmd/switchboard/testdata/queueclient")
	cycles, seed := crashCycles(t), crashSeed(t)
	t.Logf("%d crash cycles; seed %d (SWITCHBOARD_CRASH_SEED=%d repeats the crash delays and client settings)", cycles, seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed))
	const (
		perCycle = 3000                   // fresh messages a cycle at most
		maxDelay = 250 * time.Millisecond // the crash comes within this of the clients' start
	)
	hub := newServeProc(t, bin)
	logs := t.TempDir()
	led := newCrashLedger(t, seed)
	led.next = 1
	start := time.Now()
	for cycle := 0; cycle < cycles; cycle++ {
		hub.start()
		if cycle == 0 {
			cliOK(t, hub.env, bin, "queue", "add", "crash")
		}
		var stdin strings.Builder
		again := led.unconfirmed()
		for _, n := range again {
			fmt.Fprintln(&stdin, n)
		}
		// From one publish at a time to 64 in flight; from one message a
		// fetch to 32 acks in flight. One cycle in three publishes
		// messages of 8 to 64 KiB, which fill the journal's 64 MiB
		// segments in longer runs: crashes then also come while a segment
		// is started or an old one removed.
		window, batch, size := 1+rng.IntN(64), 1+rng.IntN(32), 0
		if rng.IntN(3) == 0 {
			size = 8<<10 + rng.IntN(56<<10)
		}
		pub := startFileProc(t, hub.env, stdin.String(), filepath.Join(logs, fmt.Sprintf("pub%d", cycle)), qc,
			"pub", "-subject", "crash", "-from", fmt.Sprint(led.next), "-count", fmt.Sprint(perCycle), "-window", fmt.Sprint(window), "-size", fmt.Sprint(size))
		con := startFileProc(t, hub.env, "", filepath.Join(logs, fmt.Sprintf("con%d", cycle)), qc,
			"consume", "-queue", "crash", "-ack", "-batch", fmt.Sprint(batch))
		delay := time.Duration(rng.Int64N(int64(maxDelay)))
		time.Sleep(delay) // the crash moment, not a synchronisation
		hub.kill()
		pevs, cevs := pub.events(t), con.events(t)
		led.publisher(cycle, pevs)
		led.consumer(cycle, cevs)
		if t.Failed() {
			t.Fatalf("cycle %d (crash after %v) failed; hub output:\n%s", cycle, delay, hub.p.Output())
		}
		t.Logf("cycle %d: crash after %v: window %d, batch %d, size %d, %d republished, %d events from the publisher, %d from the consumer",
			cycle, delay.Round(time.Millisecond), window, batch, size, len(again), len(pevs), len(cevs))
	}

	// Drain: everything left is delivered (and acknowledged) now.
	hub.start()
	drain := startFileProc(t, hub.env, "", filepath.Join(logs, "drain"), qc, "consume", "-queue", "crash", "-ack", "-drain", "-batch", "256")
	devs := drain.events(t)
	if code := drain.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("drain exit %d: %v", code, devs[len(devs)-1])
	}
	led.consumer(cycles, devs)
	if inf := queueInfo(t, hub.env, bin, "crash"); inf.Messages != 0 {
		t.Errorf("seed %d: %d messages left after the drain", seed, inf.Messages)
	}
	// The drain's acks were confirmed: one more crash must not bring any
	// message back.
	hub.kill()
	hub.start()
	inf := queueInfo(t, hub.env, bin, "crash")
	if inf.Messages != 0 {
		t.Errorf("seed %d: %d messages back after a crash that followed the drain (%+v)", seed, inf.Messages, inf.Storage)
	}
	again := startFileProc(t, hub.env, "", filepath.Join(logs, "again"), qc, "consume", "-queue", "crash", "-ack", "-drain")
	led.consumer(cycles+1, again.events(t))
	led.check()
	acks := len(led.pubSeq)
	t.Logf("seed %d: %d crashes in %v; %d messages published (%d republished after a crash, %d of them found stored: duplicate acks), %d acknowledged, %d deliveries, %d redeliveries after a crash; the journal went up to sequence %d and holds %d segments",
		seed, cycles, time.Since(start).Round(time.Millisecond), len(led.sent), sumOver(led.sent)-len(led.sent), led.dupAcks, acks, led.deliveries, led.redeliveries,
		inf.LastSeq, inf.Storage.Segments)
	if acks < cycles {
		t.Errorf("seed %d: only %d messages acknowledged in %d cycles: the test did not exercise the queue", seed, acks, cycles)
	}
	hub.stop()
}

func sumOver(m map[int64]int) int {
	s := 0
	for _, v := range m {
		s += v
	}
	return s
}

// TestQueueConsumerKilledMidWork runs two consumer processes on a work
// queue with a 500ms ack wait and max_deliver 2: the first takes a message
// and is killed with SIGKILL before acknowledging it, and the second gets
// it after the ack wait as its second delivery. Then a message that both
// consumers take and never acknowledge goes to the dead-letter queue with
// the reason.
func TestQueueConsumerKilledMidWork(t *testing.T) {
	bin, env, hub := cliHub(t)
	qc := proctest.Build(t, "switchboard/cmd/switchboard/testdata/queueclient")
	cli := func(args ...string) string { t.Helper(); return cliOK(t, env, bin, args...) }
	info := func(name string) switchboard.QueueInfo { t.Helper(); return queueInfo(t, env, bin, name) }
	waiting := func(n int) {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d fetches waiting on queue work", n), func() bool {
			cs := info("work").Consumers
			return len(cs) == 1 && cs[0].Waiting == n
		})
	}
	push := func(data string) uint64 {
		t.Helper()
		var a switchboard.PubAck
		if err := json.Unmarshal([]byte(cli("queue", "push", "work", data)), &a); err != nil || a.Seq == 0 {
			t.Fatalf("queue push work %s: %+v %v", data, a, err)
		}
		return a.Seq
	}
	// take starts a consumer process that takes one message from work;
	// with ack it acknowledges it, without it holds it until killed.
	take := func(ack bool) *proctest.Proc {
		args := []string{"consume", "-queue", "work", "-batch", "1", "-max", "1", "-expires", "30s"}
		if ack {
			args = append(args, "-ack")
		} else {
			args = append(args, "-hold")
		}
		return proctest.Start(t, env, qc, args...)
	}
	expectGot := func(p *proctest.Proc, who string, seq uint64, data string, delivered int) {
		t.Helper()
		e := nextEvent(t, p)
		if e.Ev != "got" || e.Seq != seq || e.Data != data || e.Delivered != delivered || e.Header.Get("Sb-Delivered") != strconv.Itoa(delivered) {
			t.Fatalf("%s: %+v, want delivery %d of %q (sequence %d); output:\n%s", who, e, delivered, data, seq, p.Output())
		}
	}

	cli("queue", "add", "dead")
	cli("queue", "add", "work", "--ack-wait", "500ms", "--max-deliver", "2", "--dead-letter", "dead")

	// A consumer dies holding a message: the other one gets it.
	job := push("job-1")
	a := take(false)
	expectGot(a, "first consumer", job, "job-1", 1)
	if e := nextEvent(t, a); e.Ev != "holding" {
		t.Fatalf("first consumer: %+v", e)
	}
	b := take(true)
	a.Signal(syscall.SIGKILL)
	a.Wait(10 * time.Second)
	expectGot(b, "second consumer", job, "job-1", 2)
	if e := nextEvent(t, b); e.Ev != "acked" || e.Seq != job {
		t.Fatalf("second consumer: %+v; output:\n%s", e, b.Output())
	}
	if code := b.Wait(10 * time.Second); code != 0 {
		t.Fatalf("second consumer exit %d; output:\n%s", code, b.Output())
	}
	if inf := info("work"); inf.Messages != 0 {
		t.Fatalf("work holds %d messages after the redelivered job was acknowledged", inf.Messages)
	}

	// A message every consumer fails: two take it in turn, neither
	// answers, and after the second ack wait it is a dead letter.
	c1 := take(false)
	waiting(1)
	c2 := take(false)
	waiting(2)
	poison := push("poison")
	expectGot(c1, "first failing consumer", poison, "poison", 1)
	expectGot(c2, "second failing consumer", poison, "poison", 2)
	c1.Signal(syscall.SIGKILL)
	c1.Wait(10 * time.Second)
	d := proctest.Start(t, env, qc, "consume", "-queue", "dead", "-batch", "1", "-max", "1", "-ack", "-expires", "30s")
	e := nextEvent(t, d)
	if e.Ev != "got" || e.Data != "poison" {
		t.Fatalf("dead-letter consumer: %+v; output:\n%s", e, d.Output())
	}
	for k, want := range map[string]string{
		"Sb-Dead-Reason":     "max deliveries (2) reached",
		"Sb-Dead-Queue":      "work",
		"Sb-Dead-Seq":        strconv.FormatUint(poison, 10),
		"Sb-Dead-Deliveries": "2",
		"Sb-Subject":         "work",
	} {
		if got := e.Header.Get(k); got != want {
			t.Errorf("dead letter %s: %q, want %q (header %v)", k, got, want, e.Header)
		}
	}
	if e := nextEvent(t, d); e.Ev != "acked" {
		t.Fatalf("dead-letter consumer: %+v; output:\n%s", e, d.Output())
	}
	waitFor(t, "the dead letter removed from work", func() bool { return info("work").Messages == 0 })
	if inf := info("dead"); inf.Messages != 0 {
		t.Fatalf("dead holds %d messages after its one was acknowledged", inf.Messages)
	}
	// The holder of the last delivery learns nothing more; its late ack
	// would be refused. A new consumer finds nothing to take.
	if out, stderr, code := runCLI(t, env, "", bin, "queue", "pull", "work", "--timeout", "1s"); code != 1 || !strings.Contains(stderr, "no message") {
		t.Fatalf("pull after the dead letter: exit %d, %q %q", code, out, stderr)
	}
	c2.Signal(syscall.SIGKILL)
	c2.Wait(10 * time.Second)
	hub.Signal(syscall.SIGTERM)
	if code := hub.Wait(15 * time.Second); code != 0 {
		t.Fatalf("serve exit %d after SIGTERM; output:\n%s", code, hub.Output())
	}
}

package shm

// Multi-process tests: the test binary re-executes itself as a helper
// process (TestHelperProcess, role chosen by SB_SHM_HELPER) and the ring
// crosses the process boundary as a real memfd, either inherited as fd 3
// (exec.Cmd.ExtraFiles) or, when the child owns the writable side, sent
// back to the parent with SCM_RIGHTS over a socketpair inherited as fd 3.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// helperEnv selects the role of a helper process; the test run itself
	// leaves it unset and TestHelperProcess skips.
	helperEnv = "SB_SHM_HELPER"
	// hostileEnv overrides how long TestProcHostile scribbles (a Go
	// duration, e.g. 30s); otherwise 10 s, or 2 s under -short.
	hostileEnv = "SB_SHM_HOSTILE"
	// seedEnv fixes the seed of TestProcHostile's random scribbling.
	seedEnv = "SB_SHM_SEED"
)

// --- Messages whose contents follow from their sequence number ---

var pattern = func() []byte {
	p := make([]byte, 1<<16)
	rand.NewChaCha8([32]byte{'s', 'b', 's', 'h', 'm'}).Read(p)
	return p
}()

// msgSize is the payload length of message seq in a ring of slot size s;
// every length from 0 to s occurs.
func msgSize(seq uint64, s int) int {
	switch {
	case seq%97 == 0:
		return s
	case seq%89 == 0:
		return 0
	}
	return int(seq * 7919 % uint64(s+1))
}

// fillMsg writes the payload of message seq into p (len(p) is its size):
// the sequence number, little-endian (truncated to len(p)), then a slice
// of pattern that starts at a seq-dependent offset.
func fillMsg(p []byte, seq uint64) {
	var h [8]byte
	binary.LittleEndian.PutUint64(h[:], seq)
	n := copy(p, h[:])
	copy(p[n:], pattern[seq%4093:])
}

// msgOK reports whether p is exactly the payload of message seq.
func msgOK(p []byte, seq uint64, s int) bool {
	if len(p) != msgSize(seq, s) {
		return false
	}
	var h [8]byte
	binary.LittleEndian.PutUint64(h[:], seq)
	n := min(len(p), 8)
	off := seq % 4093
	return bytes.Equal(p[:n], h[:n]) && bytes.Equal(p[n:], pattern[off:off+uint64(len(p)-n)])
}

// publishVaried publishes message seq, rotating through Publish, Loan+Send
// and Loan+Commit (with a Wake every few messages).
func publishVaried(w *Writer, seq uint64, buf []byte) error {
	n := msgSize(seq, w.SlotSize())
	switch seq % 3 {
	case 0:
		fillMsg(buf[:n], seq)
		return w.Publish(buf[:n])
	case 1:
		p, err := w.Loan(w.SlotSize())
		if err != nil {
			return err
		}
		fillMsg(p[:n], seq)
		return w.Send(n)
	default:
		p, err := w.Loan(n)
		if err != nil {
			return err
		}
		fillMsg(p, seq)
		if err := w.Commit(n); err != nil {
			return err
		}
		if seq%16 == 2 {
			w.Wake()
		}
		return nil
	}
}

// --- File descriptors ---

// checkFDs fails the test if the process holds a different number of file
// descriptors after the test (and its cleanups) than before. The runtime's
// poller is started first so its epoll fd is not mistaken for a leak.
func checkFDs(t *testing.T) {
	t.Helper()
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	before := fdList(t)
	t.Cleanup(func() {
		if after := fdList(t); len(after) != len(before) {
			t.Errorf("%d fds before the test, %d after:\nbefore %v\nafter  %v", len(before), len(after), before, after)
		}
	})
}

func fdList(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var l []string
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		l = append(l, e.Name()+"->"+target)
	}
	return l
}

// createRing makes a memfd ring closed when the test ends.
func createRing(t *testing.T, slots, size int) *Region {
	t.Helper()
	reg, err := Create("sb-proc", slots, size)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

// socketPair returns two connected unix stream sockets (close-on-exec).
func socketPair(t *testing.T) (parent, child int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A child that dies before sending closes its end (EOF); one that hangs
	// is caught by the receive timeout.
	tv := unix.Timeval{Sec: 30}
	if err := unix.SetsockoptTimeval(fds[0], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fds[0], fds[1]
}

func sendFD(sock, fd int) error {
	for {
		err := unix.Sendmsg(sock, []byte{'F'}, unix.UnixRights(fd), nil, 0)
		if err != unix.EINTR {
			return err
		}
	}
}

// recvFD receives one file descriptor sent with SCM_RIGHTS (close-on-exec).
func recvFD(sock int) (int, error) {
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4*4))
	for {
		n, oobn, _, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if err == unix.EINTR {
			continue // SO_RCVTIMEO makes recvmsg return EINTR on a signal
		}
		if err != nil {
			return -1, err
		}
		if n == 0 {
			return -1, io.EOF
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return -1, err
		}
		var fds []int
		for i := range msgs {
			f, err := unix.ParseUnixRights(&msgs[i])
			if err == nil {
				fds = append(fds, f...)
			}
		}
		if len(fds) != 1 {
			for _, fd := range fds {
				unix.Close(fd)
			}
			return -1, fmt.Errorf("received %d fds, want 1", len(fds))
		}
		return fds[0], nil
	}
}

// sendByte and recvByte are the go-ahead between parent and child.
func sendByte(sock int) error {
	for {
		_, err := unix.Write(sock, []byte{'G'})
		if err != unix.EINTR {
			return err
		}
	}
}

func recvByte(sock int) error {
	b := make([]byte, 1)
	for {
		n, err := unix.Read(sock, b)
		if err == unix.EINTR {
			continue
		}
		if err == nil && n == 0 {
			err = io.EOF
		}
		return err
	}
}

// --- Child processes, parent side ---

type child struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, line by line; closed at EOF
	out    []string    // lines consumed so far
	stderr bytes.Buffer
	waited bool
	killed bool // killed by wait's timeout
	err    error
}

// startChild runs the test binary as a helper process with role, extra
// environment, and dups of fds as fd 3, 4, ... The child is killed and
// waited for when the test ends if the test did not wait for it.
func startChild(t testing.TB, name, role string, env []string, fds ...int) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+role), env...)
	// Under -race a process sleeps 1 s at exit (atexit_sleep_ms) to let
	// racing goroutines report; a helper has none left by then.
	gorace := os.Getenv("GORACE")
	if gorace != "" {
		gorace += " "
	}
	cmd.Env = append(cmd.Env, "GORACE="+gorace+"atexit_sleep_ms=0")
	for _, fd := range fds {
		f := os.NewFile(uintptr(dup(t, fd)), "extra")
		defer f.Close() // the child has its own copy once started
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	c := &child{name: name, cmd: cmd, lines: make(chan string, 256)}
	cmd.Stderr = &c.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.stdin = stdin
	go func() {
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		io.Copy(io.Discard, stdout) // a line too long for the scanner
	}()
	t.Cleanup(func() {
		if !c.waited {
			c.cmd.Process.Kill()
			c.wait(30 * time.Second)
		}
	})
	return c
}

// expect consumes stdout until a line starting with prefix, for at most d.
func (c *child) expect(t testing.TB, prefix string, d time.Duration) string {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				c.wait(10 * time.Second)
				t.Fatalf("%s ended before printing %q (%v):\n%s", c.name, prefix, c.err, c.output())
			}
			c.out = append(c.out, l)
			if strings.HasPrefix(l, prefix) {
				return l
			}
		case <-timer.C:
			t.Fatalf("%s printed no %q within %v:\n%s", c.name, prefix, d, c.output())
		}
	}
}

// wait closes the child's stdin (its signal to stop, for the roles that
// run until told), collects its output and reaps it, killing it if it has
// not exited within d.
func (c *child) wait(d time.Duration) {
	if c.waited {
		return
	}
	c.waited = true
	c.stdin.Close()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for open := true; open; {
		select {
		case l, ok := <-c.lines:
			if ok {
				c.out = append(c.out, l)
			}
			open = ok
		case <-timer.C:
			c.cmd.Process.Kill()
			c.killed = true
		}
	}
	c.err = c.cmd.Wait()
}

func (c *child) output() string {
	return fmt.Sprintf("stdout:\n%s\nstderr:\n%s", strings.Join(c.out, "\n"), c.stderr.String())
}

// finish waits for a child that should exit 0 and returns its summary.
func (c *child) finish(t *testing.T, d time.Duration) map[string]int64 {
	t.Helper()
	c.wait(d)
	if c.killed {
		t.Errorf("%s did not exit within %v and was killed", c.name, d)
	}
	if c.err != nil {
		t.Errorf("%s: %v\n%s", c.name, c.err, c.output())
		return nil
	}
	for _, l := range c.out {
		if rest, ok := strings.CutPrefix(l, "SUMMARY "); ok {
			sum := map[string]int64{}
			for _, f := range strings.Fields(rest) {
				k, v, _ := strings.Cut(f, "=")
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Errorf("%s: bad summary field %q", c.name, f)
				}
				sum[k] = n
			}
			return sum
		}
	}
	t.Errorf("%s printed no summary:\n%s", c.name, c.output())
	return nil
}

// --- Child processes, child side ---

// TestHelperProcess is not a test: it is the body of the helper processes
// the multi-process tests start, and skips unless SB_SHM_HELPER is set.
// It prints READY and SUMMARY lines on stdout for the parent to parse and
// fails (exit status 1) on any broken invariant.
func TestHelperProcess(t *testing.T) {
	role := os.Getenv(helperEnv)
	if role == "" {
		t.Skip("helper process of the multi-process tests")
	}
	switch role {
	case "sub":
		helperSub(t)
	case "hostile-reader":
		helperHostileReader(t)
	case "hostile-writer":
		helperHostileWriter(t)
	case "writer":
		helperWriter(t)
	default:
		if h := peerHelpers[role]; h != nil {
			h(t) // proc_peer_test.go
			return
		}
		t.Fatalf("unknown role %q", role)
	}
}

func envInt(t *testing.T, name string) int {
	t.Helper()
	n, err := strconv.Atoi(os.Getenv(name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return n
}

// stdinClosed returns a channel closed when the parent closes our stdin.
func stdinClosed() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(ch)
	}()
	return ch
}

// helperSub reads the ring inherited as fd 3 with Next (or Recv) until
// ErrClosed and checks every message: sequence numbers account for every
// gap as missed, a view Release reports intact has exactly the payload its
// sequence number dictates, and the last N messages (never overwritten
// once the writer stopped) are all read intact.
func helperSub(t *testing.T) {
	total := uint64(envInt(t, "SB_SHM_TOTAL"))
	recv := os.Getenv("SB_SHM_MODE") == "recv"
	rd, err := OpenReader(3)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r, err := rd.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	s, slots := r.SlotSize(), r.g.slots
	fmt.Println("READY", r.Pos())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var read, missed, torn, tail uint64
	next := r.Pos()
	var buf []byte
	for {
		var m Msg
		if recv {
			buf, m, err = r.Recv(ctx, buf)
		} else {
			m, err = r.Next(ctx)
		}
		if errors.Is(err, ErrClosed) {
			break
		}
		if err != nil {
			t.Fatalf("after %d messages: %v", read, err)
		}
		if m.Seq != next+m.Missed {
			t.Fatalf("message %d after %d with %d missed", m.Seq, next, m.Missed)
		}
		next = m.Seq + 1
		read++
		missed += m.Missed
		ok := msgOK(m.Data, m.Seq, s)
		intact := recv || r.Release()
		switch {
		case !intact:
			torn++
		case !ok:
			t.Fatalf("message %d: intact but %d bytes of wrong contents", m.Seq, len(m.Data))
		case m.Seq+slots >= total:
			tail++
		}
	}
	st := r.Stats()
	if st.Read != read || st.Missed != missed || st.Torn != torn || st.Corrupt != 0 {
		t.Errorf("reader stats %+v, counted read %d missed %d torn %d", st, read, missed, torn)
	}
	if read+missed != total || next != total {
		t.Errorf("read %d + missed %d != %d published (next %d)", read, missed, total, next)
	}
	// A reader lapped during the last stretch lands lapMargin past the
	// oldest slot (one more when the writer overtook it mid-read, to stay
	// clear of the slot being written), so only the newest
	// slots-lapMargin-1 messages are certain;
	// none of the newest slots can be torn, as none was overwritten.
	if want := min(slots, total); tail+lapMargin(slots)+1 < want || tail > want {
		t.Errorf("%d of the last %d messages read intact, want at least %d", tail, want, want-lapMargin(slots)-1)
	}
	fmt.Printf("SUMMARY read=%d missed=%d torn=%d tail=%d\n", read, missed, torn, tail)
}

// helperHostileReader reads the ring inherited as fd 3 with every reader
// call while the parent scribbles over it, until stdin closes. First it
// checks that it cannot get write access to the ring through the fd.
func helperHostileReader(t *testing.T) {
	rd, err := OpenReader(3)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r, err := rd.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	escalated := tryEscalate(t, rd)
	fmt.Println("READY")
	seed := uint64(envInt(t, seedEnv))
	c, err := hostileRead(rd.mem, r, rand.New(rand.NewPCG(seed, 2)), stdinClosed())
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("SUMMARY escalated=%d %s\n", escalated, c)
}

// tryEscalate tries to write to the ring through a reader's fd and its
// read-only mapping, and returns how many ways succeeded (want 0).
func tryEscalate(t *testing.T, rd *Region) int {
	fd := rd.Fd()
	n := 0
	if m, err := unix.Mmap(fd, 0, rd.Size(), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
		unix.Munmap(m)
		t.Log("writable shared mmap of the reader's fd succeeded")
		n++
	}
	if err := unix.Mprotect(rd.mem, unix.PROT_READ|unix.PROT_WRITE); err == nil {
		unix.Mprotect(rd.mem, unix.PROT_READ)
		t.Log("mprotect of the read-only mapping to PROT_WRITE succeeded")
		n++
	}
	if _, err := unix.Pwrite(fd, []byte{0}, OffClosed); err == nil {
		t.Log("pwrite to the reader's fd succeeded")
		n++
	}
	if err := unix.Ftruncate(fd, 0); err == nil {
		t.Log("ftruncate of the reader's fd succeeded")
		n++
	}
	return n
}

// helperHostileWriter creates a ring, sends its fd to the parent over the
// socket inherited as fd 3, waits for the go-ahead and scribbles over the
// whole ring until stdin closes.
func helperHostileWriter(t *testing.T) {
	const slots, size = 64, 256
	reg, err := Create("sb-proc-hostile", slots, size)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if err := sendFD(3, reg.Fd()); err != nil {
		t.Fatal(err)
	}
	if err := recvByte(3); err != nil {
		t.Fatal(err)
	}
	seed := uint64(envInt(t, seedEnv))
	rounds := scribble(reg.mem, slots, size, rand.New(rand.NewPCG(seed, 3)), stdinClosed())
	fmt.Printf("SUMMARY rounds=%d\n", rounds)
}

// helperWriter creates a ring, sends its fd to the parent over the socket
// inherited as fd 3, waits for the go-ahead and publishes varied messages
// until it is killed.
func helperWriter(t *testing.T) {
	slots, size := envInt(t, "SB_SHM_SLOTS"), envInt(t, "SB_SHM_SIZE")
	reg, err := Create("sb-proc-writer", slots, size)
	if err != nil {
		t.Fatal(err)
	}
	w, err := reg.Writer()
	if err != nil {
		t.Fatal(err)
	}
	if err := sendFD(3, reg.Fd()); err != nil {
		t.Fatal(err)
	}
	if err := recvByte(3); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, size)
	for seq := uint64(0); ; seq++ {
		if err := publishVaried(w, seq, buf); err != nil {
			t.Fatal(err)
		}
	}
}

// --- The tests ---

// TestProcPubSub: the parent publishes 100,000 messages of every size from
// 0 to S through a memfd ring; a subscriber process reads them with Next
// until ErrClosed, checks every intact message's contents and that read +
// missed == published, and that it read the last N messages intact.
func TestProcPubSub(t *testing.T) { procPubSub(t, "next") }

// TestProcFanOut is TestProcPubSub with three subscriber processes reading
// at once, two with Next and one with Recv.
func TestProcFanOut(t *testing.T) { procPubSub(t, "next", "next", "recv") }

func procPubSub(t *testing.T, modes ...string) {
	checkFDs(t)
	const total, slots, size = 100_000, 256, 1000
	reg := createRing(t, slots, size)
	w, err := reg.Writer()
	if err != nil {
		t.Fatal(err)
	}
	var cs []*child
	for i, mode := range modes {
		env := []string{"SB_SHM_MODE=" + mode, fmt.Sprint("SB_SHM_TOTAL=", total)}
		cs = append(cs, startChild(t, fmt.Sprintf("subscriber %d (%s)", i, mode), "sub", env, reg.Fd()))
	}
	for _, c := range cs {
		if l := c.expect(t, "READY", 30*time.Second); l != "READY 0" {
			t.Fatalf("%s: %q, want READY 0", c.name, l)
		}
	}
	start := time.Now()
	buf := make([]byte, size)
	for seq := range uint64(total) {
		if err := publishVaried(w, seq, buf); err != nil {
			t.Fatal(err)
		}
	}
	w.Close()
	published := time.Since(start)
	for _, c := range cs {
		sum := c.finish(t, time.Minute)
		if sum == nil {
			continue
		}
		if sum["read"]+sum["missed"] != total || sum["tail"] < slots-int64(lapMargin(uint64(slots)))-1 {
			t.Errorf("%s: %v; want read+missed = %d and tail >= %d", c.name, sum, total, slots-int64(lapMargin(uint64(slots)))-1)
		}
		t.Logf("%s: read %d (%d torn), missed %d", c.name, sum["read"], sum["torn"], sum["missed"])
	}
	t.Logf("published %d messages in %v", total, published)
}

// TestProcHostile: for hostileDuration, the parent scribbles random bytes
// over a whole ring (header and slots) while two reader processes call
// every reader method on it; at the same time a hostile child scribbles
// over a ring it created and handed to the parent, which reads it the
// same way. Nobody may panic, fault or hang (every call returns, the
// slowest is reported), every message must fit its slot and lie inside
// the mapping, and the readers must not gain write access through the fd.
func TestProcHostile(t *testing.T) {
	checkFDs(t)
	d := hostileDuration(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(seedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", seedEnv, err)
		}
	}
	t.Logf("%v of scribbling, %s=%d", d, seedEnv, seed)
	env := []string{fmt.Sprint(seedEnv, "=", seed)}

	// The parent holds the writable mapping; two children read.
	const slots, size = 64, 256
	reg := createRing(t, slots, size)
	var readers []*child
	for i := range 2 {
		readers = append(readers, startChild(t, fmt.Sprint("hostile reader ", i), "hostile-reader", env, reg.Fd()))
	}
	for _, c := range readers {
		c.expect(t, "READY", 30*time.Second)
	}

	// The reverse: a child holds the writable mapping, the parent reads.
	sock, childEnd := socketPair(t)
	defer unix.Close(sock)
	hw := startChild(t, "hostile writer", "hostile-writer", env, childEnd)
	unix.Close(childEnd)
	fd, err := recvFD(sock)
	if err != nil {
		t.Fatalf("receiving the hostile ring: %v\n%s", err, hw.output())
	}
	rrd, err := OpenReader(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	defer rrd.Close()
	rr, err := rrd.NewReader()
	if err != nil {
		t.Fatal(err)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var rounds int
	var own hostileCounts
	var ownErr error
	wg.Go(func() { rounds = scribble(reg.mem, slots, size, rand.New(rand.NewPCG(seed, 1)), stop) })
	wg.Go(func() { own, ownErr = hostileRead(rrd.mem, rr, rand.New(rand.NewPCG(seed, 4)), stop) })
	if err := sendByte(sock); err != nil {
		t.Error(err)
	}

	time.Sleep(d) // the exposure, not an assertion
	// The children stop while the parent still scribbles: their last
	// calls, too, return under fire.
	for _, c := range readers {
		sum := c.finish(t, 30*time.Second)
		if sum == nil {
			continue
		}
		if sum["escalated"] != 0 {
			t.Errorf("%s gained write access to the ring in %d ways:\n%s", c.name, sum["escalated"], c.output())
		}
		if sum["calls"] == 0 || sum["msgs"] == 0 {
			t.Errorf("%s made no progress: %v", c.name, sum)
		}
		t.Logf("%s: %v", c.name, sum)
	}
	sum := hw.finish(t, 30*time.Second)
	close(stop)
	wg.Wait()
	if ownErr != nil {
		t.Errorf("parent reading the hostile child's ring: %v", ownErr)
	}
	if own.calls == 0 || own.msgs == 0 {
		t.Errorf("parent made no progress on the hostile child's ring: %v", own)
	}
	t.Logf("parent scribbled %d rounds; hostile child %v; parent reading it: %v", rounds, sum, own)
}

// TestProcWriterKilled: a writer process publishes in a loop; the parent
// reads and checks every message, and after 5,000 kills the writer with
// SIGKILL, most likely in the middle of a message. The parent's reader
// drains what was published, then Next with a deadline returns
// DeadlineExceeded (no hang, no ErrClosed: a dead writer closes nothing),
// read + missed accounts for every published message, and the region
// closes cleanly.
func TestProcWriterKilled(t *testing.T) {
	checkFDs(t)
	const slots, size, killAt = 256, 512, 5000
	sock, childEnd := socketPair(t)
	defer unix.Close(sock)
	c := startChild(t, "writer", "writer", []string{fmt.Sprint("SB_SHM_SLOTS=", slots), fmt.Sprint("SB_SHM_SIZE=", size)}, childEnd)
	unix.Close(childEnd)
	fd, err := recvFD(sock)
	if err != nil {
		t.Fatalf("receiving the ring: %v\n%s", err, c.output())
	}
	rd, err := OpenReader(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	defer rd.Close()
	r, err := rd.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	if err := sendByte(sock); err != nil {
		t.Fatal(err)
	}

	var read, missed, torn, next uint64
	var lastWait time.Duration
	for killed := false; ; {
		// Before the kill the writer never pauses; after it, nothing comes.
		wait := 10 * time.Second
		if killed {
			wait = 200 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		start := time.Now()
		m, err := r.Next(ctx)
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && killed {
			lastWait = time.Since(start)
			break
		}
		if err != nil {
			t.Fatalf("after %d messages (writer killed: %v): %v", read, killed, err)
		}
		if m.Seq != next+m.Missed {
			t.Fatalf("message %d after %d with %d missed", m.Seq, next, m.Missed)
		}
		next = m.Seq + 1
		read++
		missed += m.Missed
		ok := msgOK(m.Data, m.Seq, size)
		if !r.Release() {
			torn++
		} else if !ok {
			t.Fatalf("message %d: intact but %d bytes of wrong contents", m.Seq, len(m.Data))
		}
		if read == killAt {
			if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	c.wait(30 * time.Second)
	if ee, ok := c.err.(*exec.ExitError); !ok || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Errorf("writer ended with %v, want killed by SIGKILL\n%s", c.err, c.output())
	}

	// The writer is gone: the ring is quiescent. Everything published was
	// read or counted missed, and nothing more arrives.
	st := rd.Stats()
	if st.Closed {
		t.Error("ring marked closed by a killed writer")
	}
	// A writer killed between a record's word and its store of the message
	// count leaves one complete message the header does not count yet;
	// readers go by the records.
	end := st.WriteSeq
	if next == end+1 {
		end++
	}
	if read+missed != end || next != end || r.Stats().Missed != missed || r.Stats().Torn != torn {
		t.Errorf("read %d + missed %d, next %d, reader stats %+v; writer published %d (records say %d)", read, missed, next, r.Stats(), st.WriteSeq, end)
	}
	if _, err := r.TryNext(); !errors.Is(err, ErrEmpty) {
		t.Errorf("TryNext on the dead writer's ring: %v, want ErrEmpty", err)
	}
	// The history: from the first message of the oldest slot on, every
	// message up to the last, in order and intact (the writer is dead:
	// nothing overwrites them now).
	r.Rewind()
	first, history := r.Pos(), uint64(0)
	for {
		m, err := r.TryNext()
		if errors.Is(err, ErrEmpty) {
			break
		}
		if err != nil || m.Seq != first+history || m.Missed != 0 || !msgOK(m.Data, m.Seq, size) || !r.Release() {
			t.Fatalf("history after the kill, message %d: seq %d (first %d), missed %d, %d bytes, %v", history, m.Seq, first, m.Missed, len(m.Data), err)
		}
		history++
	}
	if first+history != end || history == 0 || (end >= slots && history < slots-1) {
		t.Errorf("history after the kill: messages %d to %d, want up to %d and at least a message a slot", first, first+history, end)
	}
	midWrite := false
	t.Logf("read %d (%d torn), missed %d of %d; next slot marked: %v; the last Next waited %v",
		read, torn, missed, end, midWrite, lastWait)
}

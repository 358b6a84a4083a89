package spinbase

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// childEnv marks the child process; its value is the parent's pid.
	childEnv = "SWITCHBOARD_SPINBASE_CHILD"

	// Layout of the shared page. ping and pong sit 128 bytes apart so that
	// neither the 64-byte line nor the adjacent-line prefetcher (which
	// pulls lines in 128-byte pairs on x86) couples them.
	pageSize = 4096
	offPing  = 0                  // written by the parent, read by the child
	offPong  = 128                // written by the child, read by the parent
	offMagic = 256                // written by the parent before the child starts
	magic    = 0x31304e4950534253 // "SBSPIN01", little-endian

	// Values of ping and pong besides the round-trip numbers 1, 2, 3, ...
	readyValue = ^uint64(0) - 1 // pong: the child is mapped and spinning
	stopValue  = ^uint64(0)     // ping: the child must exit

	warmupTrips = 10_000
	warmupTime  = 20 * time.Millisecond

	// checkEvery is how many round trips the parent runs between looks at
	// ctx and the child (outside the timed span).
	checkEvery = 1024
	// stallSpins is how many fruitless parent spins trigger the same look.
	stallSpins = 1 << 16
	// parentSpins is how many fruitless child spins trigger a look at
	// whether the parent still exists.
	parentSpins = 1 << 20

	// stopTimeout bounds the wait for the child to exit after the stop value.
	stopTimeout = 10 * time.Second
	// outputLimit bounds the child output kept for error messages.
	outputLimit = 16 << 10
)

// testHook, when set by a test, is called at stages of Run: "prestart"
// (page ready, child not started yet), "started" (child started, not
// necessarily ready) and "measuring" (warm-up done, right before the
// measured round trips).
var testHook func(stage string, cmd *exec.Cmd, mem []byte)

// words returns the ping and pong words of the shared page.
func words(mem []byte) (ping, pong *atomic.Uint64) {
	return (*atomic.Uint64)(unsafe.Pointer(&mem[offPing])), (*atomic.Uint64)(unsafe.Pointer(&mem[offPong]))
}

// Run starts the child process, waits until it spins on the shared page,
// warms up and then runs n round trips, recording the round-trip time of
// each (n must be in 1..MaxRoundTrips; Run preallocates 8n bytes). The
// child is this same executable re-executed with an environment variable
// set; the executable's main function (or TestMain in tests) must call
// ChildMain first thing.
//
// Run keeps two CPUs busy for its whole duration and returns ErrTooFewCPUs
// on a machine with fewer than two. It returns ctx.Err() promptly when ctx
// is done, and an error that includes the child's output when the child
// fails to start, exits early or misbehaves. On every path the child has
// been waited for, and the page unmapped and its fd closed, by the time
// Run returns.
func Run(ctx context.Context, n int) (Result, error) {
	if n < 1 || n > MaxRoundTrips {
		return Result{}, fmt.Errorf("spinbase: round trips %d out of range 1..%d", n, MaxRoundTrips)
	}
	if runtime.NumCPU() < 2 {
		return Result{}, ErrTooFewCPUs
	}
	if _, ok := os.LookupEnv(childEnv); ok {
		// We are a child whose main did not call ChildMain; running on
		// would re-execute ourselves forever.
		return Result{}, fmt.Errorf("spinbase: Run called in a spinbase child process (%s is set): the program's main must call spinbase.ChildMain first", childEnv)
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	exe, err := os.Executable()
	if err != nil {
		return Result{}, fmt.Errorf("spinbase: cannot find the executable to re-execute: %w", err)
	}

	// Preallocate and pre-fault the samples so the measured loop neither
	// allocates nor page-faults.
	samples := make([]time.Duration, n)
	for i := range samples {
		samples[i] = 1
	}

	fd, err := unix.MemfdCreate("switchboard-spinbase", unix.MFD_CLOEXEC)
	if err != nil {
		return Result{}, fmt.Errorf("spinbase: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "switchboard-spinbase") // owns fd from here on
	defer f.Close()
	if err := unix.Ftruncate(fd, pageSize); err != nil {
		return Result{}, fmt.Errorf("spinbase: ftruncate: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return Result{}, fmt.Errorf("spinbase: mmap: %w", err)
	}
	defer unix.Munmap(mem)
	ping, pong := words(mem)
	ping.Store(0)
	pong.Store(0)
	(*atomic.Uint64)(unsafe.Pointer(&mem[offMagic])).Store(magic)

	// Lock before starting the child: PR_SET_PDEATHSIG fires when the
	// thread that forked the child exits, and a locked thread only exits
	// with its goroutine.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+strconv.Itoa(os.Getpid()), goraceEnv())
	cmd.ExtraFiles = []*os.File{f} // fd 3 in the child
	out := &boundedBuffer{limit: outputLimit}
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if testHook != nil {
		testHook("prestart", cmd, mem)
	}
	if err := cmd.Start(); err != nil {
		return Result{}, fmt.Errorf("spinbase: starting the child %s: %w", exe, err)
	}
	s := &session{ctx: ctx, ping: ping, pong: pong, exited: make(chan struct{}), out: out}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	defer func() {
		select {
		case <-s.exited:
		default:
			cmd.Process.Kill()
			<-s.exited
		}
	}()
	f.Close() // the child has its own copy; the mapping stays valid
	if testHook != nil {
		testHook("started", cmd, mem)
	}

	if err := s.waitReady(); err != nil {
		return Result{}, err
	}
	warm := samples[:min(len(samples), warmupTrips)]
	deadline := time.Now().Add(warmupTime)
	for done := 0; done < warmupTrips || time.Now().Before(deadline); done += len(warm) {
		if err := s.trips(warm); err != nil {
			return Result{}, err
		}
	}
	clock := clockOverhead()
	if testHook != nil {
		testHook("measuring", cmd, mem)
	}
	if err := s.trips(samples); err != nil {
		return Result{}, err
	}
	ping.Store(stopValue)
	if err := s.waitExit(); err != nil {
		return Result{}, err
	}
	r := summarize(samples)
	r.ClockOverhead = clock
	return r, nil
}

// session is the parent's side of one run.
type session struct {
	ctx        context.Context
	ping, pong *atomic.Uint64
	seq        uint64 // the last round trip completed

	exited  chan struct{} // closed once the child has been waited for
	waitErr error         // cmd.Wait's result; read only after exited
	out     *boundedBuffer
}

// childErr describes the child's early exit, with its output.
func (s *session) childErr(when string) error {
	status := "exit status 0"
	if s.waitErr != nil {
		status = s.waitErr.Error()
	}
	msg := fmt.Sprintf("spinbase: the child exited %s (%s)", when, status)
	if o := strings.TrimSpace(s.out.String()); o != "" {
		msg += ": " + o
	} else if s.waitErr == nil {
		msg += "; does the program's main call spinbase.ChildMain first?"
	}
	return errors.New(msg)
}

// check returns ctx's error if ctx is done, an error if the child exited,
// and nil otherwise, without blocking.
func (s *session) check() error {
	select {
	case <-s.ctx.Done():
		return s.ctx.Err()
	case <-s.exited:
		return s.childErr(fmt.Sprintf("during the run, after %d round trips", s.seq))
	default:
		return nil
	}
}

// waitReady polls (sleeping, not spinning: the child needs the CPU to
// start) until the child reports that it spins on the page.
func (s *session) waitReady() error {
	t := time.NewTicker(100 * time.Microsecond)
	defer t.Stop()
	for s.pong.Load() != readyValue {
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case <-s.exited:
			return s.childErr("before it was ready")
		case <-t.C:
		}
	}
	return nil
}

// waitExit waits for the child to exit after the stop value.
func (s *session) waitExit() error {
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		return s.ctx.Err()
	case <-t.C:
		return fmt.Errorf("spinbase: the child did not exit within %v of the stop value", stopTimeout)
	case <-s.exited:
	}
	if s.waitErr != nil {
		return s.childErr("with an error after the run")
	}
	return nil
}

// trips runs len(samples) round trips and stores the time of each in
// samples. It looks at ctx and the child every checkEvery round trips and
// whenever the child has not answered for stallSpins spins.
//
// The clock is time.Since on a fixed base: it reads only the monotonic
// clock (one vDSO clock_gettime), about half the cost of time.Now, which
// reads the wall clock too.
func (s *session) trips(samples []time.Duration) error {
	ping, pong := s.ping, s.pong
	k := s.seq
	base := time.Now()
	prev := time.Since(base)
	for i := range samples {
		k++
		ping.Store(k)
		for spins := uint32(1); pong.Load() != k; spins++ {
			if spins%stallSpins == 0 {
				if err := s.check(); err != nil {
					return err
				}
			}
		}
		now := time.Since(base)
		samples[i] = now - prev
		prev = now
		if i%checkEvery == checkEvery-1 {
			s.seq = k
			if err := s.check(); err != nil {
				return err
			}
			prev = time.Since(base)
		}
	}
	s.seq = k
	return nil
}

// clockOverhead returns the median time between two consecutive readings
// of the clock trips uses.
func clockOverhead() time.Duration {
	var d [1001]time.Duration
	base := time.Now()
	prev := time.Since(base)
	for i := range d {
		now := time.Since(base)
		d[i] = now - prev
		prev = now
	}
	slices.Sort(d[:])
	return d[len(d)/2]
}

// goraceEnv returns GORACE for the child: as ours, plus no 1 s sleep at
// exit when the binary is built with -race (the child has no goroutines
// left to report by then).
func goraceEnv() string {
	g := os.Getenv("GORACE")
	if g != "" {
		g += " "
	}
	return "GORACE=" + g + "atexit_sleep_ms=0"
}

// boundedBuffer keeps the first limit bytes written to it. os/exec calls
// Write from one goroutine and the parent reads only after cmd.Wait, so it
// needs no lock.
type boundedBuffer struct {
	limit int
	b     []byte
	lost  bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	room := b.limit - len(b.b)
	if len(p) > room {
		b.lost = true
		b.b = append(b.b, p[:max(room, 0)]...)
	} else {
		b.b = append(b.b, p...)
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string {
	if b.lost {
		return string(b.b) + " [output truncated]"
	}
	return string(b.b)
}

// ChildMain returns immediately unless this process was started by Run as
// the child, in which case it runs the child side of the ping-pong and
// exits the process (status 0 after the parent's stop value, non-zero with
// a message on stderr on error). Call it first thing in main, and in
// TestMain of tests that call Run, before flag parsing or any other work.
func ChildMain() {
	v, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	if err := child(v); err != nil {
		fmt.Fprintln(os.Stderr, "spinbase child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// child runs the child side: map fd 3, report ready, then answer every
// ping until the stop value.
func child(ppidEnv string) error {
	runtime.LockOSThread()
	ppid, err := strconv.Atoi(ppidEnv)
	if err != nil {
		return fmt.Errorf("bad %s=%q", childEnv, ppidEnv)
	}
	if os.Getppid() != ppid {
		return fmt.Errorf("parent %d is gone (or %s was inherited by an unrelated process)", ppid, childEnv)
	}
	var st unix.Stat_t
	if err := unix.Fstat(3, &st); err != nil {
		return fmt.Errorf("fd 3: %w (not started by spinbase.Run?)", err)
	}
	if st.Size != pageSize {
		return fmt.Errorf("fd 3 is %d bytes, want %d (not started by spinbase.Run?)", st.Size, pageSize)
	}
	mem, err := unix.Mmap(3, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap fd 3: %w", err)
	}
	unix.Close(3)
	if m := (*atomic.Uint64)(unsafe.Pointer(&mem[offMagic])).Load(); m != magic {
		return fmt.Errorf("bad magic %#x in the shared page, want %#x (not started by spinbase.Run?)", m, uint64(magic))
	}
	ping, pong := words(mem)
	pong.Store(readyValue)
	last := uint64(0)
	spins := 0
	for {
		v := ping.Load()
		if v == last {
			if spins++; spins == parentSpins {
				spins = 0
				if os.Getppid() != ppid {
					return fmt.Errorf("parent %d is gone", ppid)
				}
			}
			continue
		}
		if v == stopValue {
			return nil
		}
		if v != last+1 {
			return fmt.Errorf("protocol error: ping went from %d to %d", last, v)
		}
		pong.Store(v)
		last = v
		spins = 0
	}
}

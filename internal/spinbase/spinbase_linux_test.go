package spinbase

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// children returns the pids of this process's children (zombies included).
func children(t testing.TB) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, ppid, ok := procStat(pid); ok && ppid == os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat returns the state and parent pid of process pid; ok is false if
// there is no such process.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// pid (comm) state ppid ...; comm may contain anything but ends at the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], ppid, true
}

// openFDs lists this process's open file descriptors with their targets.
func openFDs(t testing.TB) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var fds []string
	for _, e := range ents {
		target, _ := os.Readlink("/proc/self/fd/" + e.Name())
		fds = append(fds, e.Name()+" -> "+target)
	}
	return fds
}

func noChildren(t *testing.T) {
	t.Helper()
	if c := children(t); len(c) != 0 {
		t.Errorf("child processes left behind: %v", c)
	}
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	// The first run may open descriptors the runtime keeps for good (the
	// netpoller's epoll fd, used for the child's output pipe); count after it.
	if _, err := Run(ctx, 1); err != nil {
		t.Fatal(err)
	}
	before := openFDs(t)

	const n = 20_000
	r, err := Run(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", r)
	if r.RoundTrips != n {
		t.Errorf("RoundTrips = %d, want %d", r.RoundTrips, n)
	}
	if !(0 < r.Min && r.Min <= r.P50 && r.P50 <= r.P99 && r.P99 <= r.Max) {
		t.Errorf("want 0 < Min <= P50 <= P99 <= Max, got %+v", r)
	}
	if r.Mean < r.Min || r.Mean > r.Max {
		t.Errorf("Mean %v outside [Min, Max] in %+v", r.Mean, r)
	}
	if r.ClockOverhead < 0 {
		t.Errorf("negative ClockOverhead in %+v", r)
	}
	noChildren(t)
	if after := openFDs(t); len(after) != len(before) {
		t.Errorf("open fds before Run: %d, after: %d\nbefore: %v\nafter:  %v", len(before), len(after), before, after)
	}
}

func TestBadArgs(t *testing.T) {
	for _, n := range []int{-1, 0, MaxRoundTrips + 1} {
		if _, err := Run(context.Background(), n); err == nil {
			t.Errorf("Run(%d) succeeded", n)
		}
	}
	noChildren(t)
}

// withHook installs testHook for the duration of the test.
func withHook(t *testing.T, h func(stage string, cmd *exec.Cmd, mem []byte)) {
	t.Cleanup(func() { testHook = nil })
	testHook = h
}

func TestCancel(t *testing.T) {
	t.Run("before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := Run(ctx, 1000); err != context.Canceled {
			t.Fatalf("err = %v, want %v", err, context.Canceled)
		}
		noChildren(t)
	})
	// Cancel at each stage of the run. Once measuring, Run can only return
	// ctx.Err() (rather than finish) if its periodic check works.
	for _, stage := range []string{"prestart", "started", "measuring"} {
		t.Run(stage, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			withHook(t, func(s string, _ *exec.Cmd, _ []byte) {
				if s == stage {
					cancel()
				}
			})
			if _, err := Run(ctx, 1<<20); err != context.Canceled {
				t.Fatalf("err = %v, want %v", err, context.Canceled)
			}
			noChildren(t)
		})
	}
	// A stopped child never answers: Run must notice ctx while spinning.
	t.Run("stalled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		withHook(t, func(s string, cmd *exec.Cmd, _ []byte) {
			if s == "measuring" {
				cmd.Process.Signal(syscall.SIGSTOP)
			}
		})
		if _, err := Run(ctx, 1<<20); err != context.DeadlineExceeded {
			t.Fatalf("err = %v, want %v", err, context.DeadlineExceeded)
		}
		noChildren(t)
	})
	t.Run("timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Run(ctx, 1<<22)
		t.Logf("Run returned %v after %v", err, time.Since(start))
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want nil or %v", err, context.DeadlineExceeded)
		}
		noChildren(t)
	})
}

func TestChildFailures(t *testing.T) {
	t.Run("bad page", func(t *testing.T) {
		withHook(t, func(s string, _ *exec.Cmd, mem []byte) {
			if s == "prestart" {
				clear(mem)
			}
		})
		_, err := Run(context.Background(), 1000)
		if err == nil || !strings.Contains(err.Error(), "before it was ready") || !strings.Contains(err.Error(), "bad magic") {
			t.Fatalf("err = %v, want the child's bad magic complaint", err)
		}
		noChildren(t)
	})
	t.Run("killed", func(t *testing.T) {
		withHook(t, func(s string, cmd *exec.Cmd, _ []byte) {
			if s == "measuring" {
				cmd.Process.Kill()
			}
		})
		_, err := Run(context.Background(), 1<<20)
		if err == nil || !strings.Contains(err.Error(), "during the run") || !strings.Contains(err.Error(), "killed") {
			t.Fatalf("err = %v, want a killed child", err)
		}
		noChildren(t)
	})
	t.Run("no exec", func(t *testing.T) {
		withHook(t, func(s string, cmd *exec.Cmd, _ []byte) {
			if s == "prestart" {
				cmd.Path = "/nonexistent/spinbase-child"
			}
		})
		_, err := Run(context.Background(), 1000)
		if err == nil || !strings.Contains(err.Error(), "starting the child") {
			t.Fatalf("err = %v, want a start failure", err)
		}
		noChildren(t)
	})
	t.Run("nested", func(t *testing.T) {
		t.Setenv(childEnv, "1")
		if _, err := Run(context.Background(), 1000); err == nil || !strings.Contains(err.Error(), "ChildMain") {
			t.Fatalf("err = %v, want a refusal to run inside a child", err)
		}
		noChildren(t)
	})
}

const orphanEnv = "SPINBASE_TEST_ORPHAN"

// TestOrphanHelper is the middle process of TestOrphan: it starts a
// ping-pong, prints the child's pid and kills itself mid-run.
func TestOrphanHelper(t *testing.T) {
	mode := os.Getenv(orphanEnv)
	if mode == "" {
		t.Skip("helper process for TestOrphan")
	}
	withHook(t, func(s string, cmd *exec.Cmd, _ []byte) {
		switch s {
		case "prestart":
			if mode == "getppid" {
				cmd.SysProcAttr.Pdeathsig = 0 // leave it to the child's own check
			}
		case "measuring":
			fmt.Printf("child %d\n", cmd.Process.Pid)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	})
	Run(context.Background(), 1<<20)
	t.Fatal("still alive")
}

// TestOrphan checks that the child exits on its own when the process that
// ran Run dies: by PR_SET_PDEATHSIG, and without it by noticing that its
// parent changed.
func TestOrphan(t *testing.T) {
	for _, mode := range []string{"pdeathsig", "getppid"} {
		t.Run(mode, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestOrphanHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), orphanEnv+"="+mode, goraceEnv())
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			var pid int
			if _, scanErr := fmt.Sscanf(string(out), "child %d\n", &pid); scanErr != nil {
				t.Fatalf("helper: %v, output %q, stderr:\n%s", err, out, stderr.String())
			}
			if ee, ok := err.(*exec.ExitError); !ok || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper ended with %v, want killed; stderr:\n%s", err, stderr.String())
			}
			// A liveness bound, not a performance one: the child checks its
			// parent every 2^20 fruitless spins (milliseconds).
			deadline := time.Now().Add(60 * time.Second)
			for {
				state, _, ok := procStat(pid)
				if !ok || state == 'Z' || state == 'X' {
					break
				}
				if time.Now().After(deadline) {
					syscall.Kill(pid, syscall.SIGKILL)
					t.Fatalf("orphaned child %d still running (state %c)", pid, state)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	s := make([]time.Duration, 200)
	for i := range s {
		s[i] = time.Duration(200 - i)
	}
	r := summarize(s)
	want := Result{RoundTrips: 200, Min: 1, P50: 100, P99: 198, Max: 200, Mean: 100}
	if r != want {
		t.Errorf("summarize = %+v, want %+v", r, want)
	}
	if !slices.IsSorted(s) {
		t.Error("samples not sorted")
	}
	if r := summarize([]time.Duration{7}); r.P50 != 7 || r.P99 != 7 {
		t.Errorf("one sample: %+v", r)
	}
}

func BenchmarkSpinPingPong(b *testing.B) {
	r, err := Run(context.Background(), b.N)
	if err != nil {
		b.Fatal(err)
	}
	// Run's own wall time includes starting the child and the warm-up;
	// report the measured round trips only.
	b.ReportMetric(float64(r.Mean), "ns/op")
	b.ReportMetric(float64(r.P50), "p50-ns")
	b.ReportMetric(float64(r.P99), "p99-ns")
	b.ReportMetric(float64(r.ClockOverhead), "clock-ns")
}

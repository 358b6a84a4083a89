//go:build linux && amd64

package switchboard_test

// sleepRings when futex_waitv(2) is unavailable (Linux before 5.16,
// gVisor, or a seccomp profile that predates it, which answers ENOSYS or
// EPERM). shm.Waiter.Wait then naps 1 ms on the kick word alone: a
// sleepRings that looped on it woke an idle NextMsg about 1000 times a
// second, and a ring message waited up to 1 ms for the next nap's end.
// It falls back to watchRings there, which sleeps in FUTEX_WAIT
// (available everywhere) and is woken by the writer.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// denyFutexWaitv makes futex_waitv fail with ENOSYS in this process (all
// threads).
func denyFutexWaitv(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	prog := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_FUTEX_WAITV},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	fp := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	const setModeFilter, flagTsync = 1, 1
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, setModeFilter, flagTsync, uintptr(unsafe.Pointer(&fp))); e != 0 {
		t.Skipf("seccomp: %v", e)
	}
	ws := make([]uint64, 3)
	if _, _, e := unix.Syscall6(unix.SYS_FUTEX_WAITV, uintptr(unsafe.Pointer(&ws[0])), 1, 0, 0, 0, 0); e != unix.ENOSYS {
		t.Fatalf("futex_waitv still answers %v", e)
	}
}

func idleSleepCost(t *testing.T) (csw int64, cpu, latency time.Duration) {
	sh := startShmHub(t, 1<<20)
	const subj = "test.nowaitv"
	_, pub, s := ringPair(t, sh.unix, subj, nil)
	got := make(chan time.Time, 1)
	go func() {
		if _, err := s.NextMsg(context.Background()); err == nil {
			got <- time.Now()
		}
	}()
	time.Sleep(50 * time.Millisecond)
	var r0, r1 unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &r0)
	time.Sleep(time.Second)
	unix.Getrusage(unix.RUSAGE_SELF, &r1)
	start := time.Now()
	pub.Publish(subj, []byte("x"))
	latency = (<-got).Sub(start)
	cpu = time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	return r1.Nvcsw - r0.Nvcsw, cpu, latency
}

// TestShmSleepWithoutFutexWaitv runs itself again in a child process
// whose seccomp filter makes futex_waitv fail, and counts the voluntary
// context switches of a second of idle NextMsg there: about 50 with
// FUTEX_WAIT sleeps, about 2700 with 1 ms naps.
func TestShmSleepWithoutFutexWaitv(t *testing.T) {
	if os.Getenv("SB_TEST_NOWAITV") == "1" {
		denyFutexWaitv(t)
		csw, cpu, lat := idleSleepCost(t)
		fmt.Printf("RESULT csw=%d cpu=%v latency=%v\n", csw, cpu, lat)
		return
	}
	if useNATS {
		t.Skip("shared memory is the hub's")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestShmSleepWithoutFutexWaitv$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SB_TEST_NOWAITV=1")
	out, err := cmd.CombinedOutput()
	if regexp.MustCompile(`(?m)^\s*--- SKIP`).Match(out) {
		t.Skipf("child skipped:\n%s", out)
	}
	m := regexp.MustCompile(`RESULT csw=(\d+) cpu=(\S+) latency=(\S+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	ncsw, _ := strconv.Atoi(string(m[1]))
	t.Logf("without futex_waitv: 1 s idle NextMsg: %d voluntary context switches, %s CPU; a ring message woke it in %s", ncsw, m[2], m[3])
	if ncsw > 500 {
		t.Errorf("an idle NextMsg without futex_waitv woke up %d times in a second", ncsw)
	}
}

package switchboard_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"switchboard"
)

// TestShmPeerExitedSocketInherited: a publisher process gets a ring, hands
// its socket to a child (which keeps it open and does nothing) and is
// killed with SIGKILL. The socket never closes, so only the hub's pidfd on
// the connecting process can tell that it died: its connection must be
// closed and its ring reclaimed (the issue asks for 1 s; the bound here is
// generous and the time taken is logged).
func TestShmPeerExitedSocketInherited(t *testing.T) {
	if _, err := unix.GetsockoptInt(0, unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == unix.ENOPROTOOPT {
		t.Skip("the kernel has no SO_PEERPIDFD (Linux 6.5)")
	}
	sh := startShmHub(t, 64<<10)
	base := sh.h.Stats()
	child, lines := startReadyHelper(t, "TestShmPidfdHelper", "SB_SHM_PIDFD_SOCKET="+sh.socketPath)
	// The grandchild keeps the socket; the helper printed its pid next.
	var keeper int
	if lines.Scan() {
		keeper, _ = strconv.Atoi(lines.Text())
	}
	if keeper <= 0 {
		t.Fatalf("helper: no keeper pid: %q", lines.Text())
	}
	defer syscall.Kill(keeper, syscall.SIGKILL)
	if st := sh.h.Stats(); st.ShmRings != base.ShmRings+1 || st.Connections != base.Connections+1 {
		t.Fatalf("before the kill: %+v (base %+v)", st, base)
	}
	child.Process.Kill()
	killed := time.Now()
	child.Wait()
	waitFor(t, "the dead publisher's ring reclaimed", func() bool {
		st := sh.h.Stats()
		return st.ShmRings == base.ShmRings && st.Connections == base.Connections
	})
	t.Logf("reclaimed %v after SIGKILL, with the socket still open in pid %d", time.Since(killed).Round(time.Millisecond), keeper)
	if err := syscall.Kill(keeper, 0); err != nil {
		t.Fatalf("the process holding the socket is gone too (%v): the test proved nothing", err)
	}
}

// TestShmPidfdHelper is the publisher process of
// TestShmPeerExitedSocketInherited.
func TestShmPidfdHelper(t *testing.T) {
	sock := os.Getenv("SB_SHM_PIDFD_SOCKET")
	if sock == "" {
		t.Skip("the publisher process of TestShmPeerExitedSocketInherited")
	}
	uc, ring, _ := rawShmPublisher(t, sock, "pidfd.x")
	defer unix.Munmap(ring)
	f, err := uc.File() // a duplicate of the socket, for the keeper
	if err != nil {
		t.Fatal(err)
	}
	keeper := exec.Command("sleep", "60")
	keeper.ExtraFiles = []*os.File{f}
	if err := keeper.Start(); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("READY\n")
	os.Stdout.WriteString(strconv.Itoa(keeper.Process.Pid) + "\n")
	time.Sleep(time.Minute) // until killed
}

// TestShmShutdownWithLiveShmPeer: a hub with one shared-memory peer
// (another process, alive and idle) must finish Shutdown within its ctx.
// The connection is closed gracefully, which once marked it closed
// without closing the pidfd watched for the peer's exit: the hub then
// waited for the watcher until the peer process exited, and Shutdown
// (even after its ctx ended) did not return (found in review).
func TestShmShutdownWithLiveShmPeer(t *testing.T) {
	if _, err := unix.GetsockoptInt(0, unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == unix.ENOPROTOOPT {
		t.Skip("no SO_PEERPIDFD")
	}
	sh := startShmHub(t, 64<<10)
	child, _ := startReadyHelper(t, "TestShmIdlePeerHelper", "SB_SHM_IDLE_PEER_URL="+sh.unix)
	time.Sleep(100 * time.Millisecond) // HELLO processed (the helper flushed after it)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- sh.h.Shutdown(ctx) }()
	select {
	case err := <-done:
		t.Logf("Shutdown returned after %v: %v", time.Since(start).Round(time.Millisecond), err)
	case <-time.After(5 * time.Second):
		child.Process.Kill()
		child.Wait()
		select {
		case <-done:
			t.Errorf("Shutdown (ctx 1s) returned only after the peer process was killed, %v after it started", time.Since(start).Round(time.Millisecond))
		case <-time.After(5 * time.Second):
			t.Errorf("Shutdown did not return even after the peer died")
		}
	}
}

// TestShmIdlePeerHelper is the peer process of
// TestShmShutdownWithLiveShmPeer: a shared-memory client that idles.
func TestShmIdlePeerHelper(t *testing.T) {
	url := os.Getenv("SB_SHM_IDLE_PEER_URL")
	if url == "" {
		t.Skip("helper process")
	}
	nc, err := switchboard.Connect(context.Background(), url, &switchboard.Options{NoReconnect: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nc.SubscribeSync("idle.x"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("READY\n")
	time.Sleep(time.Minute)
}

// startReadyHelper runs the test binary's test named run as a helper
// process with env added, and waits for it to print READY. The process is
// killed at cleanup; the scanner reads the rest of its output.
func startReadyHelper(t *testing.T, run, env string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	child := exec.Command(os.Args[0], "-test.run=^"+run+"$")
	child.Env = append(os.Environ(), env)
	child.Stderr = os.Stderr
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
	})
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "READY" {
		t.Fatalf("helper %s: %q", run, lines.Text())
	}
	return child, lines
}

package hub

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// errPeerExited closes a connection whose connecting process is gone.
var errPeerExited = errors.New("the peer process exited")

// watchPeerProcess closes c as soon as the process that connected it
// exits, seen through a pidfd (SO_PEERPIDFD, Linux 6.5 and later) in the
// runtime's poller. Socket close covers a peer killed outright; the pidfd
// also covers one whose socket lives on in another process (a child that
// inherited it), whose rings would otherwise stay until that process
// exits too. Called once, at HELLO; on kernels without SO_PEERPIDFD it
// does nothing and socket close stays the only detector.
func (c *client) watchPeerProcess() {
	if c.rc == nil || c.pidfile != nil {
		return
	}
	pidfd := -1
	c.rc.Control(func(fd uintptr) {
		if p, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
			pidfd = p
		}
	})
	if pidfd < 0 {
		return
	}
	if err := unix.SetNonblock(pidfd, true); err != nil {
		unix.Close(pidfd)
		return
	}
	f := os.NewFile(uintptr(pidfd), "pidfd") // non-blocking: registered with the poller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		f.Close()
		return
	}
	c.pidfile = f // closeNow closes it, which ends the wait below
	c.wg.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.wg.Done()
		exited := false
		rc.Read(func(fd uintptr) bool {
			// A pidfd polls readable once its process has exited.
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, _ := unix.Poll(pfd, 0)
			exited = n > 0 && pfd[0].Revents&unix.POLLIN != 0
			return exited
		})
		if exited {
			c.log.Info("the peer process exited; closing its connection", "pid", c.who.PID)
			c.closeNow(errPeerExited)
		}
	}()
}

package auth

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// processName owns the pidfd PeerIdentity got from SO_PEERPIDFD and must
// close it, but returns early without closing it when the pid is 0. The
// kernel reports pid 0 in SO_PEERCRED when the peer is not visible in the
// hub's pid namespace (a hub in a container, clients on the host through a
// bind-mounted socket), while SO_PEERPIDFD still returns a pidfd: every
// such connection leaks one file descriptor, until the hub can accept no
// more.
func TestProcessNameClosesPidfdForPidZero(t *testing.T) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		t.Skipf("no pidfd: %v", err)
	}
	processName(0, fd)
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
		unix.Close(fd)
		t.Fatal("processName(0, pidfd) left the pidfd open: one fd leaked per connection whose peer pid is not visible")
	}
}

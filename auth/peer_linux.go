package auth

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PeerIdentity returns the identity of the process at the other end of a
// unix socket, as the kernel recorded it when that process called connect:
// uid, gid and pid (SO_PEERCRED) and the supplementary groups
// (SO_PEERGROUPS). Nothing the peer sends can change it.
//
// With names set, the uid and gids are also resolved to user and group
// names (cached for a minute), so that user: and group: principals match.
//
// The pid is used for logs only, never for a decision. Where the kernel
// has SO_PEERPIDFD, the process name is read through a pidfd that pins the
// process, so a pid reused by another process is not reported.
func PeerIdentity(c *net.UnixConn, names bool) (*Identity, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("auth: peer credentials: %w", err)
	}
	id := &Identity{Transport: "unix", Local: true}
	var opErr error
	pidfd := -1
	err = rc.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			opErr = fmt.Errorf("auth: SO_PEERCRED: %w", err)
			return
		}
		id.UID, id.GID, id.PID = cred.Uid, cred.Gid, cred.Pid
		groups, err := peerGroups(int(fd))
		if err != nil {
			opErr = fmt.Errorf("auth: SO_PEERGROUPS: %w", err)
			return
		}
		id.Groups = groups
		if p, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PEERPIDFD); err == nil {
			pidfd = p
		}
	})
	if err == nil {
		err = opErr
	}
	if err != nil {
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		return nil, err
	}
	id.Comm = processName(id.PID, pidfd)
	if names {
		// A name that cannot be looked up (the user database failed, not
		// "no such user") refuses the connection: a deny rule on that name
		// must not be skipped because a lookup failed.
		if id.UserName, err = lookupUser(id.UID); err != nil {
			return nil, err
		}
		seen := map[uint32]bool{}
		for _, g := range append([]uint32{id.GID}, id.Groups...) {
			if seen[g] {
				continue
			}
			seen[g] = true
			n, err := lookupGroup(g)
			if err != nil {
				return nil, err
			}
			if n != "" {
				id.GroupNames = append(id.GroupNames, n)
			}
		}
	}
	return id, nil
}

// peerGroups reads SO_PEERGROUPS: the supplementary groups the peer had
// when it connected. x/sys has no wrapper for this array-valued option.
func peerGroups(fd int) ([]uint32, error) {
	buf := make([]uint32, 32)
	for range 3 {
		size := uint32(len(buf) * 4)
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&size)), 0)
		switch errno {
		case 0:
			if size == 0 {
				return nil, nil
			}
			return append([]uint32(nil), buf[:size/4]...), nil // not the whole buffer: one per connection
		case unix.ERANGE:
			// The kernel said how much room it needs (at most NGROUPS_MAX = 65536).
			if size/4 > 65536 {
				return nil, fmt.Errorf("auth: peer reports %d groups", size/4)
			}
			buf = make([]uint32, size/4+1)
		case unix.ENOPROTOOPT:
			return nil, nil // kernel older than 4.13: primary gid only
		default:
			return nil, errno
		}
	}
	return nil, errors.New("auth: peer groups keep changing size")
}

// processName returns the peer's command name. With a pidfd it checks,
// after reading, that the process still exists: the pidfd refers to the
// process itself, so if it is alive the pid was not reused in between.
// It closes pidfd (when >= 0) in every case. A peer in another pid
// namespace has pid 0, yet may still come with a pidfd.
func processName(pid int32, pidfd int) string {
	if pidfd >= 0 {
		defer unix.Close(pidfd)
	}
	if pid <= 0 {
		return ""
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/comm")
	if pidfd >= 0 {
		if unix.PidfdSendSignal(pidfd, 0, nil, 0) != nil {
			return "" // gone: whatever we read may belong to a newer process
		}
	}
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// nameCache remembers uid and gid names for a minute: a hub accepting
// thousands of connections from the same uid reads /etc/passwd once.
type nameCache struct {
	mu sync.Mutex
	m  map[string]cachedName
}

type cachedName struct {
	name string
	at   time.Time
}

var names = nameCache{m: make(map[string]cachedName)}

const nameTTL = time.Minute

// get returns the cached name for key, or looks it up. A lookup error is
// returned and not cached; "no such name" is a name of "" and is cached.
func (nc *nameCache) get(key string, look func() (string, error)) (string, error) {
	nc.mu.Lock()
	e, ok := nc.m[key]
	nc.mu.Unlock()
	if ok && time.Since(e.at) < nameTTL {
		return e.name, nil
	}
	n, err := look()
	if err != nil {
		return "", err
	}
	nc.mu.Lock()
	if len(nc.m) > 4096 {
		clear(nc.m)
	}
	nc.m[key] = cachedName{n, time.Now()}
	nc.mu.Unlock()
	return n, nil
}

func lookupUser(uid uint32) (string, error) {
	id := strconv.FormatUint(uint64(uid), 10)
	return names.get("u"+id, func() (string, error) {
		u, err := user.LookupId(id)
		var unknown user.UnknownUserIdError
		switch {
		case errors.As(err, &unknown):
			return "", nil
		case err != nil:
			return "", fmt.Errorf("auth: look up uid %s: %w", id, err)
		}
		return u.Username, nil
	})
}

func lookupGroup(gid uint32) (string, error) {
	id := strconv.FormatUint(uint64(gid), 10)
	return names.get("g"+id, func() (string, error) {
		g, err := user.LookupGroupId(id)
		var unknown user.UnknownGroupIdError
		switch {
		case errors.As(err, &unknown):
			return "", nil
		case err != nil:
			return "", fmt.Errorf("auth: look up gid %s: %w", id, err)
		}
		return g.Name, nil
	})
}

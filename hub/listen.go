package hub

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// isTemporaryAcceptError reports accept errors that pass once resources
// are freed: out of file descriptors, buffers or memory.
func isTemporaryAcceptError(err error) bool {
	for _, e := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// ListenUnix listens on a unix socket at path with the given file mode
// (0600 when mode is 0). The parent directory is created 0700 if missing
// (0710 or 0701 when mode admits the group or others).
// A socket file left by a hub that no longer runs is replaced; if another
// process is listening on path, or path is not a socket, ListenUnix fails
// and touches nothing. The socket file is removed when the listener closes.
func ListenUnix(path string, mode os.FileMode) (net.Listener, error) {
	return ListenUnixGroup(path, mode, -1)
}

// ListenUnixGroup is ListenUnix with the socket file given group gid (-1:
// the hub's own), before its mode opens it to that group. A parent
// directory created here gets the group too, so that the group can reach
// the socket.
func ListenUnixGroup(path string, mode os.FileMode, gid int) (net.Listener, error) {
	if mode == 0 {
		mode = 0o600
	}
	if mode&^0o777 != 0 {
		return nil, fmt.Errorf("listen unix %s: mode %#o has bits outside 0777", path, mode)
	}
	// A directory created here is private, except that it lets in (search
	// only, no listing) whoever the socket's mode lets in.
	dirMode := os.FileMode(0o700)
	if mode&0o070 != 0 {
		dirMode |= 0o010
	}
	if mode&0o007 != 0 {
		dirMode |= 0o001
	}
	dir := filepath.Dir(path)
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	if errors.Is(statErr, fs.ErrNotExist) && gid >= 0 {
		if err := os.Chown(dir, -1, gid); err != nil {
			return nil, fmt.Errorf("listen unix %s: chown directory: %w", path, err)
		}
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// Create the socket with no access for anyone, then open it up to mode,
	// so no other process can connect in between. The umask is process-wide;
	// this is only done while a hub starts.
	old := syscall.Umask(0o777)
	l, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listen unix %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("listen unix %s: chown: %w", path, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen unix %s: chmod: %w", path, err)
	}
	return l, nil
}

// removeStaleSocket removes path if it is a socket nobody listens on.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listen unix %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("listen unix %s: exists and is not a socket; refusing to replace it", path)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("listen unix %s: another process is listening on it (is a hub already running?)", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("listen unix %s: probing existing socket: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("listen unix %s: removing stale socket: %w", path, err)
	}
	return nil
}

// ListenTCP listens on a TCP address such as "127.0.0.1:4222". An empty
// address means "127.0.0.1:4222"; port 0 picks a free port.
func ListenTCP(addr string) (net.Listener, error) {
	if addr == "" {
		addr = DefaultTCPAddr
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	return l, nil
}

// DefaultTCPAddr is the TCP address the hub listens on when asked for TCP
// without an address: loopback only, on the port NATS clients expect.
const DefaultTCPAddr = "127.0.0.1:4222"

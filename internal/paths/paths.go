// Package paths computes the locations Switchboard uses by default, so the
// hub and its clients agree on them without talking to each other.
package paths

import (
	"os"
	"path/filepath"
	"strconv"
)

// SocketName is the file name of the hub's unix socket.
const SocketName = "switchboard.sock"

// EnvURL names the environment variable clients read for the hub's URL.
const EnvURL = "SWITCHBOARD_URL"

// DefaultSocket returns the hub's default unix socket path:
// $XDG_RUNTIME_DIR/switchboard.sock when XDG_RUNTIME_DIR is set, otherwise
// $TMPDIR/switchboard-UID/switchboard.sock (the directory is created 0700 by
// the hub).
func DefaultSocket() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, SocketName)
	}
	return filepath.Join(os.TempDir(), "switchboard-"+strconv.Itoa(os.Getuid()), SocketName)
}

// DefaultURL returns $SWITCHBOARD_URL if set, otherwise unix:// plus
// DefaultSocket.
func DefaultURL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return "unix://" + DefaultSocket()
}

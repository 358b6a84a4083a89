package hub

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"switchboard/auth"
)

// Config configures a Hub. The zero value is valid: every field's comment
// states the default that New fills in.
type Config struct {
	// Name identifies the hub in INFO. Default: the host name.
	Name string
	// MaxPayload is the largest message (headers plus body) a client may
	// publish. Default 1 MiB; at most 64 MiB.
	MaxPayload int
	// MaxControlLine is the longest protocol line accepted. Default 4096.
	MaxControlLine int
	// MaxPending bounds the bytes queued for one connection before it is
	// disconnected as a slow consumer. Default 64 MiB.
	MaxPending int
	// WriteDeadline is how long a write to a connection may make no
	// progress before it is disconnected as a slow consumer. Default 10s.
	WriteDeadline time.Duration
	// PingInterval is how often the hub pings each client; MaxPingsOut
	// unanswered pings in a row close it as stale. Default 2m.
	PingInterval time.Duration
	// MaxPingsOut is how many unanswered pings close a connection as stale.
	// Default 2.
	MaxPingsOut int
	// MaxConnections limits concurrent connections; 0 means 65536.
	MaxConnections int
	// MaxSubscriptions limits subscriptions per connection; 0 means no limit.
	MaxSubscriptions int
	// Policy decides who may connect and what each connection may publish
	// and subscribe to, on every transport. Default: auth.DefaultPolicy():
	// the hub's own uid and root may do everything, other local uids
	// nothing, and network clients without credentials are refused.
	Policy *auth.Policy
	// AuthTimeout bounds how long a new connection may take to finish its
	// TLS handshake and send CONNECT; then it is closed. Default 2s.
	AuthTimeout time.Duration
	// NoSharedMemory turns the shared-memory broker off: $SB.SHM. requests
	// are refused and every message goes over the sockets.
	NoSharedMemory bool
	// DataDir is where the hub keeps durable state: queues under
	// DataDir/queues. Empty: durable queues are off and $SB.Q. requests
	// get an error.
	DataDir string
	// Logger receives the hub's logs, including the audit log of failed
	// authentications and denied operations. Default: discard.
	Logger *slog.Logger
}

const maxMaxPayload = 64 << 20

// withDefaults returns c with zero fields set to their defaults, or an error
// naming the first invalid field.
func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name, _ = os.Hostname()
		if c.Name == "" {
			c.Name = "switchboard"
		}
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = 1 << 20
	}
	if c.MaxControlLine == 0 {
		c.MaxControlLine = 4096
	}
	if c.MaxPending == 0 {
		c.MaxPending = 64 << 20
	}
	if c.WriteDeadline == 0 {
		c.WriteDeadline = 10 * time.Second
	}
	if c.PingInterval == 0 {
		c.PingInterval = 2 * time.Minute
	}
	if c.MaxPingsOut == 0 {
		c.MaxPingsOut = 2
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = 65536
	}
	if c.Policy == nil {
		c.Policy = auth.DefaultPolicy()
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = 2 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.MaxPayload < 0 || c.MaxPayload > maxMaxPayload:
		return c, fmt.Errorf("max_payload: %d out of range 1..%d", c.MaxPayload, maxMaxPayload)
	case c.MaxControlLine < 256 || c.MaxControlLine > 1<<20:
		return c, fmt.Errorf("max_control_line: %d out of range 256..1048576", c.MaxControlLine)
	case c.MaxPending < 0 || c.MaxPending < c.MaxPayload:
		return c, fmt.Errorf("max_pending: %d must be at least max_payload (%d)", c.MaxPending, c.MaxPayload)
	case c.WriteDeadline < 0:
		return c, fmt.Errorf("write_deadline: %v must be positive", c.WriteDeadline)
	case c.PingInterval < 0:
		return c, fmt.Errorf("ping_interval: %v must be positive", c.PingInterval)
	case c.MaxPingsOut < 0:
		return c, fmt.Errorf("max_pings_out: %d must be positive", c.MaxPingsOut)
	case c.MaxConnections < 0:
		return c, fmt.Errorf("max_connections: %d must be positive", c.MaxConnections)
	case c.AuthTimeout < 0:
		return c, fmt.Errorf("auth_timeout: %v must be positive", c.AuthTimeout)
	case c.MaxSubscriptions < 0:
		return c, fmt.Errorf("max_subscriptions: %d must not be negative", c.MaxSubscriptions)
	}
	return c, nil
}

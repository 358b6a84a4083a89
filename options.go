package switchboard

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults for the zero fields of Options.
const (
	DefaultDialTimeout         = 5 * time.Second
	DefaultReconnectWait       = 10 * time.Millisecond
	DefaultMaxReconnectWait    = 2 * time.Second
	DefaultReconnectBufferSize = 8 << 20
	DefaultWriteBufferLimit    = 4 << 20
	DefaultPingInterval        = 2 * time.Minute
	DefaultMaxPingsOut         = 2
	DefaultPendingMsgsLimit    = 65536
	DefaultPendingBytesLimit   = 64 << 20
)

// Options configures a Conn. The zero value (and a nil *Options) is ready
// to use: every zero field takes the default its comment states. Connect
// copies the struct; changing it afterwards has no effect.
type Options struct {
	// Name is sent to the hub in CONNECT and shows up in its monitoring.
	// Default: empty.
	Name string

	// DialTimeout bounds dialing plus the INFO/CONNECT/PING handshake of
	// each connection attempt (Connect's ctx may cut it shorter).
	// Default: 5s.
	DialTimeout time.Duration

	// NoReconnect disables reconnecting: when the connection is lost the
	// Conn closes. Default: false (reconnect).
	NoReconnect bool
	// MaxReconnects is how many consecutive failed reconnect attempts are
	// made before the Conn gives up and closes. Default: 0, which means
	// forever.
	MaxReconnects int
	// ReconnectWait is the delay before the first reconnect attempt; it
	// doubles after each failed attempt up to MaxReconnectWait. Each delay
	// is randomised to between half and all of its value. Default: 10ms.
	ReconnectWait time.Duration
	// MaxReconnectWait caps the reconnect delay. Default: 2s.
	MaxReconnectWait time.Duration
	// ReconnectBufferSize is how many bytes of publishes (encoded frames)
	// are buffered while disconnected and sent after reconnecting; beyond
	// it publishing calls return ErrReconnectBufferFull. Negative disables
	// buffering (every publish while disconnected fails). Default: 8 MiB.
	ReconnectBufferSize int

	// WriteBufferLimit bounds the bytes waiting to be written to a live
	// connection. A publishing call that finds the buffer above it blocks
	// until the writer has drained it (backpressure), or until the
	// connection is lost or closed. One message larger than the limit is
	// still accepted into an empty-enough buffer. Default: 4 MiB, which
	// batches bursts into large writes (BenchmarkPublish16B is no faster
	// with 32 MiB) while bounding memory and the queueing delay.
	WriteBufferLimit int

	// PingInterval is how often the client sends a keep-alive PING to
	// detect a dead connection. Default: 2m.
	PingInterval time.Duration
	// MaxPingsOut is how many PINGs may go unanswered before the
	// connection is considered stale, dropped and reconnected. Default: 2.
	MaxPingsOut int

	// PendingMsgsLimit and PendingBytesLimit bound, per subscription, the
	// messages received but not yet handed to its callback or NextMsg.
	// Beyond either, new messages are dropped (see Subscription.Dropped)
	// and ErrorHandler receives ErrSlowConsumer once per episode. Negative
	// means unlimited. Defaults: 65536 messages, 64 MiB. Change one
	// subscription's limits with Subscription.SetPendingLimits.
	PendingMsgsLimit  int
	PendingBytesLimit int

	// Token, User and Password are sent in CONNECT (auth_token, user,
	// pass) when non-empty; when TLS is used, only over TLS (a client that
	// requires TLS gives up before CONNECT if the hub does not offer it).
	// Default: empty (no credentials).
	Token    string
	User     string
	Password string

	// TLSConfig makes the connection use TLS, with this configuration
	// (TLSClientConfig builds one from PEM files). Connect clones it;
	// when its ServerName is empty the host of the URL is used to verify
	// the hub's certificate.
	//
	// When TLS is used: always with a tls:// URL or a non-nil TLSConfig;
	// with a nats://, tcp:// or host:port URL also when the hub's INFO
	// says tls_required, in which case a nil TLSConfig means the system's
	// root CAs and the URL's host (the certificate is still verified).
	// TLS starts after the hub's plaintext INFO, as the NATS protocol
	// does. If the client requires TLS and the hub does not offer it,
	// Connect fails with ErrTLS. TLS is not supported over unix sockets
	// (the hub identifies those clients by their kernel credentials
	// instead): a TLSConfig with a unix:// URL, or a unix-socket hub that
	// requires TLS, fails with ErrTLS. Reconnects redo the TLS handshake.
	//
	// Default: nil (plaintext unless the URL or the hub asks for TLS).
	TLSConfig *tls.Config

	// InboxPrefix starts the reply subjects of this Conn's requests
	// (InboxPrefix + ".<random id>.<n>") and of Conn.NewInbox. A policy can
	// then let each principal subscribe to its own prefix only, instead
	// of to every "_INBOX.>" reply. Default: "_INBOX".
	InboxPrefix string

	// NoSharedMemory keeps every message on the socket. Default: false: on
	// a unix socket to a hub that offers it, publishes and subscriptions
	// use shared-memory rings the hub hands out whenever publisher and
	// subscriber are both such connections and the policy allows (see
	// docs/shm.md); everything else still goes over the socket.
	NoSharedMemory bool
	// ShmDrop lets the publishers of this Conn's shared-memory rings
	// overwrite what a subscription has not read when it falls a whole
	// ring behind; the subscription loses the oldest messages and is told
	// how many (Dropped, ErrSlowConsumer). Default: false: publishers wait
	// for the subscription, like a socket that is full, for up to their
	// block timeout (5 s); one that stays stuck longer is then treated as
	// if it had asked to drop.
	ShmDrop bool

	// NoEcho asks the hub not to deliver this connection's own publishes
	// to its own subscriptions. Default: false (echo).
	NoEcho bool

	// ErrorHandler receives asynchronous errors: ErrSlowConsumer (with the
	// subscription), *ServerError from -ERR (with the subscription when
	// the hub names one of its subjects), ErrStaleConnection and failed
	// reconnect handshakes. Handlers run one at a time, in order, on a
	// goroutine owned by the Conn. Default: nil (errors are only logged).
	ErrorHandler func(*Conn, *Subscription, error)
	// DisconnectHandler is called after the connection is lost, with the
	// cause. Default: nil.
	DisconnectHandler func(*Conn, error)
	// ReconnectHandler is called after a reconnect, once subscriptions
	// were re-sent. Default: nil.
	ReconnectHandler func(*Conn)
	// ClosedHandler is called once when the Conn is closed, by Close,
	// Drain or after giving up reconnecting. Close returns after it ran
	// (unless Close is called from a handler or callback). Default: nil.
	ClosedHandler func(*Conn)

	// Logger receives connection events. Default: nil, which discards.
	Logger *slog.Logger
}

// withDefaults returns a copy of o (nil allowed) with zero fields set to
// their defaults, or an error for values that cannot be used.
func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.DialTimeout < 0 || r.ReconnectWait < 0 || r.MaxReconnectWait < 0 || r.PingInterval < 0 {
		return r, fmt.Errorf("options: negative duration: %w", ErrBadArgument)
	}
	if r.MaxReconnects < 0 || r.MaxPingsOut < 0 || r.WriteBufferLimit < 0 {
		return r, fmt.Errorf("options: negative count: %w", ErrBadArgument)
	}
	if r.DialTimeout == 0 {
		r.DialTimeout = DefaultDialTimeout
	}
	if r.ReconnectWait == 0 {
		r.ReconnectWait = DefaultReconnectWait
	}
	if r.MaxReconnectWait == 0 {
		r.MaxReconnectWait = DefaultMaxReconnectWait
	}
	if r.MaxReconnectWait < r.ReconnectWait {
		r.MaxReconnectWait = r.ReconnectWait
	}
	if r.ReconnectBufferSize == 0 {
		r.ReconnectBufferSize = DefaultReconnectBufferSize
	}
	if r.WriteBufferLimit == 0 {
		r.WriteBufferLimit = DefaultWriteBufferLimit
	}
	if r.PingInterval == 0 {
		r.PingInterval = DefaultPingInterval
	}
	if r.MaxPingsOut == 0 {
		r.MaxPingsOut = DefaultMaxPingsOut
	}
	if r.PendingMsgsLimit == 0 {
		r.PendingMsgsLimit = DefaultPendingMsgsLimit
	}
	if r.PendingBytesLimit == 0 {
		r.PendingBytesLimit = DefaultPendingBytesLimit
	}
	if r.InboxPrefix == "" {
		r.InboxPrefix = strings.TrimSuffix(InboxPrefix, ".")
	}
	if !validSubject(r.InboxPrefix, false) {
		return r, fmt.Errorf("options: InboxPrefix %q is not a valid subject without wildcards: %w", r.InboxPrefix, ErrBadArgument)
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r, nil
}

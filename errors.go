package switchboard

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Test for them with errors.Is: errors returned by this
// package wrap them (for example, a Request that times out returns an error
// that matches both ErrTimeout and context.DeadlineExceeded).
var (
	// ErrNoResponders is returned by Request when the hub reports that no
	// subscription exists for the request subject (a 503 status reply).
	ErrNoResponders = errors.New("switchboard: no responders")
	// ErrTimeout is returned when a context deadline expires while waiting
	// for a reply (Request), a message (NextMsg) or a PONG (Flush). The error
	// also matches context.DeadlineExceeded.
	ErrTimeout = errors.New("switchboard: timeout")
	// ErrSlowConsumer is reported to Options.ErrorHandler when a
	// subscription drops messages because its pending limits are exceeded,
	// or when the hub disconnects this client for reading too slowly.
	ErrSlowConsumer = errors.New("switchboard: slow consumer, messages dropped")
	// ErrClosed is returned by operations on a closed Conn.
	ErrClosed = errors.New("switchboard: connection closed")
	// ErrPermission matches a *ServerError for a permissions violation.
	ErrPermission = errors.New("switchboard: permissions violation")
	// ErrAuthorization matches a *ServerError for a failed authorization
	// (bad or missing credentials).
	ErrAuthorization = errors.New("switchboard: authorization violation")
	// ErrMaxPayload is returned when a message is larger than the hub's
	// max_payload. The client checks before sending.
	ErrMaxPayload = errors.New("switchboard: maximum payload exceeded")
	// ErrBadSubject is returned for an invalid subject: empty, containing
	// whitespace or an empty token, longer than 4096 bytes, or (when
	// publishing) containing a wildcard token.
	ErrBadSubject = errors.New("switchboard: invalid subject")
	// ErrBadQueue is returned for an invalid queue group name (empty or
	// containing whitespace).
	ErrBadQueue = errors.New("switchboard: invalid queue name")
	// ErrBadURL is returned (wrapped, with the reason) for a URL that
	// Connect or ParseURL cannot use.
	ErrBadURL = errors.New("switchboard: invalid URL")
	// ErrReconnectBufferFull is returned by publishing calls while the Conn
	// is disconnected and Options.ReconnectBufferSize bytes are already
	// buffered.
	ErrReconnectBufferFull = errors.New("switchboard: reconnect buffer full")
	// ErrDraining is returned by Subscribe and friends while the Conn is
	// draining, and by subscription methods while that subscription drains.
	ErrDraining = errors.New("switchboard: draining")
	// ErrBadSubscription is returned by operations on a subscription that
	// was unsubscribed, drained or auto-unsubscribed, and by NextMsg on a
	// subscription that is not a SubscribeSync subscription.
	ErrBadSubscription = errors.New("switchboard: invalid subscription")
	// ErrNoReply is returned by Msg.Respond when the message has no reply
	// subject.
	ErrNoReply = errors.New("switchboard: message has no reply subject")
	// ErrNotBound is returned by Msg.Respond for a message that was not
	// received from a Conn.
	ErrNotBound = errors.New("switchboard: message not bound to a connection")
	// ErrStaleConnection is reported to Options.ErrorHandler when the hub
	// stopped answering PINGs (Options.MaxPingsOut) and the client dropped
	// the connection to reconnect.
	ErrStaleConnection = errors.New("switchboard: stale connection")
	// ErrBadArgument is returned (wrapped) for an invalid argument such as
	// a nil callback or a non-positive AutoUnsubscribe count.
	ErrBadArgument = errors.New("switchboard: invalid argument")
	// ErrTLS is returned (wrapped, with the reason) when a connection
	// cannot be secured as asked: the client requires TLS and the hub does
	// not offer it, the hub requires TLS over a unix socket, the TLS
	// handshake fails (the text includes the x509 error for a certificate
	// that does not verify) or the hub rejects the client's certificate.
	// TLSClientConfig's errors wrap it too.
	ErrTLS = errors.New("switchboard: TLS error")
)

// ServerError is an -ERR the hub sent. Msg is the hub's text without the
// quotes, for example "Permissions Violation for Publish to \"foo\"".
//
// errors.Is maps well-known texts to the sentinels: "Permissions
// Violation" to ErrPermission, "Authorization Violation" and
// "Authentication" to ErrAuthorization, "Maximum Payload" to ErrMaxPayload,
// "Slow Consumer" to ErrSlowConsumer, "Invalid Subject" and "Invalid
// Publish Subject" to ErrBadSubject and "Stale Connection" to
// ErrStaleConnection (all case-insensitive).
type ServerError struct {
	Msg string
}

func (e *ServerError) Error() string { return "switchboard: server error: " + e.Msg }

// Is reports whether the server's message is the one target stands for.
func (e *ServerError) Is(target error) bool {
	var want []string
	switch target {
	case ErrPermission:
		want = []string{"permissions violation"}
	case ErrAuthorization:
		want = []string{"authorization violation", "authentication", "user authentication"}
	case ErrMaxPayload:
		want = []string{"maximum payload"}
	case ErrSlowConsumer:
		want = []string{"slow consumer"}
	case ErrBadSubject:
		want = []string{"invalid subject", "invalid publish subject"}
	case ErrStaleConnection:
		want = []string{"stale connection"}
	default:
		return false
	}
	m := strings.ToLower(e.Msg)
	for _, w := range want {
		if strings.Contains(m, w) {
			return true
		}
	}
	return false
}

// ctxError turns a context's error into the error a blocking call returns:
// a deadline becomes ErrTimeout (still matching context.DeadlineExceeded);
// a cancellation is returned wrapped with the operation.
func ctxError(op string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w: %w", op, ErrTimeout, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

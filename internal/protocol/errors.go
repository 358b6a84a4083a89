package protocol

import "fmt"

// Error is a protocol violation. Msg is the stable text sent to the peer in
// -ERR (for example "Maximum Payload Violation"); Detail is for logs.
//
// Every error the package returns for bad input is an *Error whose Msg is
// the Msg of one of the sentinels below, so callers can test it with
// errors.Is (errors.Is(err, ErrMaxPayload)) and send pe.Msg to the peer
// after errors.As.
type Error struct {
	Msg    string
	Detail string
}

// Error returns "protocol: <Msg>: <Detail>", leaving out an empty Detail.
func (e *Error) Error() string {
	if e.Detail == "" {
		return "protocol: " + e.Msg
	}
	return "protocol: " + e.Msg + ": " + e.Detail
}

// Is reports whether target is an *Error without Detail (a sentinel such as
// ErrMaxPayload) that has the same Msg as e. It makes errors.Is match any
// detailed error against its sentinel.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Detail == "" && t.Msg == e.Msg
}

// Sentinels for the errors the package returns, one per stable Msg. Compare
// with errors.Is; the returned errors carry a Detail and are not these
// pointers.
var (
	// ErrUnknownOp: the operation name is not one the parser's side
	// accepts (nats-server sends the same text).
	ErrUnknownOp = &Error{Msg: "Unknown Protocol Operation"}
	// ErrMaxControlLine: a control line (CRLF included) is longer than
	// Limits.MaxControlLine.
	ErrMaxControlLine = &Error{Msg: "Maximum Control Line Exceeded"}
	// ErrMaxPayload: a PUB/HPUB/MSG/HMSG announces more than
	// Limits.MaxPayload bytes.
	ErrMaxPayload = &Error{Msg: "Maximum Payload Violation"}
	// ErrInvalidSize: a size field is not a decimal number of at most 18
	// digits, or a header size exceeds the total size.
	ErrInvalidSize = &Error{Msg: "Invalid Payload Size"}
	// ErrInvalidArgs: wrong number of arguments for the operation, an
	// empty CONNECT/INFO body, or a malformed UNSUB max.
	ErrInvalidArgs = &Error{Msg: "Invalid Arguments"}
	// ErrMissingCRLF: the bytes after a payload are not "\r\n".
	ErrMissingCRLF = &Error{Msg: "Missing CRLF After Payload"}
	// ErrInvalidHeader: ParseHeader rejected a header block.
	ErrInvalidHeader = &Error{Msg: "Invalid Header"}
	// ErrInvalidJSON: DecodeInfo or DecodeConnect could not decode a body.
	ErrInvalidJSON = &Error{Msg: "Invalid JSON"}
)

// snippetLen bounds how much peer input an error Detail quotes.
const snippetLen = 40

// newError returns an *Error with sentinel's Msg and a formatted Detail.
// It allocates, which is fine: it runs once per connection at most.
func newError(sentinel *Error, format string, args ...any) *Error {
	return &Error{Msg: sentinel.Msg, Detail: fmt.Sprintf(format, args...)}
}

// snippet returns a bounded, quoted excerpt of b for an error Detail.
func snippet[T string | []byte](b T) string {
	if len(b) > snippetLen {
		return fmt.Sprintf("%q...", b[:snippetLen])
	}
	return fmt.Sprintf("%q", b)
}

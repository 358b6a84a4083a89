// Package protocol implements the NATS client protocol as a codec over
// bytes: a resumable parser that accepts frames split at any byte, and
// append-style encoders. It knows nothing about sockets or goroutines.
//
// # Parsing
//
// A Parser reads one direction of one connection. ServerSide parsers accept
// what clients send (CONNECT, PUB, HPUB, SUB, UNSUB, PING, PONG);
// ClientSide parsers accept what servers send (INFO, MSG, HMSG, PING,
// PONG, +OK, -ERR). Operation names are case-insensitive, arguments are
// separated by runs of spaces or tabs, and control lines end with CRLF (a
// bare LF is tolerated); a payload must be followed by exactly CRLF.
//
// Feed bytes to Parse as they arrive; it calls back once per complete
// frame. Frames that lie within one Parse call are returned without
// copying: the Frame's slices alias the caller's buffer. Only a frame that
// straddles calls is copied into the parser. In steady state parsing does
// not allocate.
//
// # Concurrency
//
// A Parser is used by one goroutine, the connection's reader; it has no
// locks. The Frame passed to the callback, and every slice in it, is valid
// only until the callback returns: copy what must outlive it. The encoders
// and ParseHeader are pure functions, safe for concurrent use.
//
// # Memory bounds
//
// While a control line is incomplete the parser holds fewer than
// MaxControlLine bytes: a peer that sends no line end gets
// ErrMaxControlLine after MaxControlLine bytes, whatever it sends after.
// A frame's payload size is checked against MaxPayload before any of it is
// buffered, and the buffer for a straddling frame grows only as its bytes
// arrive, so Buffered never exceeds MaxControlLine + MaxPayload + 2. The
// buffer is kept between frames while a stream of large frames flows;
// Shrink, called by the owner when input pauses, releases one larger than
// 4 KiB, so an idle connection pins at most 4 KiB.
//
// # Errors
//
// Protocol violations are *Error values. Their Msg is a stable text to
// send to the peer in -ERR and matches one of the sentinels (ErrUnknownOp,
// ErrMaxControlLine, ErrMaxPayload, ErrInvalidSize, ErrInvalidArgs,
// ErrMissingCRLF, ErrInvalidHeader, ErrInvalidJSON) under errors.Is; their
// Detail quotes a bounded snippet of the input for logs. After an error a
// Parser keeps returning it: close the connection.
package protocol

// Package hub is the Switchboard server: it accepts connections on any
// net.Listener, speaks the NATS client protocol on each, and routes messages
// between them with subject wildcards, queue groups and request/reply.
//
// # Lifecycle
//
// New validates a Config and returns a Hub; Serve accepts on the listeners it
// is given until Shutdown or Close; Shutdown stops accepting, flushes what
// each connection has pending and waits for every goroutine the hub started.
// Serve returns ErrServerClosed after Shutdown or Close.
//
// # Concurrency
//
// Every connection has one reader goroutine, which parses what the peer
// sends and routes each message by appending it to the outbound buffer of
// every matching subscriber (under that subscriber's mutex). At the end of
// each read the reader flushes the connections it touched with one
// non-blocking write each; whatever the socket does not take at once is
// written by a writer goroutine that exists only while data is pending. So
// a publisher never waits for a subscriber's socket, and an idle connection
// costs one goroutine and a small read buffer.
//
// Ordering: messages from one connection reach each subscription in the
// order they were published. Messages from different publishers are not
// ordered with respect to each other.
//
// Slow consumers: a connection whose pending outbound bytes exceed
// Config.MaxPending (deliveries and the hub's own PONG, +OK and -ERR
// frames alike), or whose socket accepts nothing for Config.WriteDeadline,
// gets -ERR 'Slow Consumer' (when it can still be written) and is closed;
// publishers and other subscribers are not delayed. A connection holds at
// most about 2×MaxPending of outbound data (the buffer being written and
// the one filling), a read buffer of 512 B to 64 KiB that shrinks when
// the peer goes quiet, and a parser buffer of at most MaxPayload while a
// large frame is in flight.
//
// Lock order: client.mu is a leaf lock; the hub's mutex may be held while
// taking a client's mutex, never the reverse.
package hub

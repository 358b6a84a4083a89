// Package switchboard is the Go client of the Switchboard hub. It speaks
// the NATS client protocol, so it also works against nats-server.
//
//	nc, err := switchboard.Connect(ctx, "", nil) // $SWITCHBOARD_URL or the default unix socket
//	sub, err := nc.Subscribe("greet.*", func(m *switchboard.Msg) { m.Respond([]byte("hi")) })
//	reply, err := nc.Request(ctx, "greet.joe", nil)
//	nc.Drain(ctx)
//
// URLs are unix:///abs/path, tcp://host:port, nats://host:port,
// tls://host:port or plain host:port; see ParseURL.
//
// # Security
//
// Over TCP the client logs in with Options.Token or User and Password, and
// uses TLS with a tls:// URL, with Options.TLSConfig (TLSClientConfig
// builds one from PEM files, with a client certificate for mutual TLS), or
// when the hub requires it; the hub's certificate is verified against the
// system's root CAs, or the CAs of the TLSConfig. Over
// a unix socket the hub knows the client's uid from the kernel, and TLS is
// not used. See Options.TLSConfig.
//
// # Concurrency contract
//
// All methods of Conn, Subscription and Msg (Respond) are safe for
// concurrent use. Options handlers and message callbacks may call any
// method, including Close and Drain.
//
// Ordering: messages published by one goroutine through one Conn are sent
// in call order (Publish, PublishMsg, Request and Respond share one
// outbound buffer), and the hub delivers messages from one publisher on one
// subject to each subscription in that order. The callbacks of one
// subscription run one at a time, in the order the messages arrived;
// callbacks of different subscriptions run concurrently, each on its own
// goroutine.
//
// Slow consumers: every callback or SubscribeSync subscription has a
// pending queue bounded by Options.PendingMsgsLimit and PendingBytesLimit
// (Subscription.SetPendingLimits). A message that would exceed them is
// dropped, counted in Subscription.Dropped, and Options.ErrorHandler
// receives ErrSlowConsumer once per episode (until a message is accepted
// again). A ChanSubscribe channel is written without blocking; when it is
// full the same happens. The reader goroutine never blocks on user code, so
// one slow subscription cannot stall the others. If the hub disconnects the
// client for being slow, ErrorHandler receives a *ServerError matching
// ErrSlowConsumer and the Conn reconnects.
//
// Publishing: Publish copies the frame into an outbound buffer under a
// mutex and wakes a flusher goroutine, which writes everything buffered in
// one write (the buffers are swapped, so publishers do not wait for the
// write). When more than Options.WriteBufferLimit bytes are waiting,
// Publish blocks until the writer catches up (or the connection is lost or
// closed); Publish has no ctx. Request, Msg.Respond and Flush write inline
// from the calling goroutine when no write is in progress, which saves a
// goroutine hand-off on the request/reply latency path.
//
// Reconnecting: when the connection is lost (not by Close) the Conn
// reconnects with exponential backoff and jitter (Options.ReconnectWait,
// MaxReconnectWait, MaxReconnects, NoReconnect). While disconnected,
// publishes (and requests) are buffered, up to Options.ReconnectBufferSize
// bytes, then fail with ErrReconnectBufferFull; they are sent after the
// re-sent subscriptions. Frames that were buffered but not yet written when
// the loss happened are dropped: delivery is at most once. Requests keep
// waiting for their ctx; Flush waits for the reconnect. DisconnectHandler
// and ReconnectHandler report the transitions.
//
// Goroutines: a Conn owns a reader goroutine (reads, dispatches and
// reconnects), a flusher goroutine (writes and keep-alive PINGs), an event
// goroutine (runs ErrorHandler, DisconnectHandler, ReconnectHandler and
// ClosedHandler, one at a time, in order) and one goroutine per callback
// subscription. Channel and SubscribeSync subscriptions and Request start
// no goroutine. Close and Drain return only after all of them have exited;
// the only exception is the goroutine of a callback or handler that itself
// calls Close or Drain, which exits as soon as it returns.
//
// Errors are sentinels (ErrNoResponders, ErrTimeout, ErrClosed, ...) that
// callers test with errors.Is, plus *ServerError for -ERR messages from the
// hub.
package switchboard

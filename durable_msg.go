package switchboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DurableOpts are options of a durable publish.
type DurableOpts struct {
	// MsgID deduplicates: a second message with the same MsgID within the
	// queue's dedup window is not stored; its PubAck says Duplicate.
	MsgID string
	// Delay holds the message back from consumers for this long;
	// NotBefore, if later, until then.
	Delay     time.Duration
	NotBefore time.Time
	// Header fields to send with the message.
	Header Header
}

func (o *DurableOpts) header() Header {
	if o == nil {
		return nil
	}
	h := Header{}
	for k, v := range o.Header {
		h[k] = v
	}
	if o.MsgID != "" {
		h.Set("Msg-Id", o.MsgID)
	}
	if o.Delay > 0 {
		h.Set("Sb-Delay", o.Delay.String())
	}
	if !o.NotBefore.IsZero() {
		h.Set("Sb-Not-Before", o.NotBefore.UTC().Format(time.RFC3339Nano))
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

// PublishDurable publishes data on subject, which a durable queue binds,
// and waits for the hub's acknowledgement: once it returns without error
// the message is stored (fsynced, with the queue's default sync mode).
// Without a queue on subject the request ends with ErrNoResponders or,
// if something else answers, an error decoding its answer.
func (c *Conn) PublishDurable(ctx context.Context, subject string, data []byte, opts *DurableOpts) (*PubAck, error) {
	m, err := c.RequestMsg(ctx, &Msg{Subject: subject, Header: opts.header(), Data: data})
	if err != nil {
		return nil, err
	}
	a, err := decodePubAck(m.Data)
	if err != nil {
		return nil, err
	}
	if a.Queue == "" {
		return nil, fmt.Errorf("switchboard: publish %q: the answer %q is not a queue's acknowledgement", subject, truncate(m.Data, 80))
	}
	return a, nil
}

// decodePubAck reads a publish acknowledgement: the hub's exact form
// ({"queue":"q","seq":1,"duplicate":false}) by hand, anything else (an
// error, another spelling) with encoding/json.
func decodePubAck(b []byte) (*PubAck, error) {
	const q, s, d = `{"queue":"`, `","seq":`, `,"duplicate":`
	if rest, ok := bytes.CutPrefix(b, []byte(q)); ok {
		if i := bytes.IndexByte(rest, '"'); i > 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			name := rest[:i]
			if rest, ok := bytes.CutPrefix(rest[i:], []byte(s)); ok {
				if j := bytes.IndexByte(rest, ','); j > 0 {
					seq, err := strconv.ParseUint(string(rest[:j]), 10, 64)
					if rest, ok := bytes.CutPrefix(rest[j:], []byte(d)); ok && err == nil {
						switch string(rest) {
						case "false}":
							return &PubAck{Queue: string(name), Seq: seq}, nil
						case "true}":
							return &PubAck{Queue: string(name), Seq: seq, Duplicate: true}, nil
						}
					}
				}
			}
		}
	}
	var a PubAck
	if err := decodeQueueReply(b, &a); err != nil {
		return nil, err
	}
	return &a, nil
}

// AckFuture is the pending acknowledgement of PublishDurableAsync.
type AckFuture struct {
	c       *Conn
	r       *respMux
	tok     uint64
	ch      chan *Msg
	subject string
}

// PublishDurableAsync publishes like PublishDurable without waiting: the
// acknowledgement comes through the returned future. Keeping many in
// flight is how a publisher gets group commit's throughput.
func (c *Conn) PublishDurableAsync(subject string, data []byte, opts *DurableOpts) (*AckFuture, error) {
	r, err := c.respMux()
	if err != nil {
		return nil, err
	}
	tok, ch := r.register()
	var rb [64]byte
	reply := string(appendToken(append(rb[:0], r.prefix...), tok))
	// Not inline: a publisher keeping a window in flight is served best by
	// the connection's flusher, which writes many messages per syscall.
	if err := c.publish(nil, subject, reply, opts.header(), data, false); err != nil {
		r.cancel(tok, ch)
		return nil, err
	}
	return &AckFuture{c: c, r: r, tok: tok, ch: ch, subject: subject}, nil
}

// Wait returns the acknowledgement, waiting for it until ctx ends.
func (f *AckFuture) Wait(ctx context.Context) (*PubAck, error) {
	select {
	case m := <-f.ch:
		a, err := decodePubAck(m.Data)
		if err != nil {
			return nil, err
		}
		if a.Queue == "" {
			return nil, fmt.Errorf("switchboard: publish %q: the answer %q is not a queue's acknowledgement", f.subject, truncate(m.Data, 80))
		}
		return a, nil
	case <-ctx.Done():
		f.r.cancel(f.tok, f.ch)
		return nil, ctxError("switchboard: publish "+f.subject, ctx.Err())
	case <-f.c.closedCh:
		f.r.cancel(f.tok, f.ch)
		return nil, ErrClosed
	}
}

// QueueMsg is a message delivered by a durable queue. Answer it with Ack,
// Nak, Term or InProgress; unanswered, it is delivered again after the
// queue's ack wait.
type QueueMsg struct {
	*Msg
	Queue     string    // the queue it comes from
	Seq       uint64    // its sequence in the queue
	Delivered int       // 1 for the first delivery, 2 for the first redelivery...
	Subject   string    // the subject it was published to (Msg.Subject is where it was delivered)
	Published time.Time // when the hub stored it
}

// AsQueueMsg reads the queue fields of a message a push consumer received
// with an ordinary subscription.
func AsQueueMsg(m *Msg) (*QueueMsg, error) {
	if !strings.HasPrefix(m.Reply, "$SB.Q.ACK.") || m.Header == nil {
		return nil, fmt.Errorf("%w: not a delivery of a durable queue", ErrBadArgument)
	}
	q := &QueueMsg{Msg: m, Queue: m.Header.Get("Sb-Queue"), Subject: m.Header.Get("Sb-Subject")}
	q.Seq, _ = strconv.ParseUint(m.Header.Get("Sb-Seq"), 10, 64)
	q.Delivered, _ = strconv.Atoi(m.Header.Get("Sb-Delivered"))
	q.Published, _ = time.Parse(time.RFC3339Nano, m.Header.Get("Sb-Published"))
	return q, nil
}

// Redelivered reports whether the message was delivered before.
func (m *QueueMsg) Redelivered() bool { return m.Delivered > 1 }

// answer sends body to the ack subject and waits for the hub's answer.
func (m *QueueMsg) answer(ctx context.Context, body string) error {
	c := m.Msg.conn()
	if c == nil {
		return ErrNotBound
	}
	r, err := c.Request(ctx, m.Reply, []byte(body))
	if err != nil {
		return err
	}
	return decodeQueueReply(r.Data, nil)
}

// Ack says the message is done; it returns once that is on disk. It
// fails with ErrStaleDelivery if the delivery is no longer current (the
// ack wait ran out and the message went to someone else).
func (m *QueueMsg) Ack(ctx context.Context) error { return m.answer(ctx, "+ACK") }

// Nak asks for the message again, after delay (0: at once).
func (m *QueueMsg) Nak(ctx context.Context, delay time.Duration) error {
	if delay <= 0 {
		return m.answer(ctx, "-NAK")
	}
	b, _ := json.Marshal(map[string]string{"delay": delay.String()})
	return m.answer(ctx, "-NAK "+string(b))
}

// Term says never to deliver the message again; it goes to the queue's
// dead-letter queue if it has one.
func (m *QueueMsg) Term(ctx context.Context) error { return m.answer(ctx, "+TERM") }

// InProgress restarts the ack wait: the consumer is still working on it.
func (m *QueueMsg) InProgress(ctx context.Context) error { return m.answer(ctx, "+WPI") }

// conn returns the Conn m was received on, or nil.
func (m *Msg) conn() *Conn {
	if m.Sub == nil {
		return nil
	}
	return m.Sub.conn
}

// FetchOpts are options of Fetch.
type FetchOpts struct {
	// Expires is how long the hub waits to fill the batch; default: until
	// ctx's deadline less 10%, or 5 s without one.
	Expires time.Duration
	// NoWait returns at once with what is available (maybe nothing).
	NoWait bool
}

// Fetch asks consumer of queue for up to batch messages and returns them
// once the batch is full or the wait expires (then with fewer, maybe
// none). Use consumer "default" for the pull consumer every queue has.
func (c *Conn) Fetch(ctx context.Context, queue, consumer string, batch int, opts *FetchOpts) ([]*QueueMsg, error) {
	if batch < 1 {
		return nil, fmt.Errorf("%w: batch %d", ErrBadArgument, batch)
	}
	var o FetchOpts
	if opts != nil {
		o = *opts
	}
	if o.Expires <= 0 {
		o.Expires = 5 * time.Second
		if dl, ok := ctx.Deadline(); ok {
			o.Expires = time.Until(dl) * 9 / 10
		}
		if o.Expires <= 0 {
			return nil, ctxError("switchboard: fetch", context.DeadlineExceeded)
		}
	}
	inbox := c.NewInbox()
	sub, err := c.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(map[string]any{"batch": batch, "expires": o.Expires.String(), "no_wait": o.NoWait})
	if err := c.PublishRequest("$SB.Q.FETCH."+queue+"."+consumer, inbox, req); err != nil {
		return nil, err
	}
	// The hub ends a short batch with a status message; the extra second
	// covers the trip back.
	wctx, cancel := context.WithTimeout(ctx, o.Expires+time.Second)
	defer cancel()
	var out []*QueueMsg
	for len(out) < batch {
		m, err := sub.NextMsg(wctx)
		if err != nil {
			if len(out) > 0 && ctx.Err() == nil {
				return out, nil
			}
			return out, err
		}
		if m.status != 0 {
			switch desc := m.Header.Get(DescriptionHeader); {
			case m.status == 404 && desc == "No Messages", m.status == 408:
				return out, nil
			case m.status == 404:
				return out, &QueueError{Code: "not_found", Message: "queue " + queue + ": " + desc, Queue: queue}
			default:
				return out, &QueueError{Code: statusCode(m.status, desc), Message: desc, Queue: queue}
			}
		}
		qm, err := AsQueueMsg(m)
		if err != nil {
			return out, err
		}
		out = append(out, qm)
	}
	return out, nil
}

func statusCode(status int, desc string) string {
	switch {
	case strings.Contains(desc, "no such consumer"):
		return "no_consumer"
	case strings.Contains(desc, "push consumer"):
		return "push_consumer"
	case status == 400:
		return "bad_request"
	}
	return strconv.Itoa(status)
}

package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"switchboard/internal/protocol"
	"switchboard/queue"
)

// ErrStorage wraps a failure of New to open the durable state under
// Config.DataDir (an unreadable directory, or another hub holding it).
var ErrStorage = errors.New("hub: durable storage")

// queuePrefix starts the subjects of the durable queue API (docs/queues.md).
const queuePrefix = "$SB.Q."

// openQueues opens the queue manager under the data directory.
func (h *Hub) openQueues() error {
	m, err := queue.Open(queue.Options{
		Dir:       filepath.Join(h.cfg.DataDir, "queues"),
		NewSender: func() queue.Sender { return &queueSender{c: h.sysClient()} },
		Logger:    h.log,
	})
	if err != nil {
		// A queue that cannot be opened would silently stop storing what
		// is published on its subjects: refuse to start instead. The
		// files are left as they are.
		if m != nil {
			m.Close()
		}
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	h.queues = m
	return nil
}

// sysClient returns a client that publishes on the hub's own behalf: no
// connection, every permission, headers on. Each goroutine that sends
// needs its own (its deliveries are flushed by flushTouched).
func (h *Hub) sysClient() *client {
	c := &client{h: h, log: h.log, echo: true, pcd: make(map[*client]struct{})}
	c.opts.Headers = true
	return c
}

// sysPool holds sysClients for the reader goroutines' replies.
var sysPool sync.Pool

// sysReply routes body (with an optional header block) to subj from the
// hub itself, and flushes it.
func (h *Hub) sysReply(subj string, hdr, body []byte) {
	c, _ := sysPool.Get().(*client)
	if c == nil || c.h != h {
		c = h.sysClient()
	}
	payload := body
	if len(hdr) > 0 {
		payload = append(append(make([]byte, 0, len(hdr)+len(body)), hdr...), body...)
	}
	c.route([]byte(subj), nil, len(hdr), payload)
	c.flushTouched()
	sysPool.Put(c)
}

// queueSender is a queue goroutine's Sender.
type queueSender struct {
	c   *client
	buf []byte
}

func (s *queueSender) Deliver(to string, d *queue.Delivery) {
	b := s.buf[:0]
	b = append(b, "NATS/1.0\r\n"...)
	b = appendStoredFields(b, d.Header)
	b = appendField(b, "Sb-Queue", d.Queue)
	b = appendField(b, "Sb-Seq", strconv.FormatUint(d.Seq, 10))
	b = appendField(b, "Sb-Subject", d.Subject)
	b = appendField(b, "Sb-Delivered", strconv.FormatUint(uint64(d.Count), 10))
	b = appendField(b, "Sb-Published", d.At.UTC().Format(time.RFC3339Nano))
	b = append(b, "\r\n"...)
	hl := len(b)
	b = append(b, d.Data...)
	reply := ackSubject(d)
	s.c.route([]byte(to), []byte(reply), hl, b)
	s.buf = b
}

// appendStoredFields appends the fields of the header block the message
// was stored with (its publisher's, less their Sb- fields, plus the
// Sb-Dead- fields of a dead letter).
func appendStoredFields(b, hdr []byte) []byte {
	return appendFields(b, hdr, false)
}

// appendFields appends the field lines of a header block, without its
// status line and final blank line, and without Sb- fields if dropSb.
func appendFields(b, hdr []byte, dropSb bool) []byte {
	i := bytes.Index(hdr, []byte("\r\n"))
	if i < 0 {
		return b
	}
	for rest := hdr[i+2:]; len(rest) > 0; {
		line, tail, ok := bytes.Cut(rest, []byte("\r\n"))
		if !ok || len(line) == 0 {
			break
		}
		rest = tail
		if dropSb && len(line) >= 3 && (line[0]|0x20) == 's' && (line[1]|0x20) == 'b' && line[2] == '-' {
			continue
		}
		b = append(b, line...)
		b = append(b, "\r\n"...)
	}
	return b
}

// withoutSbFields returns a publisher's header block without its Sb-
// fields, which are the hub's: a publisher must not forge a delivery's
// queue, sequence or count, nor a dead letter's reason. nil if no field
// is left.
func withoutSbFields(hdr []byte) []byte {
	fields := appendFields(nil, hdr, true)
	if len(fields) == 0 {
		return nil
	}
	out := make([]byte, 0, len("NATS/1.0\r\n")+len(fields)+2)
	out = append(out, "NATS/1.0\r\n"...)
	out = append(out, fields...)
	return append(out, "\r\n"...)
}

func appendField(b []byte, k, v string) []byte {
	b = append(b, k...)
	b = append(b, ": "...)
	b = append(b, v...)
	return append(b, "\r\n"...)
}

// ackSubject is where the consumer answers delivery d.
func ackSubject(d *queue.Delivery) string {
	return queuePrefix + "ACK." + d.Queue + "." + d.Consumer + "." + strconv.FormatUint(d.Seq, 10) + "." + strconv.FormatUint(d.ID, 10)
}

func (s *queueSender) Reply(to string, v any) {
	var body []byte
	if a, ok := v.(queue.PubAck); ok {
		body = pubAckJSON(s.buf[:0], a)
		s.buf = body
	} else {
		body = mustJSON(v)
	}
	s.c.route([]byte(to), nil, 0, body)
}

// pubAckJSON appends a's JSON to dst, as json.Marshal writes it: the
// publish path's reply, once per message, written by hand (queue names
// need no escaping).
func pubAckJSON(dst []byte, a queue.PubAck) []byte {
	dst = append(dst, `{"queue":"`...)
	dst = append(dst, a.Queue...)
	dst = append(dst, `","seq":`...)
	dst = strconv.AppendUint(dst, a.Seq, 10)
	dst = append(dst, `,"duplicate":`...)
	dst = strconv.AppendBool(dst, a.Duplicate)
	return append(dst, '}')
}

func (s *queueSender) Status(to string, code int, text string) {
	hdr := statusBlock(code, text)
	s.c.route([]byte(to), nil, len(hdr), hdr)
}

// statusBlock is a header-only status message's header block, as JetStream
// ends a pull: "NATS/1.0 408 Request Timeout".
func statusBlock(code int, text string) []byte {
	return []byte("NATS/1.0 " + strconv.Itoa(code) + " " + text + "\r\n\r\n")
}

func (s *queueSender) Flush() { s.c.flushTouched() }

// queueError is the JSON of a failed $SB.Q. request.
type queueError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	Queue string `json:"queue,omitempty"`
}

// errorCode is the stable code of a queue error, for clients to act on.
func errorCode(err error) string {
	for _, e := range []struct {
		err  error
		code string
	}{
		{queue.ErrNotFound, "not_found"}, {queue.ErrExists, "exists"}, {queue.ErrBadConfig, "bad_config"},
		{queue.ErrSubjectOverlap, "overlap"}, {queue.ErrTooLarge, "too_large"}, {queue.ErrFull, "full"},
		{queue.ErrFailed, "failed"}, {queue.ErrClosed, "closed"}, {queue.ErrStaleDelivery, "stale"},
		{queue.ErrNoConsumer, "no_consumer"}, {queue.ErrPushConsumer, "push_consumer"},
		{queue.ErrImmutableConfig, "immutable"}, {queue.ErrBadRequest, "bad_request"},
		{errQueuePermission, "permission"}, {errQueuesOff, "off"},
	} {
		if errors.Is(err, e.err) {
			return e.code
		}
	}
	return "internal"
}

// errQueuePermission: a queue request would let its sender read or
// publish where the policy does not let it.
var errQueuePermission = errors.New("queue: permissions violation")

// mayConfigure checks that c may make a queue store subjects (it must be
// allowed to subscribe to all of each, with no deny inside: whoever may
// fetch reads them) and deliver to its consumers' subjects (it must be
// allowed to publish there: the hub delivers on its behalf).
func (c *client) mayConfigure(subjects []string, consumers []queue.ConsumerConfig) error {
	if !c.restricted {
		return nil
	}
	for _, s := range subjects {
		if d := c.grant.Subscribe(s); !d.Allowed || d.Filter {
			c.deny("queue subject", []byte(s), d.Decision)
			return fmt.Errorf("%w: a queue on %q needs permission to subscribe to all of it", errQueuePermission, s)
		}
	}
	for _, cc := range consumers {
		if cc.DeliverSubject == "" {
			continue
		}
		if d := c.grant.Publish(cc.DeliverSubject); !d.Allowed {
			c.deny("queue deliver subject", []byte(cc.DeliverSubject), d)
			return fmt.Errorf("%w: consumer %q delivers to %q, which needs permission to publish there", errQueuePermission, cc.Name, cc.DeliverSubject)
		}
	}
	return nil
}

// decodeStrict decodes JSON, refusing unknown keys: a misspelt setting
// ("maxdeliver") must not silently leave its default.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// qerr is the wire form of a queue error. An error without a stable code
// (an I/O error, say) is logged with its detail and goes out as "internal":
// the wire carries a stable message, the log the file system's paths.
func (h *Hub) qerr(err error, name string) queueError {
	code := errorCode(err)
	if code == "internal" {
		h.log.Warn("queue: request failed", "queue", name, "err", err)
		return queueError{Error: "queue: internal error (the hub's log has the detail)", Code: code, Queue: name}
	}
	return queueError{Error: err.Error(), Code: code, Queue: name}
}

// Bounds of times a client gives.
const (
	maxDelay     = 10 * 365 * 24 * time.Hour // Sb-Delay, Sb-Not-Before
	maxFetchWait = 24 * time.Hour            // a fetch's expires
)

var errQueuesOff = errors.New("queue: durable queues are off (the hub has no data directory)")

// queueBound reports whether a durable queue stores messages on subj (and
// so answers a request published there).
func (c *client) queueBound(subj []byte) bool {
	m := c.h.queues
	return m != nil && !bytes.HasPrefix(subj, []byte("$SB.")) && m.Bound(subj) != nil
}

// queuePublish stores a message published on a subject queue q binds.
func (c *client) queuePublish(q *queue.Queue, f *protocol.Frame) {
	var hdr []byte
	var msgID string
	var notBefore time.Time
	if f.HeaderLen > 0 {
		hdr = f.Payload[:f.HeaderLen]
		var err error
		msgID, notBefore, err = queueHeaders(hdr)
		if err != nil {
			if f.Reply != nil {
				c.h.sysReply(string(f.Reply), nil, mustJSON(c.h.qerr(err, q.Name())))
			}
			return
		}
		hdr = withoutSbFields(hdr)
	}
	var reply string
	if f.Reply != nil {
		reply = string(f.Reply)
	}
	q.Publish(context.Background(), string(f.Subject), hdr, f.Payload[f.HeaderLen:], msgID, notBefore, func(a queue.PubAck, err error) {
		if reply == "" {
			return
		}
		if err != nil {
			q.Reply(reply, c.h.qerr(err, a.Queue))
			return
		}
		q.Reply(reply, a)
	})
}

// queueHeaders reads Msg-Id and the delivery delay (Sb-Not-Before, RFC
// 3339, or Sb-Delay, a Go duration) from a header block.
func queueHeaders(hdr []byte) (msgID string, notBefore time.Time, err error) {
	h, err := protocol.ParseHeader(hdr)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: %w", queue.ErrBadRequest, err)
	}
	for k, vs := range h.Fields {
		if len(vs) == 0 {
			continue
		}
		switch {
		case strings.EqualFold(k, "Msg-Id"), strings.EqualFold(k, "Nats-Msg-Id"):
			msgID = vs[0]
		case strings.EqualFold(k, "Sb-Not-Before"):
			t, perr := time.Parse(time.RFC3339Nano, vs[0])
			if perr == nil && t.After(time.Now().Add(maxDelay)) {
				perr = errors.New("more than 10 years ahead")
			}
			if perr != nil {
				return "", time.Time{}, fmt.Errorf("%w: %w", queue.ErrBadRequest, perr)
			}
			notBefore = t
		case strings.EqualFold(k, "Sb-Delay"):
			d, perr := time.ParseDuration(vs[0])
			if perr != nil || d < 0 || d > maxDelay {
				return "", time.Time{}, fmt.Errorf("%w: %s", queue.ErrBadRequest, "Sb-Delay: want a duration such as 30s")
			}
			notBefore = time.Now().Add(d)
		}
	}
	return msgID, notBefore, nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		return []byte(`{"error":"hub: reply not encodable"}`)
	}
	return b
}

// fetchRequest is the body of $SB.Q.FETCH.<queue>.<consumer>.
type fetchRequest struct {
	Batch   int            `json:"batch"`
	Expires queue.Duration `json:"expires"`
	NoWait  bool           `json:"no_wait"`
}

// queueRequest answers a $SB.Q. request (verb is the subject after the
// prefix). It runs on c's reader goroutine, after the policy allowed the
// publish to the request's subject.
func (c *client) queueRequest(verb string, reply, body []byte) {
	m := c.h.queues
	answer := func(v any) {
		if reply != nil {
			c.h.sysReply(string(reply), nil, mustJSON(v))
		}
	}
	if m == nil {
		answer(c.h.qerr(errQueuesOff, ""))
		return
	}
	tok := strings.Split(verb, ".")
	bad := func(msg string) { answer(c.h.qerr(fmt.Errorf("%w: %s", queue.ErrBadRequest, msg), "")) }
	switch {
	case tok[0] == "LIST" && len(tok) == 1:
		answer(struct {
			Queues []queue.Info `json:"queues"`
		}{m.List()})
	case (tok[0] == "CREATE" || tok[0] == "UPDATE") && len(tok) == 2:
		var cfg queue.Config
		if len(bytes.TrimSpace(body)) > 0 {
			if err := decodeStrict(body, &cfg); err != nil {
				answer(c.h.qerr(fmt.Errorf("%w: %w", queue.ErrBadConfig, err), tok[1]))
				return
			}
		}
		if cfg.Name == "" {
			cfg.Name = tok[1]
		}
		if cfg.Name != tok[1] {
			answer(c.h.qerr(fmt.Errorf("%w: %s", queue.ErrBadConfig, "the body names another queue than the subject"), tok[1]))
			return
		}
		subjects := cfg.Subjects
		if len(subjects) == 0 {
			subjects = []string{cfg.Name}
		}
		if err := c.mayConfigure(subjects, cfg.Consumers); err != nil {
			answer(c.h.qerr(err, tok[1]))
			return
		}
		var inf queue.Info
		var err error
		if tok[0] == "CREATE" {
			inf, err = m.Create(cfg)
		} else {
			inf, err = m.Update(cfg)
		}
		if err != nil {
			answer(c.h.qerr(err, tok[1]))
			return
		}
		c.log.Info("queue: "+strings.ToLower(tok[0])+"d", "queue", tok[1], "by", c.who)
		if c.h.shm != nil {
			c.h.shm.revoke(inf.Config.Subjects)
		}
		answer(inf)
	case tok[0] == "INFO" && len(tok) == 2:
		q := m.Get(tok[1])
		if q == nil {
			answer(c.h.qerr(queue.ErrNotFound, tok[1]))
			return
		}
		answer(q.Info())
	case tok[0] == "DELETE" && len(tok) == 2:
		if err := m.Delete(tok[1]); err != nil {
			answer(c.h.qerr(err, tok[1]))
			return
		}
		c.log.Info("queue: deleted", "queue", tok[1], "by", c.who)
		answer(map[string]any{"ok": true, "queue": tok[1]})
	case tok[0] == "PURGE" && len(tok) == 2:
		q := m.Get(tok[1])
		if q == nil {
			answer(c.h.qerr(queue.ErrNotFound, tok[1]))
			return
		}
		if err := q.Purge(); err != nil {
			answer(c.h.qerr(err, tok[1]))
			return
		}
		answer(map[string]any{"ok": true, "queue": tok[1]})
	case tok[0] == "CONSUMER" && len(tok) == 3 && tok[1] == "ADD":
		var cc queue.ConsumerConfig
		if err := decodeStrict(body, &cc); err != nil {
			answer(c.h.qerr(fmt.Errorf("%w: %w", queue.ErrBadConfig, err), tok[2]))
			return
		}
		if err := c.mayConfigure(nil, []queue.ConsumerConfig{cc}); err != nil {
			answer(c.h.qerr(err, tok[2]))
			return
		}
		inf, err := m.AddConsumer(tok[2], cc)
		if err != nil {
			answer(c.h.qerr(err, tok[2]))
			return
		}
		answer(inf)
	case tok[0] == "CONSUMER" && len(tok) == 4 && tok[1] == "DELETE":
		inf, err := m.DeleteConsumer(tok[2], tok[3])
		if err != nil {
			answer(c.h.qerr(err, tok[2]))
			return
		}
		answer(inf)
	case tok[0] == "FETCH" && len(tok) == 3:
		c.queueFetch(m, tok[1], tok[2], reply, body)
	case tok[0] == "ACK" && len(tok) == 5:
		c.queueAck(m, tok[1:], reply, body)
	default:
		bad("unknown request " + queuePrefix + verb + " (see docs/queues.md)")
	}
}

// queueFetch starts a pull: messages go to reply, and a status message ends
// a batch that comes up short.
func (c *client) queueFetch(m *queue.Manager, name, consumer string, reply, body []byte) {
	if reply == nil {
		return // nowhere to send the messages
	}
	status := func(code int, text string) { c.h.sysReply(string(reply), statusBlock(code, text), nil) }
	req := fetchRequest{Batch: 1}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			status(400, "Bad Request: "+sanitize(err.Error()))
			return
		}
	}
	if req.Batch < 1 || req.Batch > 100_000 {
		status(400, "Bad Request: batch 1 to 100000")
		return
	}
	if req.Expires < 0 || time.Duration(req.Expires) > maxFetchWait {
		status(400, "Bad Request: expires 0 (30s) to 24h")
		return
	}
	q := m.Get(name)
	if q == nil {
		status(404, "No Such Queue")
		return
	}
	if err := q.Fetch(consumer, string(reply), req.Batch, time.Duration(req.Expires), req.NoWait); err != nil {
		status(409, sanitize(err.Error()))
	}
}

// sanitize makes text fit a status line.
func sanitize(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// queueAck handles $SB.Q.ACK.<queue>.<consumer>.<seq>.<id> with body ""
// or "+ACK", "-NAK" (optionally followed by {"delay":"5s"}), "+TERM" or
// "+WPI". With a reply subject, the answer ({"ok":true} or an error) comes
// once the ack is durable.
func (c *client) queueAck(m *queue.Manager, tok []string, reply, body []byte) {
	answer := func(v any) {
		if reply != nil {
			c.h.sysReply(string(reply), nil, mustJSON(v))
		}
	}
	seq, err1 := strconv.ParseUint(tok[2], 10, 64)
	id, err2 := strconv.ParseUint(tok[3], 10, 64)
	if err1 != nil || err2 != nil {
		answer(c.h.qerr(fmt.Errorf("%w: %s", queue.ErrBadRequest, "malformed ack subject"), tok[0]))
		return
	}
	q := m.Get(tok[0])
	if q == nil {
		answer(c.h.qerr(queue.ErrNotFound, tok[0]))
		return
	}
	kind, delay, err := parseAck(body)
	if err != nil {
		answer(c.h.qerr(err, tok[0]))
		return
	}
	var done func(error)
	if reply != nil {
		r := string(reply)
		done = func(err error) {
			if err != nil {
				q.Reply(r, c.h.qerr(err, tok[0]))
			} else {
				q.Reply(r, map[string]any{"ok": true})
			}
		}
	}
	if err := q.Ack(context.Background(), tok[1], seq, id, kind, delay, done); err != nil {
		answer(c.h.qerr(err, tok[0]))
	}
}

// parseAck reads an ack body.
func parseAck(body []byte) (queue.AckKind, time.Duration, error) {
	b := bytes.TrimSpace(body)
	switch {
	case len(b) == 0, bytes.Equal(b, []byte("+ACK")):
		return queue.Ack, 0, nil
	case bytes.Equal(b, []byte("+TERM")):
		return queue.Term, 0, nil
	case bytes.Equal(b, []byte("+WPI")):
		return queue.InProgress, 0, nil
	case bytes.HasPrefix(b, []byte("-NAK")):
		rest := bytes.TrimSpace(b[4:])
		if len(rest) == 0 {
			return queue.Nak, 0, nil
		}
		var v struct {
			Delay queue.Duration `json:"delay"`
		}
		if err := json.Unmarshal(rest, &v); err != nil || v.Delay < 0 {
			return 0, 0, fmt.Errorf("%w: %s", queue.ErrBadRequest, `-NAK takes {"delay":"5s"}`)
		}
		return queue.Nak, time.Duration(v.Delay), nil
	}
	return 0, 0, fmt.Errorf("%w: %s", queue.ErrBadRequest, "want +ACK, -NAK, +TERM or +WPI")
}

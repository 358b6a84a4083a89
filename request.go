package switchboard

import (
	"context"
	"crypto/rand"
	"fmt"
	"strconv"
	"sync"

	"switchboard/internal/protocol"
)

// InboxPrefix starts every inbox subject made by NewInbox and Request.
const InboxPrefix = "_INBOX."

// NewInbox returns a new unique subject under InboxPrefix, to receive
// replies on.
func NewInbox() string {
	var b [len(InboxPrefix) + inboxIDLen]byte
	copy(b[:], InboxPrefix)
	fillID(b[len(InboxPrefix):])
	return string(b[:])
}

const (
	inboxIDLen = 22 // base62 characters: about 131 random bits
	base62     = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// NewInbox returns a new unique subject under the Conn's
// Options.InboxPrefix ("_INBOX" by default).
func (c *Conn) NewInbox() string {
	var id [inboxIDLen]byte
	fillID(id[:])
	return c.opts.InboxPrefix + "." + string(id[:])
}

// fillID fills b with random base62 characters.
func fillID(b []byte) {
	rand.Read(b) // never fails (crypto/rand panics rather than return an error)
	for i := range b {
		b[i] = base62[int(b[i])%len(base62)]
	}
}

// respMux is the Conn's request inbox: one wildcard subscription,
// "_INBOX.<id>.*", created by the first Request, and a map from the last
// token of the reply subject to the waiting request.
type respMux struct {
	prefix string // "_INBOX.<id>."
	sub    *Subscription

	mu      sync.Mutex
	next    uint64               // last token handed out
	waiters map[uint64]chan *Msg // token -> reply channel (cap 1)
}

// chanPool recycles reply channels; a channel is put back only when empty
// and unreachable from any map.
var chanPool = sync.Pool{New: func() any { return make(chan *Msg, 1) }}

// respMux returns the Conn's request inbox, subscribing it on first use.
func (c *Conn) respMux() (*respMux, error) {
	c.mu.RLock()
	r := c.resp
	c.mu.RUnlock()
	if r != nil {
		return r, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.resp != nil {
		return c.resp, nil
	}
	if c.closing {
		return nil, ErrClosed
	}
	if c.draining {
		return nil, ErrDraining
	}
	r = &respMux{prefix: c.NewInbox() + ".", waiters: make(map[uint64]chan *Msg)}
	c.ssid++
	s := &Subscription{
		Subject: r.prefix + "*",
		conn:    c,
		sid:     c.ssid,
		sidStr:  strconv.FormatUint(c.ssid, 10),
		kind:    kindResp,
		kick:    make(chan struct{}, 1),
	}
	r.sub = s
	c.subs[s.sid] = s
	c.sendSubLocked(s)
	c.shmMarkLocked(s)
	c.resp = r
	return r, nil
}

// register allocates a token and its reply channel.
func (r *respMux) register() (uint64, chan *Msg) {
	ch := chanPool.Get().(chan *Msg)
	r.mu.Lock()
	r.next++
	tok := r.next
	r.waiters[tok] = ch
	r.mu.Unlock()
	return tok, ch
}

// cancel forgets tok and recycles its channel. The reader sends under mu,
// so after cancel's lock the channel either has the reply or never will.
func (r *respMux) cancel(tok uint64, ch chan *Msg) {
	r.mu.Lock()
	delete(r.waiters, tok)
	r.mu.Unlock()
	select {
	case <-ch:
	default:
	}
	chanPool.Put(ch)
}

// deliver routes a reply to its waiter (from the reader). Late replies,
// for requests that gave up, are dropped.
func (r *respMux) deliver(f *protocol.Frame, s *Subscription) {
	if len(f.Subject) <= len(r.prefix) {
		return
	}
	tok, ok := parseToken(f.Subject[len(r.prefix):])
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ch := r.waiters[tok]
	if ch == nil {
		return
	}
	delete(r.waiters, tok)
	m, _ := newMsg(f, s) // a malformed header still delivers the reply
	ch <- m              // cap 1, one send per registration
}

// appendToken appends tok in base 36.
func appendToken(b []byte, tok uint64) []byte { return strconv.AppendUint(b, tok, 36) }

// parseToken parses a base-36 token without allocating.
func parseToken(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 13 {
		return 0, false
	}
	var n uint64
	for _, ch := range b {
		var d byte
		switch {
		case '0' <= ch && ch <= '9':
			d = ch - '0'
		case 'a' <= ch && ch <= 'z':
			d = ch - 'a' + 10
		default:
			return 0, false
		}
		n = n*36 + uint64(d)
	}
	return n, true
}

// Request publishes data to subject with a unique reply subject and waits
// for the first reply. It returns ErrNoResponders at once when no one is
// subscribed to subject. Bound the wait with ctx: a deadline gives an error
// matching both ErrTimeout and context.DeadlineExceeded. While disconnected
// the request is buffered like a publish and keeps waiting. Request writes
// inline, from the calling goroutine.
func (c *Conn) Request(ctx context.Context, subject string, data []byte) (*Msg, error) {
	return c.request(ctx, subject, nil, data)
}

// RequestMsg is Request with m's Subject, Header and Data (m.Reply is
// ignored).
func (c *Conn) RequestMsg(ctx context.Context, m *Msg) (*Msg, error) {
	return c.request(ctx, m.Subject, m.Header, m.Data)
}

func (c *Conn) request(ctx context.Context, subject string, hdr Header, data []byte) (*Msg, error) {
	if err := ctx.Err(); err != nil {
		return nil, ctxError("switchboard: request "+subject, err)
	}
	r, err := c.respMux()
	if err != nil {
		return nil, err
	}
	c.mu.RLock()
	draining := c.draining
	c.mu.RUnlock()
	if draining {
		return nil, ErrDraining
	}
	tok, ch := r.register()
	var rb [64]byte
	reply := string(appendToken(append(rb[:0], r.prefix...), tok))
	if err := c.publish(ctx, subject, reply, hdr, data, true); err != nil {
		r.cancel(tok, ch)
		return nil, err
	}
	select {
	case m := <-ch:
		chanPool.Put(ch)
		if m.status == protocol.StatusNoResponders && len(m.Data) == 0 {
			return nil, fmt.Errorf("request %q: %w", subject, ErrNoResponders)
		}
		return m, nil
	case <-ctx.Done():
		r.cancel(tok, ch)
		return nil, ctxError("switchboard: request "+subject, ctx.Err())
	case <-c.closedCh:
		r.cancel(tok, ch)
		return nil, ErrClosed
	}
}

package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"switchboard"
)

// benchResult is one run, or (in a report's summary) the median of a
// workload's runs on one server and transport.
type benchResult struct {
	Workload    string `json:"workload"`
	Server      string `json:"server"`    // "hub" or "nats"
	Transport   string `json:"transport"` // "unix" or "tcp"
	Size        int    `json:"size"`      // payload bytes
	Round       int    `json:"round,omitempty"`
	Rounds      int    `json:"rounds,omitempty"` // summary only: runs the median is over
	Subscribers int    `json:"subscribers"`
	// Msgs is how many messages were published (pub, pubsub, fanout) or
	// round trips measured (reqrep, after the warm-up).
	Msgs int64 `json:"msgs"`
	// Expected deliveries (Msgs × Subscribers; Msgs for reqrep) and the
	// deliveries counted. A run with Received != Expected fails the bench.
	Expected int64   `json:"expected"`
	Received int64   `json:"received"`
	Seconds  float64 `json:"seconds"`
	// MsgsPerSec is the headline rate: messages published per second
	// (pub), delivered per second (pubsub, fanout) or round trips per
	// second (reqrep). MBPerSec is the payload of those messages in 10^6
	// bytes per second (request plus reply for reqrep).
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	// PubMsgsPerSec is the publish rate (first publish until Flush
	// returned) in pubsub and fanout.
	PubMsgsPerSec float64 `json:"pub_msgs_per_sec,omitempty"`
	// Request/reply latency percentiles over every measured round trip.
	P50NS  int64 `json:"p50_ns,omitempty"`
	P99NS  int64 `json:"p99_ns,omitempty"`
	P999NS int64 `json:"p999_ns,omitempty"`
	// Ratio (summary, hub rows, --vs-nats only) is hub ÷ nats-server over
	// TCP: of MsgsPerSec, or of P50NS for reqrep.
	Ratio *float64 `json:"ratio,omitempty"`
}

var benchRunSeq atomic.Int64

// runner runs one workload once against one target.
type runner struct {
	ctx     context.Context
	fail    context.CancelCauseFunc // cancels ctx with the first error
	s       *benchSettings
	t       benchTarget
	size    int
	subject string
	conns   []*switchboard.Conn
	closing atomic.Bool
}

// runWorkload runs workload w once on target t with payloads of size bytes.
// It gives up after --timeout, as soon as the server process exits or a
// client reports an asynchronous error.
func runWorkload(ctx context.Context, s *benchSettings, w string, t benchTarget, size int) (benchResult, error) {
	ctx, cancelTimeout := context.WithTimeoutCause(ctx, s.timeout, fmt.Errorf("run took longer than --timeout %v", s.timeout))
	defer cancelTimeout()
	ctx, fail := context.WithCancelCause(ctx)
	defer fail(nil)
	go func() {
		select {
		case <-t.proc.exited:
			fail(fmt.Errorf("%s process exited: %v", t.server, t.proc.waitErr))
		case <-ctx.Done():
		}
	}()
	r := &runner{ctx: ctx, fail: fail, s: s, t: t, size: size,
		subject: fmt.Sprintf("bench.%s.%d", w, benchRunSeq.Add(1))}
	defer r.close()

	var res benchResult
	var err error
	switch w {
	case "pub":
		res, err = r.pub()
	case "pubsub":
		res, err = r.fanout(1)
	case "fanout":
		res, err = r.fanout(s.subs)
	case "reqrep":
		res, err = r.reqrep()
	default:
		return res, fmt.Errorf("unknown workload %q", w)
	}
	if cause := context.Cause(ctx); err != nil && cause != nil && !errors.Is(err, cause) {
		err = fmt.Errorf("%w (%v)", cause, err)
	}
	res.Workload, res.Server, res.Transport, res.Size = w, t.server, t.transport, size
	return res, err
}

// connect opens one client connection for a role. Asynchronous errors and
// disconnects fail the run.
func (r *runner) connect(role string) (*switchboard.Conn, error) {
	nc, err := switchboard.Connect(r.ctx, r.t.url, &switchboard.Options{
		Name:              "bench " + role,
		NoReconnect:       true,
		PendingMsgsLimit:  1 << 20,
		PendingBytesLimit: 1 << 30,
		ErrorHandler: func(_ *switchboard.Conn, _ *switchboard.Subscription, err error) {
			if !r.closing.Load() {
				r.fail(fmt.Errorf("%s: %w", role, err))
			}
		},
		DisconnectHandler: func(_ *switchboard.Conn, err error) {
			if !r.closing.Load() {
				r.fail(fmt.Errorf("%s disconnected: %v", role, err))
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("connect %s to %s: %w", role, r.t.url, err)
	}
	r.conns = append(r.conns, nc)
	return nc, nil
}

// subscribe subscribes nc to the workload's subject and flushes, so the
// SUB is in place at the hub before anything is published.
func (r *runner) subscribe(nc *switchboard.Conn, cb func(*switchboard.Msg)) error {
	if _, err := nc.Subscribe(r.subject, cb); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if err := nc.Flush(r.ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

func (r *runner) close() {
	r.closing.Store(true)
	for _, nc := range r.conns {
		nc.Close()
	}
}

// pub publishes with nobody subscribed, then flushes.
func (r *runner) pub() (benchResult, error) {
	var res benchResult
	pc, err := r.connect("publisher") // Connect's handshake ends with PING/PONG
	if err != nil {
		return res, err
	}
	start := time.Now()
	n, err := r.publish(pc, nil)
	if err != nil {
		return res, err
	}
	if err := pc.Flush(r.ctx); err != nil {
		return res, fmt.Errorf("flush: %w", err)
	}
	el := time.Since(start)
	res.Msgs, res.Seconds = n, el.Seconds()
	res.MsgsPerSec = float64(n) / el.Seconds()
	res.MBPerSec = res.MsgsPerSec * float64(r.size) / 1e6
	return res, nil
}

// fanout publishes to nsubs subscribers, each on its own connection, and
// waits until every one of them has received every message.
func (r *runner) fanout(nsubs int) (benchResult, error) {
	res := benchResult{Subscribers: nsubs}
	counters := make([]*counter, nsubs)
	for i := range counters {
		sc, err := r.connect(fmt.Sprintf("subscriber %d", i+1))
		if err != nil {
			return res, err
		}
		c := newCounter(r.size)
		if err := r.subscribe(sc, c.msg); err != nil {
			return res, err
		}
		counters[i] = c
	}
	pc, err := r.connect("publisher") // Connect's handshake ends with PING/PONG
	if err != nil {
		return res, err
	}

	start := time.Now()
	n, err := r.publish(pc, counters)
	if err != nil {
		return res, err
	}
	for _, c := range counters {
		c.expect(n)
	}
	if err := pc.Flush(r.ctx); err != nil {
		return res, fmt.Errorf("flush: %w", err)
	}
	pubEl := time.Since(start)
	res.Msgs, res.Expected = n, n*int64(nsubs)
	end, err := r.wait(counters, res.Expected)
	res.Received = received(counters)
	if err != nil {
		return res, err
	}
	if res.Received != res.Expected {
		return res, fmt.Errorf("received %d messages, want %d (duplicates)", res.Received, res.Expected)
	}
	el := end.Sub(start)
	res.Seconds = el.Seconds()
	res.MsgsPerSec = float64(res.Received) / el.Seconds()
	res.MBPerSec = res.MsgsPerSec * float64(r.size) / 1e6
	res.PubMsgsPerSec = float64(n) / pubEl.Seconds()
	return res, nil
}

// publish sends up to msgsFor(size) messages numbered from 0 (the number is
// in the first 8 bytes of payloads of at least 8 bytes) until --duration
// has passed, keeping at most --window ahead of the slowest counter. It
// returns how many it published.
func (r *runner) publish(nc *switchboard.Conn, counters []*counter) (int64, error) {
	n := r.s.msgsFor(r.size)
	window := max(16, r.s.window/int64(r.size+64))
	every := min(max(window/4, 1), 256)
	deadline := time.Now().Add(r.s.duration)
	buf := make([]byte, r.size)
	for i := int64(0); i < n; i++ {
		if r.size >= 8 {
			binary.LittleEndian.PutUint64(buf, uint64(i))
		}
		if err := nc.Publish(r.subject, buf); err != nil {
			return i, fmt.Errorf("publish message %d: %w", i, err)
		}
		if (i+1)%every == 0 {
			if time.Now().After(deadline) {
				return i + 1, nil
			}
			if err := r.throttle(nc, i+1-window, counters); err != nil {
				return i + 1, err
			}
		}
	}
	return n, nil
}

// throttle waits until every counter has received at least floor messages.
func (r *runner) throttle(nc *switchboard.Conn, floor int64, counters []*counter) error {
	if floor <= 0 || len(counters) == 0 {
		return nil
	}
	low := minReceived(counters)
	if low >= floor {
		return nil
	}
	start, lastMove, flushed := time.Now(), time.Now(), false
	for low < floor {
		if err := r.ctx.Err(); err != nil {
			return fmt.Errorf("waiting for subscribers (slowest has %d of %d): %w", low, floor, context.Cause(r.ctx))
		}
		for _, c := range counters {
			if c.failed() {
				return c.err
			}
		}
		if !flushed && time.Since(start) > 5*time.Millisecond {
			// In case the client holds a partial batch back, push it out.
			flushed = true
			if err := nc.Flush(r.ctx); err != nil {
				return fmt.Errorf("flush: %w", err)
			}
		}
		time.Sleep(50 * time.Microsecond)
		if l := minReceived(counters); l != low {
			low, lastMove = l, time.Now()
		} else if time.Since(lastMove) > r.s.stall {
			return fmt.Errorf("stalled: the slowest subscriber received nothing for %v (%d messages so far)", r.s.stall, low)
		}
	}
	return nil
}

// wait waits until every counter has its expected messages and returns the
// time the last one completed.
func (r *runner) wait(counters []*counter, expected int64) (time.Time, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, lastMove := received(counters), time.Now()
	var end time.Time
	for _, c := range counters {
	waiting:
		for {
			select {
			case <-c.done:
				break waiting
			case <-r.ctx.Done():
				return end, fmt.Errorf("%w (received %d of %d messages)", context.Cause(r.ctx), received(counters), expected)
			case <-tick.C:
				if n := received(counters); n != last {
					last, lastMove = n, time.Now()
				} else if time.Since(lastMove) > r.s.stall {
					return end, fmt.Errorf("stalled: nothing received for %v (received %d of %d messages)", r.s.stall, n, expected)
				}
			}
		}
		if c.err != nil {
			return end, c.err
		}
		if c.end.After(end) {
			end = c.end
		}
	}
	return end, nil
}

// reqrep measures sequential request/reply round trips through an echoing
// responder.
func (r *runner) reqrep() (benchResult, error) {
	res := benchResult{Subscribers: 1}
	rc, err := r.connect("responder")
	if err != nil {
		return res, err
	}
	err = r.subscribe(rc, func(m *switchboard.Msg) {
		if err := m.Respond(m.Data); err != nil && !r.closing.Load() {
			r.fail(fmt.Errorf("respond: %w", err))
		}
	})
	if err != nil {
		return res, err
	}
	qc, err := r.connect("requester")
	if err != nil {
		return res, err
	}
	buf := make([]byte, r.size)
	roundTrip := func(i int) (time.Duration, error) {
		if r.size >= 8 {
			binary.LittleEndian.PutUint64(buf, uint64(i))
		}
		t0 := time.Now()
		m, err := qc.Request(r.ctx, r.subject, buf)
		d := time.Since(t0)
		if err != nil {
			return d, fmt.Errorf("request %d: %w", i, err)
		}
		if len(m.Data) != r.size {
			return d, fmt.Errorf("request %d: reply has %d bytes, want %d", i, len(m.Data), r.size)
		}
		if r.size >= 8 && binary.LittleEndian.Uint64(m.Data) != uint64(i) {
			return d, fmt.Errorf("request %d: got the reply to request %d", i, binary.LittleEndian.Uint64(m.Data))
		}
		return d, nil
	}
	for i := range r.s.warmup {
		if _, err := roundTrip(i); err != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
	}
	samples := make([]int64, 0, r.s.requests)
	start := time.Now()
	deadline := start.Add(r.s.duration)
	for i := range r.s.requests {
		d, err := roundTrip(r.s.warmup + i)
		if err != nil {
			return res, err
		}
		samples = append(samples, int64(d))
		if time.Now().After(deadline) {
			break
		}
	}
	el := time.Since(start)
	n := int64(len(samples))
	res.Msgs, res.Expected, res.Received = n, n, n
	res.Seconds = el.Seconds()
	res.MsgsPerSec = float64(n) / el.Seconds()
	res.MBPerSec = res.MsgsPerSec * float64(2*r.size) / 1e6
	slices.Sort(samples)
	res.P50NS = percentile(samples, 0.50)
	res.P99NS = percentile(samples, 0.99)
	res.P999NS = percentile(samples, 0.999)
	return res, nil
}

// percentile returns the nearest-rank p-th percentile of sorted samples.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// counter is a subscriber's callback: it checks each message's size and
// sequence number and signals done once the expected count has arrived, or
// at the first wrong message.
type counter struct {
	size   int
	n      atomic.Int64
	target atomic.Int64
	next   uint64 // touched only by the subscription's callback goroutine

	once sync.Once
	done chan struct{}
	end  time.Time // written before done is closed
	err  error     // written before done is closed
}

func newCounter(size int) *counter {
	c := &counter{size: size, done: make(chan struct{})}
	c.target.Store(math.MaxInt64)
	return c
}

func (c *counter) msg(m *switchboard.Msg) {
	if len(m.Data) != c.size {
		c.finish(fmt.Errorf("message %d has %d bytes, want %d", c.next, len(m.Data), c.size))
		return
	}
	if c.size >= 8 {
		if seq := binary.LittleEndian.Uint64(m.Data); seq != c.next {
			c.finish(fmt.Errorf("received message %d where %d was due: messages lost, duplicated or reordered", seq, c.next))
			return
		}
		c.next++
	}
	if c.n.Add(1) >= c.target.Load() {
		c.finish(nil)
	}
}

// expect sets how many messages complete the counter.
func (c *counter) expect(n int64) {
	c.target.Store(n)
	if c.n.Load() >= n {
		c.finish(nil)
	}
}

func (c *counter) finish(err error) {
	c.once.Do(func() {
		c.end, c.err = time.Now(), err
		close(c.done)
	})
}

// failed reports whether the counter stopped at a wrong message.
func (c *counter) failed() bool {
	select {
	case <-c.done:
		return c.err != nil
	default:
		return false
	}
}

func received(cs []*counter) int64 {
	var n int64
	for _, c := range cs {
		n += c.n.Load()
	}
	return n
}

func minReceived(cs []*counter) int64 {
	low := int64(math.MaxInt64)
	for _, c := range cs {
		low = min(low, c.n.Load())
	}
	return low
}

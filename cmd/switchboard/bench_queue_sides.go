package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"switchboard"
)

// queueSide is one server under test, through its own client library.
type queueSide interface {
	name() string
	// reset leaves an empty queue (stream) with its pull consumer.
	reset(ctx context.Context) error
	// publisher and consumer open a connection of their own.
	publisher(ctx context.Context, subject string) (queuePublisher, error)
	consumer(ctx context.Context) (queueConsumer, error)
	// stored is how many messages the queue holds.
	stored(ctx context.Context) (int64, error)
	pid() int // the server process
	// storage returns the journal's appends and fsyncs, if the server
	// reports them (the hub does).
	storage(ctx context.Context) ([2]uint64, bool)
	close()
}

type queuePublisher interface {
	// async publishes and returns the wait for the acknowledgement.
	async(data []byte) (func(context.Context) error, error)
	sync(ctx context.Context, data []byte) error
	close()
}

type queueConsumer interface {
	// fetch returns up to batch messages without waiting for more; acks
	// confirm each one's acknowledgement (it waits for the server).
	fetch(ctx context.Context, batch int) (acks []func(context.Context) error, err error)
	close()
}

// queueLatency publishes one message at a time for d (at most max round
// trips after 20 to warm up) and returns the sorted round-trip times.
func queueLatency(ctx context.Context, sd queueSide, payload []byte, d time.Duration, max int) ([]int64, error) {
	p, err := sd.publisher(ctx, benchQueueSubject)
	if err != nil {
		return nil, err
	}
	defer p.close()
	const warm = 20
	samples := make([]int64, 0, min(max, 1<<16))
	var end time.Time
	for i := 0; len(samples) < max; i++ {
		t0 := time.Now()
		if i == warm {
			end = t0.Add(d)
		} else if i > warm && t0.After(end) {
			break
		}
		if err := p.sync(ctx, payload); err != nil {
			return nil, err
		}
		if i >= warm {
			samples = append(samples, int64(time.Since(t0)))
		}
	}
	slices.Sort(samples)
	return samples, nil
}

// queuePublishFor runs queuePublish for d.
func queuePublishFor(ctx context.Context, sd queueSide, n, inFlight int, payload []byte, d, timeout time.Duration) (int64, time.Duration, error) {
	var stop atomic.Bool
	ctx, cancel := context.WithTimeout(ctx, d+timeout)
	defer cancel()
	return queuePublish(ctx, sd, benchQueueSubject, n, inFlight, payload, &stop, func() { time.AfterFunc(d, func() { stop.Store(true) }) })
}

// queuePublish runs n publishers, each on its own connection keeping at
// most inFlight publishes unacknowledged, until stop is set (started is
// called once they are connected). It returns how many messages were
// acknowledged and the time from the first publish until the last
// acknowledgement.
func queuePublish(ctx context.Context, sd queueSide, subject string, n, inFlight int, payload []byte, stop *atomic.Bool, started func()) (int64, time.Duration, error) {
	pubs := make([]queuePublisher, 0, n)
	defer func() {
		for _, p := range pubs {
			p.close()
		}
	}()
	for range n {
		p, err := sd.publisher(ctx, subject)
		if err != nil {
			return 0, 0, err
		}
		pubs = append(pubs, p)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var acked atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	started()
	for _, p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			window := make(chan struct{}, inFlight)
			waits := make(chan func(context.Context) error, inFlight)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for w := range waits {
					if err := w(ctx); err != nil {
						cancel(fmt.Errorf("acknowledgement: %w", err))
					} else {
						acked.Add(1)
					}
					<-window
				}
			}()
			for !stop.Load() && ctx.Err() == nil {
				window <- struct{}{}
				w, err := p.async(payload)
				if err != nil {
					cancel(fmt.Errorf("publish: %w", err))
					<-window
					break
				}
				waits <- w
			}
			close(waits)
			<-done
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return 0, 0, err
	}
	return acked.Load(), el, nil
}

// queueConsume fetches batches and acks every message of a batch
// concurrently, each ack confirmed, until the queue is empty or d has
// passed.
func queueConsume(ctx context.Context, sd queueSide, batch int, d, timeout time.Duration) (int64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, d+timeout)
	defer cancel()
	before, err := sd.stored(ctx)
	if err != nil {
		return 0, 0, err
	}
	c, err := sd.consumer(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer c.close()
	var n int64
	start := time.Now()
	end := start.Add(d)
	errs := make(chan error, batch)
	for time.Now().Before(end) {
		acks, err := c.fetch(ctx, batch)
		if err != nil {
			return 0, 0, fmt.Errorf("fetch: %w", err)
		}
		if len(acks) == 0 {
			break
		}
		for _, ack := range acks {
			go func() { errs <- ack(ctx) }()
		}
		for range acks {
			if err := <-errs; err != nil {
				return 0, 0, fmt.Errorf("ack: %w", err)
			}
		}
		n += int64(len(acks))
	}
	el := time.Since(start)
	after, err := sd.stored(ctx)
	if err != nil {
		return 0, 0, err
	}
	if after != before-n {
		return 0, 0, fmt.Errorf("%d messages stored before, %d acked, %d stored after", before, n, after)
	}
	return n, el, nil
}

// hubQueueSide is the hub, in its own process, through the Go client.
type hubQueueSide struct {
	s     *queueBenchSettings
	dir   string
	proc  *serverProc
	admin *switchboard.Conn
	url   string
}

func (h *hubQueueSide) name() string { return "hub" }

func (h *hubQueueSide) pid() int { return h.proc.info.PID }

func (h *hubQueueSide) storage(ctx context.Context) ([2]uint64, bool) {
	inf, err := h.admin.QueueInfo(ctx, benchQueueName)
	if err != nil {
		return [2]uint64{}, false
	}
	return [2]uint64{inf.Storage.Appends, inf.Storage.Syncs}, true
}

// launch starts `serve` with its data under dir, on the socket and TCP
// address given; it does not wait.
func (h *hubQueueSide) launch(sock, tcp string, stderr io.Writer, extra ...string) (*serverProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	p := &serverProc{info: serverInfo{Server: "hub", Unix: sock, TCP: tcp}}
	args := append([]string{"serve", "--socket", sock, "--listen", tcp, "--policy", filepath.Join(h.dir, "policy.toml"),
		"--data", filepath.Join(h.dir, "data"), "--log-level", "warn"}, extra...)
	p.cmd = exec.Command(exe, args...)
	p.cmd.Stderr = &prefixWriter{prefix: "hub: ", w: stderr}
	if err := p.start(); err != nil {
		return nil, fmt.Errorf("start hub: %w", err)
	}
	return p, nil
}

func (h *hubQueueSide) start(ctx context.Context, tmp string, stderr io.Writer) error {
	h.dir = filepath.Join(tmp, "hub")
	if err := os.MkdirAll(h.dir, 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(h.dir, "policy.toml"), []byte(benchPolicy), 0o600); err != nil {
		return err
	}
	sock := filepath.Join(h.dir, "hub.sock")
	if len(sock) > 100 {
		return fmt.Errorf("socket path %s is too long for a unix socket; use a shorter --dir", sock)
	}
	var extra []string
	if h.s.hubProfile != "" {
		extra = append(extra, "--cpuprofile", h.s.hubProfile)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ { // a free port may be taken before the hub binds it
		port, perr := freePort()
		if perr != nil {
			return perr
		}
		p, lerr := h.launch(sock, net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), stderr, extra...)
		if lerr != nil {
			return lerr
		}
		if err = p.waitReady(ctx, "hub"); err == nil {
			h.proc = p
			break
		}
		p.stop()
		if ctx.Err() != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	h.url = h.proc.url(h.s.transport)
	h.admin, err = switchboard.Connect(ctx, h.proc.url("unix"), &switchboard.Options{Name: "bench queue admin", NoReconnect: true})
	return err
}

func (h *hubQueueSide) connect(ctx context.Context, name string) (*switchboard.Conn, error) {
	return switchboard.Connect(ctx, h.url, &switchboard.Options{Name: name, NoReconnect: true})
}

func (h *hubQueueSide) reset(ctx context.Context) error {
	if err := h.admin.DeleteQueue(ctx, benchQueueName); err != nil && !errors.Is(err, switchboard.ErrQueueNotFound) {
		return err
	}
	_, err := h.admin.CreateQueue(ctx, switchboard.QueueConfig{Name: benchQueueName, Subjects: []string{benchQueueSubject}})
	return err
}

func (h *hubQueueSide) stored(ctx context.Context) (int64, error) {
	inf, err := h.admin.QueueInfo(ctx, benchQueueName)
	if err != nil {
		return 0, err
	}
	return inf.Messages, nil
}

func (h *hubQueueSide) close() {
	if h.admin != nil {
		h.admin.Close()
	}
	if h.proc != nil {
		h.proc.stop()
	}
}

type hubPublisher struct {
	nc      *switchboard.Conn
	subject string
}

func (h *hubQueueSide) publisher(ctx context.Context, subject string) (queuePublisher, error) {
	nc, err := h.connect(ctx, "bench queue publisher")
	if err != nil {
		return nil, err
	}
	return &hubPublisher{nc: nc, subject: subject}, nil
}

func (p *hubPublisher) async(data []byte) (func(context.Context) error, error) {
	f, err := p.nc.PublishDurableAsync(p.subject, data, nil)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		_, err := f.Wait(ctx)
		return err
	}, nil
}

func (p *hubPublisher) sync(ctx context.Context, data []byte) error {
	_, err := p.nc.PublishDurable(ctx, p.subject, data, nil)
	return err
}

func (p *hubPublisher) close() { p.nc.Close() }

type hubConsumer struct{ nc *switchboard.Conn }

func (h *hubQueueSide) consumer(ctx context.Context) (queueConsumer, error) {
	nc, err := h.connect(ctx, "bench queue consumer")
	if err != nil {
		return nil, err
	}
	return &hubConsumer{nc: nc}, nil
}

func (c *hubConsumer) fetch(ctx context.Context, batch int) ([]func(context.Context) error, error) {
	msgs, err := c.nc.Fetch(ctx, benchQueueName, "default", batch, &switchboard.FetchOpts{NoWait: true})
	if err != nil {
		return nil, err
	}
	acks := make([]func(context.Context) error, len(msgs))
	for i, m := range msgs {
		acks[i] = m.Ack
	}
	return acks, nil
}

func (c *hubConsumer) close() { c.nc.Close() }

// jsQueueSide is nats-server with JetStream, in its own process, driven
// through its JetStream API ($JS.API. requests, publish acks, pull
// requests, double acks) by this package's own client: the shipped binary
// does not link nats.go (internal/archtest), and both sides then run the
// same client code.
type jsQueueSide struct {
	s      *queueBenchSettings
	always bool // sync_interval: always
	proc   *serverProc
	nc     *switchboard.Conn
	url    string
}

const jsStream, jsConsumer = "BENCH", "bench"

func (j *jsQueueSide) pid() int { return j.proc.info.PID }

func (j *jsQueueSide) storage(context.Context) ([2]uint64, bool) { return [2]uint64{}, false }

func (j *jsQueueSide) name() string {
	if j.always {
		return "jetstream-always"
	}
	return "jetstream-default"
}

// start runs sb-nats-server with JetStream storing under tmp.
func (j *jsQueueSide) start(ctx context.Context, path, tmp string, stderr io.Writer) error {
	dir := filepath.Join(tmp, j.name())
	p := &serverProc{info: serverInfo{Server: "nats"}}
	args := []string{"-addr", "127.0.0.1:0", "-js-dir", dir}
	if j.always {
		args = append(args, "-sync-always")
	}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stderr = &prefixWriter{prefix: j.name() + ": ", w: stderr}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := p.start(); err != nil {
		return fmt.Errorf("start %s: %w", path, err)
	}
	j.proc = p
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- strings.TrimSpace(s)
		io.Copy(io.Discard, out)
	}()
	select {
	case l := <-line:
		if _, _, err := net.SplitHostPort(l); err != nil {
			return fmt.Errorf("%s printed %q, not host:port (is it built from this tree, with -js-dir?)", path, l)
		}
		p.info.TCP = l
	case <-p.exited:
		return p.exitErr("sb-nats-server")
	case <-time.After(10 * time.Second):
		return errors.New("sb-nats-server did not print its address within 10s")
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := p.waitReady(ctx, j.name()); err != nil {
		return err
	}
	j.url = p.url("tcp")
	j.nc, err = j.connect(ctx, "bench queue admin")
	return err
}

func (j *jsQueueSide) connect(ctx context.Context, name string) (*switchboard.Conn, error) {
	return switchboard.Connect(ctx, j.url, &switchboard.Options{Name: name, NoReconnect: true, NoSharedMemory: true,
		PendingMsgsLimit: 1 << 20, PendingBytesLimit: 1 << 30})
}

// jsError is the error member of a JetStream API answer.
type jsError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

// jsAPI makes a JetStream API request and decodes the answer into out
// (which may be nil), turning an "error" member into an error.
func (j *jsQueueSide) jsAPI(ctx context.Context, subj string, body any, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	m, err := j.nc.Request(ctx, subj, b)
	if err != nil {
		return fmt.Errorf("%s: %w", subj, err)
	}
	var e struct {
		Error *jsError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &e); err != nil {
		return fmt.Errorf("%s: %q: %w", subj, m.Data, err)
	}
	if e.Error != nil {
		return fmt.Errorf("%s: %s (%d/%d)", subj, e.Error.Description, e.Error.Code, e.Error.ErrCode)
	}
	if out != nil {
		return json.Unmarshal(m.Data, out)
	}
	return nil
}

func (j *jsQueueSide) reset(ctx context.Context) error {
	// Deleting a stream that does not exist fails; nothing to reset then.
	_ = j.jsAPI(ctx, "$JS.API.STREAM.DELETE."+jsStream, nil, nil)
	err := j.jsAPI(ctx, "$JS.API.STREAM.CREATE."+jsStream, map[string]any{
		"name": jsStream, "subjects": []string{benchQueueSubject}, "retention": "workqueue",
		"storage": "file", "num_replicas": 1}, nil)
	if err != nil {
		return err
	}
	return j.jsAPI(ctx, "$JS.API.CONSUMER.CREATE."+jsStream+"."+jsConsumer, map[string]any{
		"stream_name": jsStream, "config": map[string]any{"durable_name": jsConsumer, "name": jsConsumer, "ack_policy": "explicit"}}, nil)
}

func (j *jsQueueSide) stored(ctx context.Context) (int64, error) {
	var inf struct {
		State struct {
			Messages int64 `json:"messages"`
		} `json:"state"`
	}
	if err := j.jsAPI(ctx, "$JS.API.STREAM.INFO."+jsStream, nil, &inf); err != nil {
		return 0, err
	}
	return inf.State.Messages, nil
}

func (j *jsQueueSide) close() {
	if j.nc != nil {
		j.nc.Close()
	}
	if j.proc != nil {
		j.proc.stop()
	}
}

// jsPublisher publishes with JetStream's publish acks: a publish with a
// reply subject is answered {"stream":...,"seq":...} once stored. Async
// publishes share one wildcard inbox subscription, as nats.go's do.
type jsPublisher struct {
	nc      *switchboard.Conn
	subject string
	inbox   string
	sub     *switchboard.Subscription
	mu      sync.Mutex
	next    uint64
	waiting map[string]chan *switchboard.Msg
}

func (j *jsQueueSide) publisher(ctx context.Context, subject string) (queuePublisher, error) {
	nc, err := j.connect(ctx, "bench queue publisher")
	if err != nil {
		return nil, err
	}
	p := &jsPublisher{nc: nc, subject: subject, inbox: nc.NewInbox(), waiting: map[string]chan *switchboard.Msg{}}
	p.sub, err = nc.Subscribe(p.inbox+".*", func(m *switchboard.Msg) {
		p.mu.Lock()
		ch := p.waiting[m.Subject]
		delete(p.waiting, m.Subject)
		p.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := nc.Flush(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	return p, nil
}

// jsPubAck checks a JetStream publish acknowledgement.
func jsPubAck(m *switchboard.Msg) error {
	var a struct {
		Stream string   `json:"stream"`
		Seq    uint64   `json:"seq"`
		Error  *jsError `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return fmt.Errorf("publish ack %q: %w", m.Data, err)
	}
	if a.Error != nil {
		return fmt.Errorf("publish: %s", a.Error.Description)
	}
	if a.Stream == "" || a.Seq == 0 {
		return fmt.Errorf("publish ack %q: no stream or sequence", m.Data)
	}
	return nil
}

func (p *jsPublisher) async(data []byte) (func(context.Context) error, error) {
	ch := make(chan *switchboard.Msg, 1)
	p.mu.Lock()
	p.next++
	reply := p.inbox + "." + strconv.FormatUint(p.next, 36)
	p.waiting[reply] = ch
	p.mu.Unlock()
	if err := p.nc.PublishRequest(p.subject, reply, data); err != nil {
		p.mu.Lock()
		delete(p.waiting, reply)
		p.mu.Unlock()
		return nil, err
	}
	return func(ctx context.Context) error {
		select {
		case m := <-ch:
			return jsPubAck(m)
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil
}

func (p *jsPublisher) sync(ctx context.Context, data []byte) error {
	m, err := p.nc.Request(ctx, p.subject, data)
	if err != nil {
		return err
	}
	return jsPubAck(m)
}

func (p *jsPublisher) close() { p.nc.Close() }

// jsConsumerConn pulls with $JS.API.CONSUMER.MSG.NEXT and acks with a
// request to each message's reply subject (JetStream's double ack: the
// answer comes once the ack is stored).
type jsConsumerConn struct {
	nc    *switchboard.Conn
	inbox string
	sub   *switchboard.Subscription
}

func (j *jsQueueSide) consumer(ctx context.Context) (queueConsumer, error) {
	nc, err := j.connect(ctx, "bench queue consumer")
	if err != nil {
		return nil, err
	}
	c := &jsConsumerConn{nc: nc, inbox: nc.NewInbox()}
	if c.sub, err = nc.SubscribeSync(c.inbox); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// fetch asks for up to batch messages without waiting and collects them
// until the batch is full or the server ends the request with a status
// message (404 No Messages, 408 Request Timeout).
func (c *jsConsumerConn) fetch(ctx context.Context, batch int) ([]func(context.Context) error, error) {
	req, _ := json.Marshal(map[string]any{"batch": batch, "no_wait": true})
	if err := c.nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT."+jsStream+"."+jsConsumer, c.inbox, req); err != nil {
		return nil, err
	}
	var acks []func(context.Context) error
	for len(acks) < batch {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		m, err := c.sub.NextMsg(wctx)
		cancel()
		if err != nil {
			return acks, err
		}
		if st := m.Header.Get(switchboard.StatusHeader); st != "" {
			if st == "404" || st == "408" {
				break
			}
			return acks, fmt.Errorf("pull: status %s %s", st, m.Header.Get(switchboard.DescriptionHeader))
		}
		reply := m.Reply
		acks = append(acks, func(ctx context.Context) error {
			_, err := c.nc.Request(ctx, reply, []byte("+ACK"))
			return err
		})
	}
	return acks, nil
}

func (c *jsConsumerConn) close() { c.nc.Close() }

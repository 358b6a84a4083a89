// Command queueclient is the publisher and consumer processes of the
// durable-queue crash tests (queue_proc_test.go). It prints one JSON event
// a line on stdout, each with a single write, so that what a process
// printed before it was killed is all there is to read:
//
//	queueclient pub -subject S -from N -count C   publish the numbers read from
//	    stdin, then N, N+1, ... N+C-1, each with Msg-Id "m<number>"; events
//	    "pub" (about to publish) and "ack" (the hub's acknowledgement came).
//	    With -size, each payload is the number, a space and a pattern
//	    derived from the number, -size bytes in all.
//	queueclient consume -queue Q [-ack] [-drain] [-hold]   fetch and print
//	    each message ("got"); with -ack acknowledge it ("acked" once the hub
//	    confirmed); with -hold never answer and wait to be killed; with
//	    -drain stop once the queue has nothing more to give. A payload
//	    "<number> <pattern>" is checked and printed as its number and size.
//
// It connects to $SWITCHBOARD_URL without reconnecting: when the hub goes
// away it prints an "end" event and exits 1.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	"switchboard"
)

// event is one line of output.
type event struct {
	Ev        string              `json:"ev"`
	N         int64               `json:"n,omitempty"`
	Seq       uint64              `json:"seq,omitempty"`
	Dup       bool                `json:"dup,omitempty"`
	Delivered int                 `json:"delivered,omitempty"`
	Data      string              `json:"data,omitempty"`
	Size      int                 `json:"size,omitempty"`
	Header    map[string][]string `json:"header,omitempty"`
	Err       string              `json:"err,omitempty"`
}

var outMu sync.Mutex

func emit(e event) {
	b, _ := json.Marshal(e)
	outMu.Lock()
	os.Stdout.Write(append(b, '\n'))
	outMu.Unlock()
}

func fail(err error) {
	emit(event{Ev: "end", Err: err.Error()})
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: queueclient pub|consume [flags]")
		os.Exit(2)
	}
	ctx := context.Background()
	nc, err := switchboard.Connect(ctx, "", &switchboard.Options{Name: "queueclient " + os.Args[1], NoReconnect: true})
	if err != nil {
		fail(err)
	}
	defer nc.Close()
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	switch os.Args[1] {
	case "pub":
		subject := fs.String("subject", "", "subject a queue binds")
		from := fs.Int64("from", 0, "first fresh number")
		count := fs.Int64("count", 0, "fresh numbers to publish after those read from stdin")
		window := fs.Int("window", 16, "publishes in flight")
		size := fs.Int("size", 0, "payload size (0: the number alone)")
		fs.Parse(os.Args[2:])
		publish(ctx, nc, *subject, *from, *count, *window, *size)
	case "consume":
		q := fs.String("queue", "", "queue")
		consumer := fs.String("consumer", "default", "pull consumer")
		batch := fs.Int("batch", 16, "messages a fetch")
		ack := fs.Bool("ack", false, "acknowledge every message")
		hold := fs.Bool("hold", false, "never answer: wait to be killed")
		drain := fs.Bool("drain", false, "exit 0 once a fetch finds nothing")
		maxMsgs := fs.Int("max", 0, "stop fetching after this many messages (0: no limit)")
		expires := fs.Duration("expires", time.Second, "how long a fetch waits")
		fs.Parse(os.Args[2:])
		consume(ctx, nc, *q, *consumer, *batch, *ack, *hold, *drain, *maxMsgs, *expires)
	default:
		fmt.Fprintln(os.Stderr, "queueclient: unknown command", os.Args[1])
		os.Exit(2)
	}
	emit(event{Ev: "done"})
}

// publish publishes the numbers from stdin, then the fresh ones, keeping
// window acknowledgements outstanding.
func publish(ctx context.Context, nc *switchboard.Conn, subject string, from, count int64, window, size int) {
	type pending struct {
		n int64
		f *switchboard.AckFuture
	}
	var inflight []pending
	settle := func() {
		p := inflight[0]
		inflight = inflight[1:]
		a, err := p.f.Wait(ctx)
		if err != nil {
			fail(fmt.Errorf("ack of %d: %w", p.n, err))
		}
		emit(event{Ev: "ack", N: p.n, Seq: a.Seq, Dup: a.Duplicate})
	}
	send := func(n int64) {
		emit(event{Ev: "pub", N: n})
		s := strconv.FormatInt(n, 10)
		data := []byte(s)
		if size > len(s)+1 {
			data = append(data, ' ')
			data = appendPattern(data, n, size-len(data))
		}
		f, err := nc.PublishDurableAsync(subject, data, &switchboard.DurableOpts{MsgID: "m" + s})
		if err != nil {
			fail(fmt.Errorf("publish %d: %w", n, err))
		}
		inflight = append(inflight, pending{n, f})
		if len(inflight) >= window {
			settle()
		}
	}
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		n, err := strconv.ParseInt(sc.Text(), 10, 64)
		if err != nil {
			fail(fmt.Errorf("stdin: %w", err))
		}
		send(n)
	}
	for n := from; n < from+count; n++ {
		send(n)
	}
	for len(inflight) > 0 {
		settle()
	}
}

// consume fetches until the connection ends (or, with drain, the queue is
// empty; with maxMsgs, that many messages came).
func consume(ctx context.Context, nc *switchboard.Conn, q, consumer string, batch int, ack, hold, drain bool, maxMsgs int, expires time.Duration) {
	got := 0
	for maxMsgs == 0 || got < maxMsgs {
		n := batch
		if maxMsgs > 0 {
			n = min(n, maxMsgs-got)
		}
		msgs, err := nc.Fetch(ctx, q, consumer, n, &switchboard.FetchOpts{Expires: expires, NoWait: drain})
		if err != nil {
			fail(fmt.Errorf("fetch: %w", err))
		}
		if drain && len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			e := event{Ev: "got", Seq: m.Seq, Delivered: m.Delivered, Data: string(m.Data), Size: len(m.Data), Header: m.Header}
			if num, rest, ok := bytes.Cut(m.Data, []byte(" ")); ok {
				e.Data = string(num)
				n, err := strconv.ParseInt(e.Data, 10, 64)
				if err != nil || !bytes.Equal(rest, appendPattern(nil, n, len(rest))) {
					e.Err = "corrupt payload"
				}
			}
			emit(e)
		}
		got += len(msgs)
		if !ack {
			continue
		}
		// Acknowledge the batch concurrently: several acks in flight when
		// the hub dies.
		var wg sync.WaitGroup
		errs := make(chan error, len(msgs))
		for _, m := range msgs {
			wg.Go(func() {
				if err := m.Ack(ctx); err != nil {
					errs <- fmt.Errorf("ack of %d: %w", m.Seq, err)
					return
				}
				emit(event{Ev: "acked", Seq: m.Seq})
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			fail(err)
		}
	}
	if hold {
		emit(event{Ev: "holding"})
		time.Sleep(time.Hour) // until killed
		fail(fmt.Errorf("held for an hour"))
	}
}

// appendPattern appends k bytes derived from n.
func appendPattern(b []byte, n int64, k int) []byte {
	for i := range k {
		b = append(b, 'a'+byte((n+int64(i))%26))
	}
	return b
}

package switchboard_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"switchboard"
	"switchboard/auth"
	"switchboard/hub"
	"switchboard/internal/proctest"
	"switchboard/internal/protocol"
)

// Shared-memory tests: a hub in this process on a unix socket and TCP;
// clients on the unix socket get rings, the others the socket.

type shmHub struct {
	h          *hub.Hub
	unix, tcp  string
	socketPath string
}

func startShmHub(t *testing.T, maxPayload int) *shmHub { return startShmHubTB(t, maxPayload) }

func startShmHubB(b *testing.B) *shmHub { return startShmHubTB(b, 1<<20) }

func connB(b *testing.B, url string, o *switchboard.Options) *switchboard.Conn {
	return shmConnectTB(b, url, o)
}

func startShmHubTB(t testing.TB, maxPayload int) *shmHub {
	t.Helper()
	if useNATS {
		t.Skip("shared memory is the hub's")
	}
	sh, _ := startLocalHub(t, hub.Config{MaxPayload: maxPayload})
	return sh
}

// startLocalHub runs a hub in this process with the open policy on a unix
// socket (in a short temporary path) and TCP; stop (also run at cleanup)
// closes it, so a test can start another on the same DataDir.
func startLocalHub(t testing.TB, cfg hub.Config) (sh *shmHub, stop func()) {
	t.Helper()
	dir, err := os.MkdirTemp("", "sbhub")
	if err != nil {
		t.Fatal(err)
	}
	pol, err := auth.Parse("open", []byte(proctest.OpenPolicy))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Policy = pol
	h, err := hub.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "hub.sock")
	ul, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Serve(context.Background(), ul, tl) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			h.Close()
			<-done
			os.RemoveAll(dir)
		})
	}
	t.Cleanup(stop)
	return &shmHub{h: h, unix: "unix://" + sock, tcp: "tcp://" + tl.Addr().String(), socketPath: sock}, stop
}

func shmConnect(t *testing.T, url string, o *switchboard.Options) *switchboard.Conn {
	return shmConnectTB(t, url, o)
}

func shmConnectTB(t testing.TB, url string, o *switchboard.Options) *switchboard.Conn {
	t.Helper()
	if o == nil {
		o = &switchboard.Options{}
	}
	o.NoReconnect = true
	nc, err := switchboard.Connect(context.Background(), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// ringPair returns a subscriber's Conn (with options subOpts), a
// publisher's, and a SubscribeSync subscription on subj whose messages
// from that publisher go through a ring: it publishes and reads until
// the publisher writes into a ring, and everything written was read.
func ringPair(tb testing.TB, url, subj string, subOpts *switchboard.Options) (*switchboard.Conn, *switchboard.Conn, *switchboard.Subscription) {
	tb.Helper()
	sub := shmConnectTB(tb, url, subOpts)
	pub := shmConnectTB(tb, url, nil)
	s, err := sub.SubscribeSync(subj)
	if err != nil {
		tb.Fatal(err)
	}
	if err := sub.Flush(context.Background()); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := 0; switchboard.ShmWriting(pub) == 0; i++ {
		if i > 2000 {
			tb.Fatal("no ring handed out")
		}
		if err := pub.Publish(subj, []byte("warm")); err != nil {
			tb.Fatal(err)
		}
		if _, err := s.NextMsg(ctx); err != nil {
			tb.Fatal(err)
		}
	}
	return sub, pub, s
}

func openFds(t *testing.T) int {
	t.Helper()
	es, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(es)
}

// readSeq reads n messages numbered 0..n-1 in order from sub.
func readSeq(sub *switchboard.Subscription, n int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range n {
		m, err := sub.NextMsg(ctx)
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if got := binary.LittleEndian.Uint64(m.Data); got != uint64(i) || m.Subject != sub.Subject {
			return fmt.Errorf("message %d is %d on %q", i, got, m.Subject)
		}
	}
	return nil
}

func TestShmPubSubMixedSubscribers(t *testing.T) {
	before := openFds(t)
	sh := startShmHub(t, 1<<20)
	const n = 3000
	func() {
		subShm := shmConnect(t, sh.unix, nil)
		subSock := shmConnect(t, sh.unix, &switchboard.Options{NoSharedMemory: true})
		subTCP := shmConnect(t, sh.tcp, nil)
		pub := shmConnect(t, sh.unix, nil)
		var subs []*switchboard.Subscription
		for _, nc := range []*switchboard.Conn{subShm, subSock, subTCP} {
			s, err := nc.SubscribeSync("frames")
			if err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, s)
		}
		// A SubscribeSync subscription reads its rings in NextMsg, and a
		// blocking one holds the publisher back: read while publishing.
		names := []string{"shm subscriber", "socket subscriber", "TCP subscriber"}
		errs := make(chan error, len(subs))
		for i, s := range subs {
			go func() {
				if err := readSeq(s, n); err != nil {
					errs <- fmt.Errorf("%s: %w", names[i], err)
					return
				}
				errs <- nil
			}()
		}
		buf := make([]byte, 64)
		for i := range n {
			binary.LittleEndian.PutUint64(buf, uint64(i))
			if err := pub.Publish("frames", buf); err != nil {
				t.Fatal(err)
			}
			if i == 10 {
				// Let the hub's offer arrive, so the rest goes by ring.
				waitFor(t, "a ring", func() bool { return switchboard.ShmWriting(pub) > 0 })
			}
		}
		for range subs {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if switchboard.ShmOut(pub) == 0 {
			t.Fatal("nothing was published into shared memory")
		}
		if st := sh.h.Stats(); st.ShmRings != 1 {
			t.Fatalf("hub has %d rings, want 1", st.ShmRings)
		}
		t.Logf("%d of %d messages went through the ring", switchboard.ShmOut(pub), n)
		if st := pub.Stats(); st.OutMsgs != n {
			t.Errorf("Stats().OutMsgs = %d, want %d (socket and ring together)", st.OutMsgs, n)
		}
		pub.Close()
		waitFor(t, "the ring reclaimed", func() bool { return sh.h.Stats().ShmRings == 0 })
	}()
	sh.h.Close()
	waitFor(t, "descriptors closed", func() bool { return openFds(t) <= before+1 })
}

func TestShmRequestReply(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	resp := shmConnect(t, sh.unix, nil)
	req := shmConnect(t, sh.unix, nil)
	if _, err := resp.Subscribe("svc.echo", func(m *switchboard.Msg) { m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	if err := resp.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 500 {
		p := fmt.Appendf(nil, "req %d", i)
		m, err := req.Request(ctx, "svc.echo", p)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(m.Data) != string(p) {
			t.Fatalf("request %d: reply %q", i, m.Data)
		}
	}
	if switchboard.ShmOut(req) == 0 || switchboard.ShmOut(resp) == 0 {
		t.Fatalf("requests by ring %d, replies by ring %d: want both", switchboard.ShmOut(req), switchboard.ShmOut(resp))
	}
	t.Logf("requests by ring %d, replies by ring %d of 500", switchboard.ShmOut(req), switchboard.ShmOut(resp))
}

func TestShmLargeLoanSend(t *testing.T) {
	sh := startShmHub(t, 8<<20)
	sub := shmConnect(t, sh.unix, nil)
	pc := shmConnect(t, sh.unix, nil)
	s, err := sub.SubscribeSync("video.frames")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pub, err := pc.NewPublisher(ctx, "video.frames", &switchboard.RingOptions{Slots: 4, SlotSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Shared() {
		t.Fatal("the publisher did not get a ring")
	}
	const size = 4 << 20
	for i := range 20 {
		buf, err := pub.Loan(size)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < size; j += 4096 {
			buf[j] = byte(i + j/4096)
		}
		if err := pub.Send(size); err != nil {
			t.Fatal(err)
		}
		// Even frames by NextMsg (a copy), odd ones by NextView (in place).
		var data []byte
		var v *switchboard.View
		if i%2 == 0 {
			m, err := s.NextMsg(ctx)
			if err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			data = m.Data
		} else {
			if v, err = s.NextView(ctx); err != nil {
				t.Fatalf("frame %d: %v", i, err)
			}
			data = v.Data
		}
		if len(data) != size {
			t.Fatalf("frame %d: %d bytes", i, len(data))
		}
		for j := 0; j < size; j += 4096 {
			if data[j] != byte(i+j/4096) {
				t.Fatalf("frame %d: byte %d is %d", i, j, data[j])
			}
		}
		if v != nil && !v.Release() {
			t.Fatalf("frame %d: the view was overwritten, with a blocking subscriber", i)
		}
	}
}

// TestShmLateSubscriberInOrder: a subscriber that joins while the
// publisher streams into a ring gets the forwarder's messages over the
// socket until it is attached, then the ring: in order, none twice, none
// lost.
func TestShmLateSubscriberInOrder(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	first := shmConnect(t, sh.unix, nil)
	pub := shmConnect(t, sh.unix, nil)
	fs, err := first.SubscribeSync("ticks")
	if err != nil {
		t.Fatal(err)
	}
	first.Flush(context.Background())
	stop := make(chan struct{})
	published := make(chan uint64, 1)
	go func() {
		buf := make([]byte, 8)
		var i uint64
		defer func() { published <- i }()
		for ; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			binary.LittleEndian.PutUint64(buf, i)
			if err := pub.Publish("ticks", buf); err != nil {
				return
			}
		}
	}()
	go func() { // keep the first subscriber reading: it blocks the publisher
		for {
			// Before the ring is ready the publisher floods the socket, and
			// this subscriber may drop some of that (ErrSlowConsumer, once):
			// read on. Returning here left the publisher blocked on its
			// cursor until the block timeout (5 s), and the late subscriber
			// sometimes never got its ring.
			_, err := fs.NextMsg(context.Background())
			if err != nil && !errors.Is(err, switchboard.ErrSlowConsumer) {
				return
			}
		}
	}()
	waitFor(t, "a ring", func() bool { return switchboard.ShmOut(pub) > 1000 })
	late := shmConnect(t, sh.unix, nil)
	ls, err := late.SubscribeSync("ticks")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	m, err := ls.NextMsg(ctx)
	if err != nil {
		t.Fatal(err)
	}
	prev := binary.LittleEndian.Uint64(m.Data)
	for range 20000 {
		m, err := ls.NextMsg(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got := binary.LittleEndian.Uint64(m.Data)
		if got != prev+1 {
			t.Fatalf("late subscriber: %d after %d (dropped %d)", got, prev, ls.Dropped())
		}
		prev = got
	}
	r, err := late.Request(ctx, "$SB.SHM.LIST", nil)
	if err != nil {
		t.Fatal(err)
	}
	var chans []protocol.ShmChannel
	if err := json.Unmarshal(r.Data, &chans); err != nil || len(chans) != 1 || len(chans[0].Readers) != 2 {
		t.Fatalf("the late subscriber is not reading the ring: %v %s", err, r.Data)
	}
	// It stops reading: unsubscribed, it no longer holds the publisher back.
	ls.Unsubscribe()
	close(stop)
	t.Logf("late subscriber read from %d to %d in order; %d published", prev-20000, prev, <-published)
}

// TestShmForwarderStartsAtTheEnd: a socket subscriber that arrives after a
// ring carried messages gets only what is published after it subscribed,
// not the ring's history.
func TestShmForwarderStartsAtTheEnd(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	a := shmConnect(t, sh.unix, nil)
	pub := shmConnect(t, sh.unix, nil)
	as, err := a.SubscribeSync("hist")
	if err != nil {
		t.Fatal(err)
	}
	a.Flush(context.Background())
	buf := make([]byte, 8)
	for i := range 50 { // fewer than the ring holds: A reads afterwards
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := pub.Publish("hist", buf); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitFor(t, "a ring", func() bool { return switchboard.ShmWriting(pub) > 0 })
		}
	}
	if err := readSeq(as, 50); err != nil {
		t.Fatal(err)
	}
	if switchboard.ShmOut(pub) == 0 {
		t.Fatal("nothing went through the ring")
	}
	b := shmConnect(t, sh.unix, &switchboard.Options{NoSharedMemory: true})
	bs, err := b.SubscribeSync("hist")
	if err != nil {
		t.Fatal(err)
	}
	b.Flush(context.Background())
	if err := pub.Publish("hist", []byte("new")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := bs.NextMsg(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "new" {
		t.Fatalf("the late socket subscriber got %x first, from before it subscribed", m.Data)
	}
}

// TestShmManySubscribers: a ring's first readers are more than one control
// message could carry descriptors for; all of them get every message.
func TestShmManySubscribers(t *testing.T) {
	sh := startShmHub(t, 1<<20)
	var subs []*switchboard.Subscription
	for range 20 {
		nc := shmConnect(t, sh.unix, nil)
		s, err := nc.SubscribeSync("fan")
		if err != nil {
			t.Fatal(err)
		}
		nc.Flush(context.Background())
		subs = append(subs, s)
	}
	pub := shmConnect(t, sh.unix, &switchboard.Options{ErrorHandler: func(_ *switchboard.Conn, _ *switchboard.Subscription, err error) {
		t.Errorf("publisher: %v", err)
	}})
	const n = 200
	errs := make(chan error, len(subs))
	for _, s := range subs {
		go func() { errs <- readSeq(s, n) }()
	}
	buf := make([]byte, 8)
	for i := range n {
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := pub.Publish("fan", buf); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitFor(t, "a ring", func() bool { return switchboard.ShmWriting(pub) > 0 })
		}
	}
	for range subs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if switchboard.ShmOut(pub) == 0 {
		t.Fatal("nothing went through the ring")
	}
}

package switchboard_test

// The examples that talk to a hub assume one is running at the default
// URL ($SWITCHBOARD_URL, or the default unix socket; start one with
// `switchboard serve`). They have no Output comment, so `go test` only
// compiles them.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"switchboard"
)

// Example connects to the hub, serves a subject and calls it. Like the
// other examples that talk to a hub, it assumes one is running at the
// default URL, so it is compiled but not run by go test.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	// "" means $SWITCHBOARD_URL or the hub's default unix socket.
	nc, err := switchboard.Connect(ctx, "", &switchboard.Options{Name: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	// A service...
	nc.Subscribe("greet.*", func(m *switchboard.Msg) {
		m.Respond([]byte("hello, " + m.Subject[len("greet."):]))
	})
	// ...and a client.
	reply, err := nc.Request(ctx, "greet.joe", nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(reply.Data))

	// Let in-flight messages finish, then close.
	nc.Drain(ctx)
}

// ExampleConnect connects with handlers for connection events. It assumes
// a running hub.
func ExampleConnect() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := switchboard.Connect(ctx, "unix:///run/user/1000/switchboard.sock", &switchboard.Options{
		Name: "worker-7",
		ErrorHandler: func(_ *switchboard.Conn, sub *switchboard.Subscription, err error) {
			log.Printf("switchboard: %v", err)
		},
		DisconnectHandler: func(_ *switchboard.Conn, err error) { log.Printf("disconnected: %v", err) },
		ReconnectHandler:  func(nc *switchboard.Conn) { log.Printf("reconnected to %s", nc.ConnectedURL()) },
	})
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	fmt.Println("connected:", nc.IsConnected(), "max payload:", nc.MaxPayload())
}

// ExampleConn_Subscribe subscribes with a wildcard and publishes to it. It
// assumes a running hub.
func ExampleConn_Subscribe() {
	ctx := context.Background()
	nc, err := switchboard.Connect(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	sub, err := nc.Subscribe("sensors.>", func(m *switchboard.Msg) {
		fmt.Printf("%s: %s\n", m.Subject, m.Data)
	})
	if err != nil {
		log.Fatal(err)
	}
	nc.Flush(ctx) // the hub has the subscription now

	nc.Publish("sensors.kitchen.temp", []byte("21.5"))
	nc.Flush(ctx)
	sub.Drain(ctx) // deliver what arrived, then stop
}

// ExampleConn_Publish publishes with and without headers. It assumes a
// running hub.
func ExampleConn_Publish() {
	nc, err := switchboard.Connect(context.Background(), "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	h := switchboard.Header{}
	h.Set("Content-Type", "application/json")
	nc.PublishMsg(&switchboard.Msg{Subject: "orders.new", Header: h, Data: []byte(`{"id":1}`)})
	nc.Publish("orders.count", []byte("1"))
}

// ExampleConn_Request shows request/reply and the errors worth telling
// apart. It assumes a running hub.
func ExampleConn_Request() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	nc, err := switchboard.Connect(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	// The responder: any process on the hub.
	nc.Subscribe("db.query", func(m *switchboard.Msg) {
		m.Respond([]byte("42 rows"))
	})

	reply, err := nc.Request(ctx, "db.query", []byte("SELECT ..."))
	switch {
	case errors.Is(err, switchboard.ErrNoResponders):
		fmt.Println("no database running")
	case errors.Is(err, switchboard.ErrTimeout):
		fmt.Println("database too slow")
	case err != nil:
		log.Fatal(err)
	default:
		fmt.Println(string(reply.Data))
	}
}

// ExampleConn_QueueSubscribe spreads work over a queue group. It assumes a
// running hub.
func ExampleConn_QueueSubscribe() {
	nc, err := switchboard.Connect(context.Background(), "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	// Start this in several processes: each job goes to one of them.
	nc.QueueSubscribe("jobs.backup", "backup-workers", func(m *switchboard.Msg) {
		fmt.Printf("backing up %s\n", m.Data)
		m.Respond([]byte("done"))
	})
	select {} // serve forever
}

// ExampleConn_ChanSubscribe receives on a channel. It assumes a running
// hub.
func ExampleConn_ChanSubscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := switchboard.Connect(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	ch := make(chan *switchboard.Msg, 256) // full channel = dropped messages
	sub, err := nc.ChanSubscribe("events.>", ch)
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Unsubscribe()
	for {
		select {
		case m := <-ch:
			fmt.Printf("%s: %s\n", m.Subject, m.Data)
		case <-ctx.Done():
			return
		}
	}
}

// ExampleSubscription_NextMsg waits for one message. It assumes a running
// hub.
func ExampleSubscription_NextMsg() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := switchboard.Connect(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	sub, _ := nc.SubscribeSync("updates")
	m, err := sub.NextMsg(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(m.Data))
}

// ExampleConnect_tls connects over mutual TLS: the hub's certificate must
// chain to ca.pem, and the client presents client.pem. Against a hub with
// token authentication, the token goes in the same Options.
func ExampleConnect_tls() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	cfg, err := switchboard.TLSClientConfig("ca.pem", "client.pem", "client-key.pem")
	if err != nil {
		log.Fatal(err)
	}
	nc, err := switchboard.Connect(ctx, "tls://hub.example:4222", &switchboard.Options{
		TLSConfig: cfg,
		Token:     os.Getenv("SWITCHBOARD_TOKEN"), // "" sends none
	})
	if errors.Is(err, switchboard.ErrTLS) {
		log.Fatalf("TLS: %v", err) // the text has the x509 reason
	}
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	fmt.Println("connected to", nc.ConnectedURL())
}

func ExampleParseURL() {
	for _, u := range []string{"unix:///run/switchboard.sock", "nats://localhost", "10.0.0.5:4222"} {
		network, addr, err := switchboard.ParseURL(u)
		fmt.Println(network, addr, err)
	}
	// Output:
	// unix /run/switchboard.sock <nil>
	// tcp localhost:4222 <nil>
	// tcp 10.0.0.5:4222 <nil>
}

func ExampleHeader() {
	h := switchboard.Header{}
	h.Set("Trace-Id", "abc")
	h.Add("Tag", "a")
	h.Add("Tag", "b")
	fmt.Println(h.Get("Trace-Id"), h.Values("Tag"), h.Get("trace-id") == "")
	// Output: abc [a b] true
}

// ExampleConn_NewPublisher writes large messages straight into a
// shared-memory ring: Loan returns the ring's slot, Send publishes it.
// Without shared memory (a TCP connection, say) the same calls go over
// the socket.
func ExampleConn_NewPublisher() {
	ctx := context.Background()
	nc, err := switchboard.Connect(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	pub, err := nc.NewPublisher(ctx, "video.frames", &switchboard.RingOptions{Slots: 4, SlotSize: 4 << 20})
	if err != nil {
		log.Fatal(err) // the policy does not let this process publish there
	}
	for frame := 0; frame < 100; frame++ {
		buf, err := pub.Loan(4 << 20)
		if err != nil {
			log.Fatal(err)
		}
		buf[0] = byte(frame) // render into buf
		if err := pub.Send(len(buf)); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("through shared memory:", pub.Shared())
}

// ExampleSubscription_NextView reads messages in place: a message that
// came through a shared-memory ring is not copied, and is only valid
// until Release, which says whether it was intact all along.
func ExampleSubscription_NextView() {
	ctx := context.Background()
	nc, err := switchboard.Connect(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	sub, err := nc.SubscribeSync("video.frames")
	if err != nil {
		log.Fatal(err)
	}
	for {
		v, err := sub.NextView(ctx)
		if err != nil {
			log.Fatal(err)
		}
		first := v.Data[0] // read what you need...
		if !v.Release() {  // ...and use it only if it was not overwritten
			continue
		}
		fmt.Println("frame", first)
	}
}

// ExampleSubscription_NextViews reads a stream of ticks in batches: one
// call takes whatever the ring holds, up to 256 messages, and pays the
// subscription's locks and spin once for all of them.
func ExampleSubscription_NextViews() {
	ctx := context.Background()
	nc, err := switchboard.Connect(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	sub, err := nc.SubscribeSync("market.ticks")
	if err != nil {
		log.Fatal(err)
	}
	var sum uint64
	for {
		n, err := sub.NextViews(ctx, 256, func(v *switchboard.View) {
			if len(v.Data) < 8 {
				return
			}
			price := binary.LittleEndian.Uint64(v.Data) // read what you need...
			if v.Release() {                            // ...and use it only if it was not overwritten
				sum += price
			}
		})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(n, "ticks, sum", sum)
	}
}

// ExampleConn_PublishDurable stores a job in a durable queue: the call
// returns once the hub has fsynced it.
func ExampleConn_PublishDurable() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nc, err := switchboard.Connect(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	_, err = nc.CreateQueue(ctx, switchboard.QueueConfig{Name: "jobs", MaxDeliver: 5})
	if err != nil && !errors.Is(err, switchboard.ErrQueueExists) {
		log.Fatal(err)
	}
	ack, err := nc.PublishDurable(ctx, "jobs", []byte("backup /home"), &switchboard.DurableOpts{MsgID: "home-nightly"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("stored as %s #%d (duplicate: %v)\n", ack.Queue, ack.Seq, ack.Duplicate)
}

// ExampleConn_Fetch takes jobs from a durable queue and acknowledges each
// once it is done; a job that fails is given back for a later retry.
func ExampleConn_Fetch() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, err := switchboard.Connect(ctx, "", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	msgs, err := nc.Fetch(ctx, "jobs", "default", 10, &switchboard.FetchOpts{Expires: 2 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range msgs {
		if err := os.WriteFile(os.DevNull, m.Data, 0o600); err != nil { // the work
			m.Nak(ctx, time.Minute)
			continue
		}
		if err := m.Ack(ctx); err != nil {
			log.Printf("job %d: %v (it will be delivered again)", m.Seq, err)
		}
	}
}

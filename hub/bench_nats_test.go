package hub

import (
	"net"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// natsTransport starts nats-server in-process as the reference peer for
// the raw benchmarks (TCP only: nats-server has no unix socket listener).
func natsTransport(b *testing.B) transport {
	b.Helper()
	s, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		b.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		b.Fatal("nats-server not ready")
	}
	b.Cleanup(s.Shutdown)
	addr := s.Addr().String()
	return transport{name: "nats-tcp", dial: func() (net.Conn, error) { return net.Dial("tcp", addr) }}
}

// BenchmarkNATSPubSub and BenchmarkNATSRequestReply run the raw workloads
// of BenchmarkPubSub and BenchmarkRequestReply against nats-server, for a
// same-run comparison: go test -bench 'PubSub|RequestReply' ./hub
func BenchmarkNATSPubSub(b *testing.B) {
	benchPubSub(b, natsTransport(b), plainHello, plainHello)
}

func BenchmarkNATSRequestReply(b *testing.B) {
	benchRequestReply(b, natsTransport(b))
}

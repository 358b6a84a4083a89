package hub

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchConn is a raw protocol connection for benchmarks: no client library
// in the measurement, only the server and the sockets.
func benchConn(b *testing.B, tr transport, hello string) (net.Conn, *bufio.Reader) {
	b.Helper()
	nc, err := tr.dial()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	r := bufio.NewReaderSize(nc, 256<<10)
	if _, err := r.ReadString('\n'); err != nil { // INFO
		b.Fatal(err)
	}
	if _, err := io.WriteString(nc, hello+"PING\r\n"); err != nil {
		b.Fatal(err)
	}
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			b.Fatal(err)
		}
		if l == "PONG\r\n" {
			return nc, r
		}
	}
}

// plainHello is the CONNECT of a benchmark client without credentials.
const plainHello = "CONNECT {\"verbose\":false}\r\n"

// BenchmarkPubSub measures messages routed from one publisher connection to
// one subscriber connection, per transport and payload size.
func BenchmarkPubSub(b *testing.B) {
	th := startHub(b, Config{})
	for _, tr := range th.transports() {
		b.Run(tr.name, func(b *testing.B) { benchPubSub(b, tr, plainHello, plainHello) })
	}
}

// BenchmarkPubSubPolicy is BenchmarkPubSub/tcp with both ends restricted
// by the policy: every PUB is checked, and the subscriber's ">" overlaps a
// deny, so every delivery is checked too (the most the policy costs).
// Compare with BenchmarkPubSub/tcp in the same run.
func BenchmarkPubSubPolicy(b *testing.B) {
	th := startHub(b, Config{Policy: testPolicy(b, []string{"pub", "sub"}, `
[[rule]]
who = ["login:pub"]
allow_publish = ["bench", "other.>"]
deny_publish = ["secrets.>"]
[[rule]]
who = ["login:sub"]
allow_subscribe = [">"]
deny_subscribe = ["secrets.>"]
`)})
	login := func(u string) string {
		return fmt.Sprintf("CONNECT {\"verbose\":false,\"user\":%q,\"pass\":\"pw\"}\r\n", u)
	}
	benchPubSub(b, th.transports()[1], login("pub"), login("sub")+"SUB > 1\r\n")
}

func benchPubSub(b *testing.B, tr transport, pubHello, subHello string) {
	if !strings.Contains(subHello, "SUB ") {
		subHello += "SUB bench 1\r\n"
	}
	for _, size := range []int{16, 1024} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			_, sr := benchConn(b, tr, subHello)
			pc, _ := benchConn(b, tr, pubHello)
			frame := []byte(fmt.Sprintf("PUB bench %d\r\n%s\r\n", size, bytes.Repeat([]byte("x"), size)))
			msgLen := len(fmt.Sprintf("MSG bench 1 %d\r\n", size)) + size + 2
			batch := bytes.Repeat(frame, max(1, (64<<10)/len(frame)))
			perBatch := len(batch) / len(frame)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			done := make(chan error, 1)
			go func() {
				_, err := io.CopyN(io.Discard, sr, int64(msgLen)*int64(b.N))
				done <- err
			}()
			for sent := 0; sent < b.N; sent += perBatch {
				k := min(perBatch, b.N-sent)
				if _, err := pc.Write(batch[:k*len(frame)]); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkRequestReply measures one request/reply round trip through the
// hub: requester → hub → responder → hub → requester.
func BenchmarkRequestReply(b *testing.B) {
	th := startHub(b, Config{})
	for _, tr := range th.transports() {
		b.Run(tr.name, func(b *testing.B) { benchRequestReply(b, tr) })
	}
}

func benchRequestReply(b *testing.B, tr transport) {
	resp, rr := benchConn(b, tr, "CONNECT {\"verbose\":false}\r\nSUB svc 1\r\n")
	req, qr := benchConn(b, tr, "CONNECT {\"verbose\":false}\r\nSUB inbox 1\r\n")
	go func() {
		reply := []byte("PUB inbox 2\r\nok\r\n")
		for {
			if _, err := rr.ReadString('\n'); err != nil { // MSG svc 1 inbox 2
				return
			}
			if _, err := rr.Discard(4); err != nil { // "hi\r\n"
				return
			}
			if _, err := resp.Write(reply); err != nil {
				return
			}
		}
	}()
	frame := []byte("PUB svc inbox 2\r\nhi\r\n")
	lat := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if _, err := req.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := qr.ReadString('\n'); err != nil {
			b.Fatal(err)
		}
		if _, err := qr.Discard(4); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}

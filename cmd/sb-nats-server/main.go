// Command sb-nats-server runs nats-server as the comparison peer for
// `switchboard bench --vs-nats`. It lives in its own binary so that
// nats-server is never linked into the switchboard binary.
//
// Usage:
//
//	sb-nats-server [-addr 127.0.0.1:0] [-max-payload 1048576] [-max-pending 67108864]
//	               [-js-dir DIR [-sync-always]]
//
// With -js-dir, JetStream is enabled with file storage in DIR (for
// `switchboard bench queue --vs-nats`); -sync-always makes it fsync every
// write (the jetstream block's sync_interval: always), otherwise it syncs
// every 2 minutes (nats-server's default).
//
// Once the server accepts connections, the first line on stdout is the
// "host:port" it listens on (useful with port 0, which picks a free port).
// Logging is off. SIGTERM or SIGINT shuts the server down and exits 0.
//
// Build it next to switchboard so that bench finds it:
//
//	go build -o bin/sb-nats-server ./cmd/sb-nats-server
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	os.Exit(run())
}

func run() int {
	addr := flag.String("addr", "127.0.0.1:0", "TCP listen address host:port (port 0 picks a free port)")
	maxPayload := flag.Int("max-payload", 1<<20, "largest message payload in bytes")
	maxPending := flag.Int64("max-pending", 64<<20, "bytes pending for one connection before it is cut off as a slow consumer")
	maxConns := flag.Int("max-connections", 65536, "maximum concurrent connections")
	jsDir := flag.String("js-dir", "", "enable JetStream with its file storage in this directory")
	syncAlways := flag.Bool("sync-always", false, "with -js-dir: fsync every write (sync_interval: always); default: every 2 minutes")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "sb-nats-server: unexpected arguments:", flag.Args())
		return 2
	}

	host, portStr, err := net.SplitHostPort(*addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sb-nats-server: -addr %q is not host:port\n", *addr)
		return 2
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		fmt.Fprintf(os.Stderr, "sb-nats-server: -addr %q: bad port\n", *addr)
		return 2
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as "the default 4222"
	}
	if *maxPayload <= 0 || *maxPayload > 64<<20 {
		fmt.Fprintf(os.Stderr, "sb-nats-server: -max-payload %d out of range 1..%d\n", *maxPayload, 64<<20)
		return 2
	}

	opts := &server.Options{
		Host:       host,
		Port:       port,
		MaxPayload: int32(*maxPayload),
		MaxPending: *maxPending,
		MaxConn:    *maxConns,
		NoLog:      true,
		NoSigs:     true,
	}
	if *jsDir != "" {
		opts.JetStream = true
		opts.StoreDir = *jsDir
		opts.SyncAlways = *syncAlways
	} else if *syncAlways {
		fmt.Fprintln(os.Stderr, "sb-nats-server: -sync-always needs -js-dir")
		return 2
	}
	s, err := server.NewServer(opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sb-nats-server:", err)
		return 2
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		fmt.Fprintln(os.Stderr, "sb-nats-server: not ready after 10s")
		s.Shutdown()
		return 1
	}
	a := s.Addr()
	if a == nil {
		fmt.Fprintln(os.Stderr, "sb-nats-server: no listener")
		s.Shutdown()
		return 1
	}
	fmt.Println(a.String())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.WaitForShutdown(); close(done) }()
	select {
	case <-sig:
		s.Shutdown()
		<-done
		return 0
	case <-done:
		fmt.Fprintln(os.Stderr, "sb-nats-server: server stopped")
		return 1
	}
}

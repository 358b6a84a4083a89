package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// benchSettings are the flags of `switchboard bench` and its subcommands.
type benchSettings struct {
	sizes      []int
	transports []string // hub transports: "unix", "tcp"
	msgs       int
	maxBytes   int64
	duration   time.Duration
	requests   int
	warmup     int
	subs       int
	rounds     int
	window     int64
	timeout    time.Duration
	stall      time.Duration
	vsNATS     bool
	natsServer string
	json       bool
	conns      int // bench conns --n
}

// The workloads `bench` runs, in order.
var benchWorkloads = []string{"pub", "pubsub", "fanout", "reqrep"}

const benchLong = `Measure the hub, optionally against nats-server.

bench starts its own hub as a separate process (this executable re-run as
"serve" on a temporary unix socket and a free TCP port; --server is not used)
and drives it through the Go client, one connection per role:

  pub     one publisher, no subscribers: publish, then Flush
  pubsub  one publisher, one subscriber: first publish until the last receipt
  fanout  one publisher, --subs subscribers: deliveries/s and publish rate
  reqrep  one responder, one requester doing sequential round trips:
          latency p50/p99/p99.9 over every sample, and round trips/s
  conns   N idle connections: the server's RSS before and after

"bench" alone runs pub, pubsub, fanout and reqrep. With --vs-nats the same
workloads also run against nats-server (TCP only), started from the
sb-nats-server binary (go build -o bin/sb-nats-server ./cmd/sb-nats-server);
runs alternate hub and nats-server --rounds times and the median of each is
reported with the ratio hub/nats (throughput: msgs/s; latency: p50).

A run publishes min(--msgs, --max-bytes/size) messages or stops publishing
after --duration, whichever comes first; every subscriber must then receive
exactly what was published, in order, or the bench fails with exit code 1.
Subscribers let the publisher run at most --window bytes ahead of the slowest
of them, so that neither server cuts a subscriber off as a slow consumer.

The defaults take about 2-3 minutes with --vs-nats on 2 cores. For longer,
steadier runs: --duration 5s --msgs 10000000 --requests 100000 --rounds 5.
Progress goes to stderr; results (text, or one JSON document with --json)
to stdout.`

func newBench() *cobra.Command {
	s := &benchSettings{}
	var sizes, transports, maxBytes, window string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure the hub (and nats-server with --vs-nats)",
		Long:  benchLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd, s, benchWorkloads)
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&sizes, "sizes", "16,1024,65536", "payload sizes in bytes, comma-separated")
	pf.StringVar(&transports, "transports", "unix,tcp", "hub transports to measure, comma-separated: unix, tcp (nats-server is always tcp)")
	pf.IntVar(&s.msgs, "msgs", 1_000_000, "messages per run (capped by --max-bytes and --duration)")
	pf.StringVar(&maxBytes, "max-bytes", "2GiB", "payload bytes per run at most: large sizes publish fewer messages")
	pf.DurationVar(&s.duration, "duration", time.Second, "stop publishing (or requesting) after this long")
	pf.IntVar(&s.requests, "requests", 20000, "request/reply round trips per run (capped by --duration)")
	pf.IntVar(&s.warmup, "warmup", 1000, "request/reply round trips before measuring")
	pf.IntVar(&s.subs, "subs", 10, "subscribers in fanout")
	pf.IntVar(&s.rounds, "rounds", 3, "runs of each workload per server, alternating; the median is reported")
	pf.StringVar(&window, "window", "8MiB", "how far (payload plus 64 bytes a message) the publisher may run ahead of the slowest subscriber")
	pf.DurationVar(&s.timeout, "timeout", 60*time.Second, "give up on one run after this long")
	pf.DurationVar(&s.stall, "stall", 10*time.Second, "fail a run when no message arrives for this long")
	pf.BoolVar(&s.vsNATS, "vs-nats", false, "also run every workload against nats-server and report hub/nats ratios")
	pf.StringVar(&s.natsServer, "nats-server", "", "sb-nats-server binary (default: next to this executable, else on $PATH)")
	pf.BoolVar(&s.json, "json", false, "print one JSON document with every result instead of text")
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return s.parse(sizes, transports, maxBytes, window)
	}

	for _, w := range benchWorkloads {
		cmd.AddCommand(&cobra.Command{
			Use:   w,
			Short: "Run only the " + w + " workload (see bench --help)",
			Args:  wrapArgs(cobra.NoArgs),
			RunE: func(cmd *cobra.Command, _ []string) error {
				return runBench(cmd, s, []string{w})
			},
		})
	}
	conns := &cobra.Command{
		Use:   "conns",
		Short: "Open N idle connections and report the server's memory per connection",
		Long: `Open --n idle connections (each completes CONNECT and PING/PONG by hand)
to a fresh hub per transport, and with --vs-nats to nats-server over TCP, and
report the server's resident memory (VmRSS) before and after and the bytes
per connection. The open-file limit of the bench is raised first; the
servers inherit it.`,
		Args: wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runConns(cmd, s)
		},
	}
	conns.Flags().IntVar(&s.conns, "n", 10000, "idle connections to open")
	cmd.AddCommand(conns, newBenchShm(), newBenchShmPeer(), newBenchQueue(s))
	return cmd
}

// parse validates the flags and fills the parsed fields.
func (s *benchSettings) parse(sizes, transports, maxBytes, window string) error {
	s.sizes = nil
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 64<<20 {
			return usagef("--sizes: %q is not a size between 1 and %d", f, 64<<20)
		}
		s.sizes = append(s.sizes, n)
	}
	s.transports = nil
	for _, f := range strings.Split(transports, ",") {
		f = strings.TrimSpace(f)
		if f != "unix" && f != "tcp" {
			return usagef("--transports: %q is not unix or tcp", f)
		}
		if !slices.Contains(s.transports, f) {
			s.transports = append(s.transports, f)
		}
	}
	mb, err := parseByteSize(maxBytes)
	if err != nil || mb < 1 {
		return usagef("--max-bytes: %q is not a positive size", maxBytes)
	}
	s.maxBytes = mb
	w, err := parseByteSize(window)
	if err != nil || w < 1 {
		return usagef("--window: %q is not a positive size", window)
	}
	s.window = w
	switch {
	case s.msgs < 1:
		return usagef("--msgs: must be at least 1")
	case s.requests < 1:
		return usagef("--requests: must be at least 1")
	case s.warmup < 0:
		return usagef("--warmup: must not be negative")
	case s.subs < 1:
		return usagef("--subs: must be at least 1")
	case s.rounds < 1:
		return usagef("--rounds: must be at least 1")
	case s.duration <= 0 || s.timeout <= 0 || s.stall <= 0:
		return usagef("--duration, --timeout and --stall must be positive")
	case s.conns < 0:
		return usagef("--n: must not be negative")
	}
	return nil
}

// msgsFor is how many messages a throughput run of size bytes publishes
// (before --duration cuts it short).
func (s *benchSettings) msgsFor(size int) int64 {
	n := int64(s.msgs)
	if m := s.maxBytes / int64(size); m < n {
		n = m
	}
	return max(n, 1)
}

// maxPayload is the max_payload both servers are started with: their common
// default (1 MiB) or, for larger --sizes, the largest size.
func (s *benchSettings) maxPayload() int {
	return max(1<<20, slices.Max(s.sizes))
}

// benchContext is cancelled by SIGINT or SIGTERM, so that the deferred
// cleanup stops the server processes.
func benchContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// natsPath finds the nats-server peer binary when --vs-nats asks for it;
// it returns "" otherwise.
func (s *benchSettings) natsPath() (string, error) {
	if !s.vsNATS {
		return "", nil
	}
	return findNATSServer(s.natsServer)
}

// runBench starts the servers, runs the workloads round by round and prints
// the report.
func runBench(cmd *cobra.Command, s *benchSettings, workloads []string) error {
	ctx, stop := benchContext()
	defer stop()
	natsPath, err := s.natsPath()
	if err != nil {
		return err
	}
	machine := readMachine()
	progress := cmd.ErrOrStderr()

	tmp, err := os.MkdirTemp("", "sb-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	hub, err := startHub(ctx, tmp, s.maxPayload(), progress)
	if err != nil {
		return err
	}
	defer hub.stop()
	targets := make([]benchTarget, 0, 3)
	for _, tr := range s.transports {
		targets = append(targets, benchTarget{server: "hub", transport: tr, url: hub.url(tr), proc: hub})
	}
	var nats *serverProc
	if natsPath != "" {
		nats, err = startNATS(ctx, natsPath, s.maxPayload(), progress)
		if err != nil {
			return err
		}
		defer nats.stop()
		targets = append(targets, benchTarget{server: "nats", transport: "tcp", url: nats.url("tcp"), proc: nats})
	}

	total := len(workloads) * len(s.sizes) * s.rounds * len(targets)
	var runs []benchResult
	done := 0
	for _, w := range workloads {
		for _, size := range s.sizes {
			for round := 1; round <= s.rounds; round++ {
				for _, t := range targets {
					res, err := runWorkload(ctx, s, w, t, size)
					done++
					if err != nil {
						return fmt.Errorf("%s %s on %s/%s, round %d: %w", w, sizeLabel(size), t.server, t.transport, round, err)
					}
					res.Round = round
					runs = append(runs, res)
					fmt.Fprintf(progress, "[%d/%d] %s\n", done, total, res.progressLine())
				}
			}
		}
	}

	rep := &benchReport{
		Machine:  machine,
		Settings: s.jsonSettings(workloads),
		settings: s,
		Hub:      hub.info,
		Runs:     runs,
	}
	if nats != nil {
		rep.NATS = &nats.info
	}
	rep.summarize()
	rep.Machine.LoadAvgEnd = readLoadAvg()

	// Stop the servers before printing so that a crash shows up as an error.
	if err := hub.stop(); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	if nats != nil {
		if err := nats.stop(); err != nil {
			return fmt.Errorf("nats-server: %w", err)
		}
	}
	return rep.write(cmd.OutOrStdout(), s.json)
}

// sizeLabel formats a payload size: 16 B, 1 KiB, 64 KiB.
func sizeLabel(n int) string { return sizeLabel64(int64(n)) }

func sizeLabel64(n int64) string {
	for _, u := range []struct {
		shift uint
		unit  string
	}{{30, " GiB"}, {20, " MiB"}, {10, " KiB"}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10) + " B"
}

// prefixWriter writes each complete line to w with a prefix; it is used to
// pass a server's stderr through.
type prefixWriter struct {
	prefix string
	w      io.Writer
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := slices.Index(p.buf, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

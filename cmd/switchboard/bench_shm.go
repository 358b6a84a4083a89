package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"switchboard"
	"switchboard/internal/spinbase"
)

const benchShmLong = `Measure the shared-memory fast path between two processes through the hub
this command starts, and print:

  rtt_p50_ns, rtt_p99_ns   16 B ping-pong through the client API (Publish,
                           SubscribeSync/NextView), after the hub handed out rings
  copy_rtt_p50_ns          the same with NextMsg, which copies each message
  pub_rtt_p50_ns           the same with a Publisher (NewPublisher, Loan/Send) on
                           each side instead of Publish: the client's leanest path
  msgs_per_s               16 B one-way stream through the client API (Publish;
                           SubscribeSync/NextViews, up to 256 messages a call)
  socket_msgs_per_s        the same stream with shared memory off (unix socket)
  large_rtt_p50_ns         4 MiB ping-pong, zero-copy both ways: Publisher.Loan/Send
                           and NextView (each side reads and writes 8 bytes of it)
  wake_rtt_p50_ns,         the 16 B ping-pong with 2 ms of quiet before each round
  wake_rtt_p99_ns          trip, so that both sides have stopped spinning and
                           sleep: two wake-ups (not a target; the cost of a
                           message to an idle subscriber)
  baseline_rtt_p50_ns      a raw two-process spin ping-pong on one shared page
                           (no hub, no client), measured in the same run

and the ratios the targets are stated in. The baseline, the 16 B round
trip and the 4 MiB one are measured in --rounds rounds that take turns;
rtt_vs_baseline and large_vs_small are the medians of the rounds' ratios,
so that each compares figures taken moments apart (a virtual machine's
speed can change from one second to the next). The peer is a second
process (this executable). Run it on an otherwise idle machine with at least 2 CPUs:
both sides spin while waiting.`

type shmBenchSettings struct {
	roundTrips, warmup, stream, large, baseline, wake, rounds int
	json                                                      bool
}

// shmBenchResult is what bench shm prints with --json.
type shmBenchResult struct {
	RTTP50NS         int64   `json:"rtt_p50_ns"`
	RTTP99NS         int64   `json:"rtt_p99_ns"`
	RoundTrips       int     `json:"round_trips"`
	CopyRTTP50NS     int64   `json:"copy_rtt_p50_ns"`
	CopyRTTP99NS     int64   `json:"copy_rtt_p99_ns"`
	PubRTTP50NS      int64   `json:"pub_rtt_p50_ns"`
	PubRTTP99NS      int64   `json:"pub_rtt_p99_ns"`
	MsgsPerS         float64 `json:"msgs_per_s"`
	SocketMsgsPerS   float64 `json:"socket_msgs_per_s"`
	StreamMsgs       int     `json:"stream_msgs"`
	LargeRTTP50NS    int64   `json:"large_rtt_p50_ns"`
	LargeRoundTrips  int     `json:"large_round_trips"`
	WakeRTTP50NS     int64   `json:"wake_rtt_p50_ns"`
	WakeRTTP99NS     int64   `json:"wake_rtt_p99_ns"`
	WakeRoundTrips   int     `json:"wake_round_trips"`
	BaselineRTTP50NS int64   `json:"baseline_rtt_p50_ns"`
	BaselineRTTP99NS int64   `json:"baseline_rtt_p99_ns"`
	RTTVsBaseline    float64 `json:"rtt_vs_baseline"`
	StreamVsSocket   float64 `json:"stream_vs_socket"`
	LargeVsSmall     float64 `json:"large_vs_small"`
	// Rounds is how many times the baseline, the 16 B round trip and the
	// 4 MiB one took turns; rtt_vs_baseline and large_vs_small are the
	// medians of the rounds' ratios (of their p50s), listed here.
	Rounds              int       `json:"rounds"`
	BaselineRoundsP50NS []int64   `json:"baseline_rounds_p50_ns"`
	RTTVsBaselineRounds []float64 `json:"rtt_vs_baseline_rounds"`
	LargeVsSmallRounds  []float64 `json:"large_vs_small_rounds"`
	IdleCPUPercent      float64   `json:"idle_cpu_percent"` // the peer, its subscriptions waiting, over 2 s
	Machine             any       `json:"machine"`
	Date                string    `json:"date"`
}

func newBenchShm() *cobra.Command {
	s := &shmBenchSettings{}
	cmd := &cobra.Command{
		Use:   "shm",
		Short: "Measure the shared-memory fast path against a raw spin baseline",
		Long:  benchShmLong,
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			s.json, _ = cmd.Flags().GetBool("json")
			return runBenchShm(cmd, s)
		},
	}
	f := cmd.Flags()
	f.IntVar(&s.roundTrips, "round-trips", 20000, "16 B round trips measured")
	f.IntVar(&s.warmup, "warmup", 2000, "round trips before measuring (the rings are handed out meanwhile)")
	f.IntVar(&s.stream, "stream", 1_000_000, "16 B messages in the one-way stream (above about 2 M the socket stream, which has no flow control, outruns its subscriber and the hub cuts it off as a slow consumer)")
	f.IntVar(&s.large, "large", 200, "4 MiB round trips measured")
	f.IntVar(&s.baseline, "baseline", 200_000, "raw spin round trips measured")
	f.IntVar(&s.wake, "wake", 200, "16 B round trips measured after 2 ms of quiet each")
	f.IntVar(&s.rounds, "rounds", 5, "rounds the baseline, the 16 B and the 4 MiB round trips are measured in, taking turns, so that their ratios compare the same moments")
	return cmd
}

// newBenchShmPeer is the hidden peer process of bench shm.
func newBenchShmPeer() *cobra.Command {
	var url string
	cmd := &cobra.Command{
		Use:    "shm-peer",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return shmPeer(url)
		},
	}
	cmd.Flags().StringVar(&url, "url", "", "hub URL")
	return cmd
}

func runBenchShm(cmd *cobra.Command, s *shmBenchSettings) error {
	ctx, cancel := benchContext()
	defer cancel()
	stderr := cmd.ErrOrStderr()
	res := shmBenchResult{Machine: readMachine(), Date: time.Now().UTC().Format(time.RFC3339)}

	if s.rounds < 1 {
		return fmt.Errorf("bench shm: --rounds %d: at least 1", s.rounds)
	}
	dir, err := os.MkdirTemp("", "sb-bench-shm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	hub, err := startHub(ctx, dir, 8<<20, stderr)
	if err != nil {
		return err
	}
	defer hub.stop()
	url := hub.url("unix")

	peer, err := startShmPeer(ctx, url, stderr)
	if err != nil {
		return err
	}
	defer peer.stop()

	nc, err := switchboard.Connect(ctx, url, &switchboard.Options{Name: "bench shm", NoReconnect: true})
	if err != nil {
		return err
	}
	defer nc.Close()

	pong, err := nc.SubscribeSync("sb.bench.pong")
	if err != nil {
		return err
	}
	defer pong.Unsubscribe()
	if err := nc.Flush(ctx); err != nil {
		return err
	}
	large, err := newShmLarge(ctx, nc)
	if err != nil {
		return err
	}
	defer large.close()
	if err := shmRounds(ctx, stderr, nc, pong, large, s, &res); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "16 B ping-pong with NextMsg")
	copies, err := shmPingPong(ctx, nc, pong, s.warmup, s.roundTrips, false, 0)
	if err != nil {
		return err
	}
	res.CopyRTTP50NS, res.CopyRTTP99NS = percentile(copies, 0.5), percentile(copies, 0.99)
	if res.PubRTTP50NS, res.PubRTTP99NS, err = shmPubPingPong(ctx, nc, s.warmup, s.roundTrips); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "16 B stream")
	if res.MsgsPerS, err = shmStream(ctx, nc, "sb.bench.stream", s.stream); err != nil {
		return err
	}
	res.StreamMsgs = s.stream
	fmt.Fprintln(stderr, "16 B stream over the socket")
	sc, err := switchboard.Connect(ctx, url, &switchboard.Options{Name: "bench socket", NoReconnect: true, NoSharedMemory: true})
	if err != nil {
		return err
	}
	defer sc.Close()
	if res.SocketMsgsPerS, err = shmStream(ctx, sc, "sb.bench.sockstream", s.stream); err != nil {
		return err
	}
	// Last of the ping-pongs: sleeping on both sides lets the kernel
	// place the two processes on one CPU, which the phases after would
	// feel (see docs/shm.md, "Wake-ups").
	if s.wake > 0 {
		fmt.Fprintln(stderr, "16 B ping-pong after 2 ms of quiet")
		wake, err := shmPingPong(ctx, nc, pong, 50, s.wake, true, wakePause)
		if err != nil {
			return err
		}
		res.WakeRTTP50NS, res.WakeRTTP99NS, res.WakeRoundTrips = percentile(wake, 0.5), percentile(wake, 0.99), len(wake)
	}
	fmt.Fprintln(stderr, "idle subscriber CPU, 2 s")
	if res.IdleCPUPercent, err = idleCPU(peer.cmd.Process.Pid, 2*time.Second); err != nil {
		return err
	}
	if err := peer.stop(); err != nil {
		return err
	}
	res.StreamVsSocket = ratio(res.MsgsPerS, res.SocketMsgsPerS)
	out := cmd.OutOrStdout()
	if s.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(out, "16 B round trip (client API, NextView): p50 %v  p99 %v  (%d round trips)\n", time.Duration(res.RTTP50NS), time.Duration(res.RTTP99NS), res.RoundTrips)
	fmt.Fprintf(out, "16 B round trip (NextMsg, a copy):     p50 %v  p99 %v\n", time.Duration(res.CopyRTTP50NS), time.Duration(res.CopyRTTP99NS))
	fmt.Fprintf(out, "16 B round trip (Publisher Loan/Send): p50 %v  p99 %v  → %.2f× the baseline\n", time.Duration(res.PubRTTP50NS), time.Duration(res.PubRTTP99NS), ratio(float64(res.PubRTTP50NS), float64(res.BaselineRTTP50NS)))
	fmt.Fprintf(out, "raw spin baseline:            p50 %v  p99 %v  (the rounds' median)\n", time.Duration(res.BaselineRTTP50NS), time.Duration(res.BaselineRTTP99NS))
	fmt.Fprintf(out, "16 B round trip ÷ baseline: %.2f× (target ≤ 2; the median of %d rounds: %s)\n", res.RTTVsBaseline, res.Rounds, fmtRatios(res.RTTVsBaselineRounds))
	fmt.Fprintf(out, "16 B stream: %s msgs/s over shm, %s over the unix socket → %.1f× (target ≥ 10)\n", fmtRate(res.MsgsPerS), fmtRate(res.SocketMsgsPerS), res.StreamVsSocket)
	fmt.Fprintf(out, "4 MiB round trip: p50 %v → %.2f× the 16 B one (target ≤ 2; rounds: %s)\n", time.Duration(res.LargeRTTP50NS), res.LargeVsSmall, fmtRatios(res.LargeVsSmallRounds))
	if res.WakeRoundTrips > 0 {
		fmt.Fprintf(out, "16 B round trip after %v of quiet (both sides asleep): p50 %v  p99 %v\n", wakePause, time.Duration(res.WakeRTTP50NS), time.Duration(res.WakeRTTP99NS))
	}
	fmt.Fprintf(out, "idle subscriber process (5 subscriptions waiting): %.2f%% of a CPU (target ≈ 0)\n", res.IdleCPUPercent)
	return nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// wakePause is the quiet before each round trip of the wake-up
// ping-pong: far longer than any spin (at most 50 µs), so that both sides
// sleep.
const wakePause = 2 * time.Millisecond

// streamBatch is the most messages the peer takes from a stream in one
// NextViews call.
const streamBatch = 256

// shmRounds measures the raw spin baseline, the 16 B round trip (Publish
// and NextView) and the 4 MiB one in s.rounds rounds that take turns, and
// fills in their figures: p50 and p99 of all the rounds' samples (of the
// rounds' baselines, the medians), and the ratios the targets are stated
// in as the medians of the rounds' ratios. The machine this runs on
// switches between a fast and a slow state, sometimes within a second;
// measured back to back, a round's three figures share its state, where
// one long phase each compared a baseline of one state with a round trip
// of another.
func shmRounds(ctx context.Context, stderr io.Writer, nc *switchboard.Conn, pong *switchboard.Subscription, large *shmLargeRTT, s *shmBenchSettings, res *shmBenchResult) error {
	per := func(n int) int { return max(1, (n+s.rounds-1)/s.rounds) }
	var small, big []int64
	var baseP50, baseP99 []int64
	for k := range s.rounds {
		fmt.Fprintf(stderr, "round %d of %d: baseline (raw two-process spin ping-pong), 16 B ping-pong, 4 MiB ping-pong\n", k+1, s.rounds)
		base, err := spinbase.Run(ctx, per(s.baseline))
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		warm, largeWarm := s.warmup, 20
		if k > 0 {
			warm, largeWarm = min(s.warmup, 200), 5
		}
		rt, err := shmPingPong(ctx, nc, pong, warm, per(s.roundTrips), true, 0)
		if err != nil {
			return err
		}
		lt, err := large.roundTrips(ctx, largeWarm, per(s.large))
		if err != nil {
			return err
		}
		r50, l50 := percentile(rt, 0.5), percentile(lt, 0.5)
		baseP50, baseP99 = append(baseP50, int64(base.P50)), append(baseP99, int64(base.P99))
		res.RTTVsBaselineRounds = append(res.RTTVsBaselineRounds, ratio(float64(r50), float64(base.P50)))
		res.LargeVsSmallRounds = append(res.LargeVsSmallRounds, ratio(float64(l50), float64(r50)))
		small, big = append(small, rt...), append(big, lt...)
	}
	res.Rounds = s.rounds
	res.BaselineRoundsP50NS = slices.Clone(baseP50)
	slices.Sort(small)
	slices.Sort(big)
	slices.Sort(baseP50)
	slices.Sort(baseP99)
	res.RTTP50NS, res.RTTP99NS, res.RoundTrips = percentile(small, 0.5), percentile(small, 0.99), len(small)
	res.LargeRTTP50NS, res.LargeRoundTrips = percentile(big, 0.5), len(big)
	res.BaselineRTTP50NS, res.BaselineRTTP99NS = percentile(baseP50, 0.5), percentile(baseP99, 0.5)
	res.RTTVsBaseline = median(res.RTTVsBaselineRounds)
	res.LargeVsSmall = median(res.LargeVsSmallRounds)
	return nil
}

// fmtRatios formats the rounds' ratios for the text report.
func fmtRatios(xs []float64) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%.2f", x)
	}
	return b.String()
}

// shmPingPong measures 16 B round trips through the peer's echo, reading
// the echo from pong (the Conn's subscription to sb.bench.pong) with
// NextView (view) or NextMsg, and returns the samples, sorted.
func shmPingPong(ctx context.Context, nc *switchboard.Conn, pong *switchboard.Subscription, warmup, n int, view bool, pause time.Duration) ([]int64, error) {
	buf := make([]byte, 16)
	samples := make([]int64, 0, n)
	for i := range warmup + n {
		if pause > 0 {
			time.Sleep(pause)
		}
		binary.LittleEndian.PutUint64(buf, uint64(i))
		t0 := time.Now()
		if err := nc.Publish("sb.bench.ping", buf); err != nil {
			return nil, err
		}
		var got uint64
		var size int
		if view {
			v, err := pong.NextView(ctx)
			if err != nil {
				return nil, fmt.Errorf("round trip %d: %w", i, err)
			}
			if size = len(v.Data); size == 16 {
				got = binary.LittleEndian.Uint64(v.Data)
			}
			if !v.Release() {
				return nil, fmt.Errorf("round trip %d: the view was overwritten", i)
			}
		} else {
			m, err := pong.NextMsg(ctx)
			if err != nil {
				return nil, fmt.Errorf("round trip %d: %w", i, err)
			}
			if size = len(m.Data); size == 16 {
				got = binary.LittleEndian.Uint64(m.Data)
			}
		}
		d := time.Since(t0)
		if size != 16 || got != uint64(i) {
			return nil, fmt.Errorf("round trip %d: wrong echo (%d bytes, %d)", i, size, got)
		}
		if i >= warmup {
			samples = append(samples, int64(d))
		}
	}
	slices.Sort(samples)
	return samples, nil
}

// shmPubPingPong is shmPingPong with a Publisher on each side: the peer
// echoes sb.bench.pping to sb.bench.ppong with its own Publisher.
func shmPubPingPong(ctx context.Context, nc *switchboard.Conn, warmup, n int) (p50, p99 int64, err error) {
	sub, err := nc.SubscribeSync("sb.bench.ppong")
	if err != nil {
		return 0, 0, err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(ctx); err != nil {
		return 0, 0, err
	}
	pub, err := nc.NewPublisher(ctx, "sb.bench.pping", nil)
	if err != nil {
		return 0, 0, err
	}
	samples := make([]int64, 0, n)
	for i := range warmup + n {
		t0 := time.Now()
		buf, err := pub.Loan(16)
		if err != nil {
			return 0, 0, err
		}
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := pub.Send(16); err != nil {
			return 0, 0, err
		}
		v, err := sub.NextView(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("publisher round trip %d: %w", i, err)
		}
		size, got := len(v.Data), uint64(0)
		if size == 16 {
			got = binary.LittleEndian.Uint64(v.Data)
		}
		ok := v.Release()
		d := time.Since(t0)
		if size != 16 || got != uint64(i) || !ok {
			return 0, 0, fmt.Errorf("publisher round trip %d: wrong echo (%d bytes, %d, intact %v)", i, size, got, ok)
		}
		if i >= warmup {
			samples = append(samples, int64(d))
		}
	}
	slices.Sort(samples)
	return percentile(samples, 0.5), percentile(samples, 0.99), nil
}

// shmStream publishes n 16 B messages to subj; the peer counts them and
// answers the final one with its count.
func shmStream(ctx context.Context, nc *switchboard.Conn, subj string, n int) (float64, error) {
	done, err := nc.SubscribeSync(subj + ".count")
	if err != nil {
		return 0, err
	}
	defer done.Unsubscribe()
	if err := nc.Flush(ctx); err != nil {
		return 0, err
	}
	// A first message, over the socket, gets the hub to hand out a ring.
	if err := nc.Publish(subj, []byte("warm")); err != nil {
		return 0, err
	}
	if err := nc.Flush(ctx); err != nil {
		return 0, err
	}
	time.Sleep(50 * time.Millisecond)
	buf := make([]byte, 16)
	start := time.Now()
	for i := range n {
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := nc.Publish(subj, buf); err != nil {
			return 0, err
		}
	}
	if err := nc.Publish(subj, []byte("end")); err != nil {
		return 0, err
	}
	// Everything is published; the peer answers once it read the end. A
	// hub that cut the peer off as a slow consumer (a long stream over
	// the socket) means no answer: do not wait for ever.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	m, err := done.NextMsg(wctx)
	el := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("stream: no count from the peer a minute after the last message (did the hub drop it as a slow consumer?): %w", err)
	}
	var got, missed int
	if _, err := fmt.Sscanf(string(m.Data), "%d %d", &got, &missed); err != nil {
		return 0, fmt.Errorf("stream: peer said %q", m.Data)
	}
	if got+missed < n {
		return 0, fmt.Errorf("stream: the peer received %d of %d messages (%d reported missed)", got, n, missed)
	}
	return float64(got) / el.Seconds(), nil
}

// shmLargeRTT measures 4 MiB round trips with zero-copy publishers; its
// subscription and Publisher serve every round.
type shmLargeRTT struct {
	sub *switchboard.Subscription
	pub *switchboard.Publisher
}

const largeSize = 4 << 20

func newShmLarge(ctx context.Context, nc *switchboard.Conn) (*shmLargeRTT, error) {
	sub, err := nc.SubscribeSync("sb.bench.large.back")
	if err != nil {
		return nil, err
	}
	if err := nc.Flush(ctx); err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	pub, err := nc.NewPublisher(ctx, "sb.bench.large", &switchboard.RingOptions{Slots: 4, SlotSize: largeSize})
	if err != nil {
		sub.Unsubscribe()
		return nil, err
	}
	return &shmLargeRTT{sub: sub, pub: pub}, nil
}

func (l *shmLargeRTT) close() { l.sub.Unsubscribe() }

// roundTrips measures n round trips after warm ones and returns the
// samples, sorted. Each carries its number in its first 8 bytes, which
// the peer echoes.
func (l *shmLargeRTT) roundTrips(ctx context.Context, warm, n int) ([]int64, error) {
	samples := make([]int64, 0, n)
	for i := range warm + n {
		t0 := time.Now()
		buf, err := l.pub.Loan(largeSize)
		if err != nil {
			return nil, err
		}
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := l.pub.Send(largeSize); err != nil {
			return nil, err
		}
		v, err := l.sub.NextView(ctx)
		if err != nil {
			return nil, fmt.Errorf("large round trip %d: %w", i, err)
		}
		size, got := len(v.Data), binary.LittleEndian.Uint64(v.Data)
		ok := v.Release()
		d := time.Since(t0)
		if size != largeSize || got != uint64(i) || !ok {
			return nil, fmt.Errorf("large round trip %d: wrong echo (%d bytes, %d, intact %v)", i, size, got, ok)
		}
		if i >= warm {
			samples = append(samples, int64(d))
		}
	}
	slices.Sort(samples)
	return samples, nil
}

// idleCPU measures the CPU time process pid uses over d, in percent of
// one CPU, from /proc/PID/stat (utime + stime, in clock ticks).
func idleCPU(pid int, d time.Duration) (float64, error) {
	ticks := func() (int64, error) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, err
		}
		// The command name, field 2, may hold spaces: count from its ')'.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
		}
		var u, s int64
		fmt.Sscan(f[11], &u)
		fmt.Sscan(f[12], &s)
		return u + s, nil
	}
	t0, err := ticks()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	time.Sleep(d)
	t1, err := ticks()
	if err != nil {
		return 0, err
	}
	const hz = 100 // USER_HZ on Linux
	return float64(t1-t0) / hz / time.Since(start).Seconds() * 100, nil
}

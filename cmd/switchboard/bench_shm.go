package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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

and the ratios the targets are stated in. The peer is a second process
(this executable). Run it on an otherwise idle machine with at least 2 CPUs:
both sides spin while waiting.`

type shmBenchSettings struct {
	roundTrips, warmup, stream, large, baseline, wake int
	json                                              bool
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
	IdleCPUPercent   float64 `json:"idle_cpu_percent"` // the peer, its subscriptions waiting, over 2 s
	Machine          any     `json:"machine"`
	Date             string  `json:"date"`
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
	f.IntVar(&s.stream, "stream", 1_000_000, "16 B messages in the one-way stream")
	f.IntVar(&s.large, "large", 200, "4 MiB round trips measured")
	f.IntVar(&s.baseline, "baseline", 200_000, "raw spin round trips measured")
	f.IntVar(&s.wake, "wake", 200, "16 B round trips measured after 2 ms of quiet each")
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

	fmt.Fprintln(stderr, "baseline: raw two-process spin ping-pong")
	base, err := spinbase.Run(ctx, s.baseline)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	res.BaselineRTTP50NS, res.BaselineRTTP99NS = int64(base.P50), int64(base.P99)

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

	fmt.Fprintln(stderr, "16 B ping-pong")
	if res.RTTP50NS, res.RTTP99NS, res.RoundTrips, err = shmPingPong(ctx, nc, s.warmup, s.roundTrips, true, 0); err != nil {
		return err
	}
	if res.CopyRTTP50NS, res.CopyRTTP99NS, _, err = shmPingPong(ctx, nc, s.warmup, s.roundTrips, false, 0); err != nil {
		return err
	}
	if res.PubRTTP50NS, res.PubRTTP99NS, err = shmPubPingPong(ctx, nc, s.warmup, s.roundTrips); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "16 B stream")
	if res.MsgsPerS, err = shmStream(ctx, nc, "sb.bench.stream", s.stream); err != nil {
		return err
	}
	res.StreamMsgs = s.stream
	fmt.Fprintln(stderr, "4 MiB ping-pong")
	if res.LargeRTTP50NS, res.LargeRoundTrips, err = shmLarge(ctx, nc, s.large); err != nil {
		return err
	}
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
		if res.WakeRTTP50NS, res.WakeRTTP99NS, res.WakeRoundTrips, err = shmPingPong(ctx, nc, 50, s.wake, true, wakePause); err != nil {
			return err
		}
	}
	fmt.Fprintln(stderr, "idle subscriber CPU, 2 s")
	if res.IdleCPUPercent, err = idleCPU(peer.cmd.Process.Pid, 2*time.Second); err != nil {
		return err
	}
	if err := peer.stop(); err != nil {
		return err
	}
	res.RTTVsBaseline = ratio(float64(res.RTTP50NS), float64(res.BaselineRTTP50NS))
	res.StreamVsSocket = ratio(res.MsgsPerS, res.SocketMsgsPerS)
	res.LargeVsSmall = ratio(float64(res.LargeRTTP50NS), float64(res.RTTP50NS))
	out := cmd.OutOrStdout()
	if s.json {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(out, "16 B round trip (client API, NextView): p50 %v  p99 %v  (%d round trips)\n", time.Duration(res.RTTP50NS), time.Duration(res.RTTP99NS), res.RoundTrips)
	fmt.Fprintf(out, "16 B round trip (NextMsg, a copy):     p50 %v  p99 %v\n", time.Duration(res.CopyRTTP50NS), time.Duration(res.CopyRTTP99NS))
	fmt.Fprintf(out, "16 B round trip (Publisher Loan/Send): p50 %v  p99 %v  → %.2f× the baseline\n", time.Duration(res.PubRTTP50NS), time.Duration(res.PubRTTP99NS), ratio(float64(res.PubRTTP50NS), float64(res.BaselineRTTP50NS)))
	fmt.Fprintf(out, "raw spin baseline:            p50 %v  p99 %v  → %.2f× the baseline (target ≤ 2)\n", base.P50, base.P99, res.RTTVsBaseline)
	fmt.Fprintf(out, "16 B stream: %s msgs/s over shm, %s over the unix socket → %.1f× (target ≥ 10)\n", fmtRate(res.MsgsPerS), fmtRate(res.SocketMsgsPerS), res.StreamVsSocket)
	fmt.Fprintf(out, "4 MiB round trip: p50 %v → %.2f× the 16 B one (target ≤ 2)\n", time.Duration(res.LargeRTTP50NS), res.LargeVsSmall)
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

// shmPingPong measures 16 B round trips through the peer's echo, reading
// the echo with NextView (view) or NextMsg.
func shmPingPong(ctx context.Context, nc *switchboard.Conn, warmup, n int, view bool, pause time.Duration) (p50, p99 int64, done int, err error) {
	sub, err := nc.SubscribeSync("sb.bench.pong")
	if err != nil {
		return 0, 0, 0, err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(ctx); err != nil {
		return 0, 0, 0, err
	}
	buf := make([]byte, 16)
	samples := make([]int64, 0, n)
	for i := range warmup + n {
		if pause > 0 {
			time.Sleep(pause)
		}
		binary.LittleEndian.PutUint64(buf, uint64(i))
		t0 := time.Now()
		if err := nc.Publish("sb.bench.ping", buf); err != nil {
			return 0, 0, 0, err
		}
		var got uint64
		var size int
		if view {
			v, err := sub.NextView(ctx)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("round trip %d: %w", i, err)
			}
			if size = len(v.Data); size == 16 {
				got = binary.LittleEndian.Uint64(v.Data)
			}
			if !v.Release() {
				return 0, 0, 0, fmt.Errorf("round trip %d: the view was overwritten", i)
			}
		} else {
			m, err := sub.NextMsg(ctx)
			if err != nil {
				return 0, 0, 0, fmt.Errorf("round trip %d: %w", i, err)
			}
			if size = len(m.Data); size == 16 {
				got = binary.LittleEndian.Uint64(m.Data)
			}
		}
		d := time.Since(t0)
		if size != 16 || got != uint64(i) {
			return 0, 0, 0, fmt.Errorf("round trip %d: wrong echo (%d bytes, %d)", i, size, got)
		}
		if i >= warmup {
			samples = append(samples, int64(d))
		}
	}
	slices.Sort(samples)
	return percentile(samples, 0.5), percentile(samples, 0.99), len(samples), nil
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

// shmLarge measures 4 MiB round trips with zero-copy publishers.
func shmLarge(ctx context.Context, nc *switchboard.Conn, n int) (int64, int, error) {
	const size = 4 << 20
	sub, err := nc.SubscribeSync("sb.bench.large.back")
	if err != nil {
		return 0, 0, err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(ctx); err != nil {
		return 0, 0, err
	}
	pub, err := nc.NewPublisher(ctx, "sb.bench.large", &switchboard.RingOptions{Slots: 4, SlotSize: size})
	if err != nil {
		return 0, 0, err
	}
	samples := make([]int64, 0, n)
	const warm = 20
	for i := range warm + n {
		t0 := time.Now()
		buf, err := pub.Loan(size)
		if err != nil {
			return 0, 0, err
		}
		binary.LittleEndian.PutUint64(buf, uint64(i))
		if err := pub.Send(size); err != nil {
			return 0, 0, err
		}
		v, err := sub.NextView(ctx)
		if err != nil {
			return 0, 0, fmt.Errorf("large round trip %d: %w", i, err)
		}
		n, got := len(v.Data), binary.LittleEndian.Uint64(v.Data)
		ok := v.Release()
		d := time.Since(t0)
		if n != size || got != uint64(i) || !ok {
			return 0, 0, fmt.Errorf("large round trip %d: wrong echo (%d bytes, intact %v)", i, n, ok)
		}
		if i >= warm {
			samples = append(samples, int64(d))
		}
	}
	slices.Sort(samples)
	return percentile(samples, 0.5), len(samples), nil
}

// shmPeerProc is the running peer process.
type shmPeerProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan error
	out   *strings.Builder
}

func startShmPeer(ctx context.Context, url string, stderr io.Writer) (*shmPeerProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "bench", "shm-peer", "--url", url)
	cmd.Stderr = &prefixWriter{prefix: "peer: ", w: stderr}
	cmd.SysProcAttr = childSysProcAttr()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start peer: %w", err)
	}
	p := &shmPeerProc{cmd: cmd, stdin: stdin, done: make(chan error, 1), out: &strings.Builder{}}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if !sent && sc.Text() == "READY" {
				ready <- nil
				sent = true
				continue
			}
			p.out.WriteString(sc.Text() + "\n")
		}
		if !sent {
			ready <- errors.New("peer exited before it was ready")
		}
		p.done <- cmd.Wait()
	}()
	select {
	case err := <-ready:
		if err != nil {
			p.stop()
			return nil, err
		}
		return p, nil
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, errors.New("peer did not get ready within 30s")
	}
}

// stop closes the peer's stdin (it exits) and waits; a peer that does not
// exit within 10s is killed.
func (p *shmPeerProc) stop() error {
	if p.stdin == nil {
		return nil
	}
	p.stdin.Close()
	p.stdin = nil
	select {
	case err := <-p.done:
		if err != nil {
			return fmt.Errorf("peer: %w", err)
		}
		return nil
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New("peer did not exit; killed")
	}
}

// shmPeer is the peer process: it echoes pings and large messages and
// counts streams, until stdin closes.
func shmPeer(url string) error {
	ctx := context.Background()
	fail := make(chan error, 1)
	nc, err := switchboard.Connect(ctx, url, &switchboard.Options{Name: "bench shm peer", NoReconnect: true,
		PendingMsgsLimit: 1 << 22, PendingBytesLimit: 1 << 30,
		ErrorHandler: func(_ *switchboard.Conn, _ *switchboard.Subscription, err error) {
			select {
			case fail <- err:
			default:
			}
		}})
	if err != nil {
		return err
	}
	defer nc.Close()
	sc, err := switchboard.Connect(ctx, url, &switchboard.Options{Name: "bench socket peer", NoReconnect: true, NoSharedMemory: true,
		PendingMsgsLimit: 1 << 22, PendingBytesLimit: 1 << 30})
	if err != nil {
		return err
	}
	defer sc.Close()
	ping, err := nc.SubscribeSync("sb.bench.ping")
	if err != nil {
		return err
	}
	stop, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			v, err := ping.NextView(stop)
			if err != nil {
				return
			}
			nc.Publish("sb.bench.pong", v.Data)
			v.Release()
		}
	}()
	pping, err := nc.SubscribeSync("sb.bench.pping")
	if err != nil {
		return err
	}
	ppong, err := nc.NewPublisher(ctx, "sb.bench.ppong", nil)
	if err != nil {
		return err
	}
	go func() {
		for {
			v, err := pping.NextView(stop)
			if err != nil {
				return
			}
			buf, err := ppong.Loan(len(v.Data))
			if err != nil {
				v.Release()
				return
			}
			copy(buf, v.Data)
			v.Release()
			ppong.Send(len(buf))
		}
	}()
	// The streams are read with NextViews, up to streamBatch messages a
	// call: in place for a ring, the queued copies for the socket.
	for _, c := range []struct {
		nc   *switchboard.Conn
		subj string
	}{{nc, "sb.bench.stream"}, {sc, "sb.bench.sockstream"}} {
		conn, subj := c.nc, c.subj
		sub, err := conn.SubscribeSync(subj)
		if err != nil {
			return err
		}
		defer sub.Unsubscribe()
		go func() {
			got := 0
			count := func(v *switchboard.View) {
				switch string(v.Data) {
				case "warm":
				case "end":
					conn.Publish(subj+".count", fmt.Appendf(nil, "%d %d", got, sub.Dropped()))
					got = 0
				default:
					got++
				}
			}
			for {
				if _, err := sub.NextViews(stop, streamBatch, count); err != nil {
					return
				}
			}
		}()
	}
	back, err := nc.NewPublisher(ctx, "sb.bench.large.back", &switchboard.RingOptions{Slots: 4, SlotSize: 4 << 20})
	if err != nil {
		return err
	}
	large, err := nc.SubscribeSync("sb.bench.large")
	if err != nil {
		return err
	}
	go func() {
		for {
			v, err := large.NextView(stop)
			if err != nil {
				return
			}
			buf, err := back.Loan(len(v.Data))
			if err != nil {
				return
			}
			copy(buf[:8], v.Data)
			v.Release()
			back.Send(len(buf))
		}
	}()
	if err := nc.Flush(ctx); err != nil {
		return err
	}
	if err := sc.Flush(ctx); err != nil {
		return err
	}
	fmt.Println("READY")
	io.Copy(io.Discard, os.Stdin)
	select {
	case err := <-fail:
		return fmt.Errorf("peer: %w", err)
	default:
		return nil
	}
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

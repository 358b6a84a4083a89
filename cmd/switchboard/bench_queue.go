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
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"switchboard"
)

const benchQueueLong = `Measure the hub's durable queues and, with --vs-nats, JetStream in the same
run. Every server runs in its own process with its files in a temporary
directory under --dir (which must be a real disk, not tmpfs, for fsync to
mean anything); the clients are this process, one connection per role.

  durable publish  --publishers P (default 1 and 8) publishers, each on its
                   own connection keeping --in-flight publishes awaiting their
                   acknowledgement (hub: PublishDurableAsync; JetStream:
                   PublishAsync), --size B payloads, for --duration;
                   acknowledged msgs/s
  consume          what the publish runs left in the queue: Fetch --batch
                   messages, ack each one with a confirmed ack (hub:
                   QueueMsg.Ack, answered once the ack is on disk; JetStream:
                   DoubleAck), all acks of a batch concurrently, then fetch
                   again, for --duration or until the queue is empty; msgs/s
                   (with --phases consume alone, the queue is first filled
                   for --duration, untimed)
  ack latency      one publisher, one publish in flight (hub: PublishDurable;
                   JetStream: Publish): p50 and p99 of the round trip

The hub's queue is a work queue with its default sync ("always": a publish
is acknowledged once fsynced, with group commit). JetStream runs from the
sb-nats-server binary (go build -o bin/sb-nats-server ./cmd/sb-nats-server)
as two servers, one with sync_interval "always" (fsync every write) and one
with the default (fsync every 2 minutes); each has a work-queue stream on
the same subject, file storage, one replica, and a durable pull consumer.
Each phase runs on every server in turn, --rounds times; the medians are
reported with the ratios hub/JetStream.

With --recovery-gib N the hub then fills a queue with N GiB of journal
(--recovery-size B messages), stops, starts again and reports the time from
starting the process until the queue answers INFO, with the journal's own
replay time; then once more after evicting the journal from the page cache.

Of bench's flags, queue uses --duration, --rounds, --timeout, --vs-nats,
--nats-server and --json. The defaults take about a minute with --vs-nats.`

// queueBenchSettings are the flags of bench queue.
type queueBenchSettings struct {
	bench        *benchSettings
	size         int
	publishers   []int
	inFlight     int
	batch        int
	transport    string
	latencyMax   int
	phases       map[string]bool // latency, publish, consume
	recoveryGiB  float64
	recoverySize int
	dir          string
	hubProfile   string
	profile      string // this process's CPU profile
}

func newBenchQueue(bs *benchSettings) *cobra.Command {
	s := &queueBenchSettings{bench: bs}
	var pubs, phases string
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Measure durable queues: publish, consume, ack latency, recovery (and JetStream with --vs-nats)",
		Long:  benchQueueLong,
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := s.parse(pubs, phases); err != nil {
				return err
			}
			return runBenchQueue(cmd, s)
		},
	}
	f := cmd.Flags()
	f.IntVar(&s.size, "size", 128, "payload bytes of every message")
	f.StringVar(&pubs, "publishers", "1,8", "concurrent publishers to measure durable publish with, comma-separated")
	f.IntVar(&s.inFlight, "in-flight", 256, "publishes each publisher keeps awaiting their acknowledgement")
	f.IntVar(&s.batch, "batch", 256, "messages per Fetch when consuming")
	f.StringVar(&s.transport, "transport", "tcp", "hub transport: tcp or unix (JetStream is always tcp)")
	f.IntVar(&s.latencyMax, "latency-msgs", 20000, "ack-latency round trips at most (capped by --duration)")
	f.StringVar(&phases, "phases", "latency,publish,consume", "what to measure, comma-separated: latency, publish, consume")
	f.Float64Var(&s.recoveryGiB, "recovery-gib", 0, "fill a queue with this many GiB of journal and measure the hub's restart (0: skip)")
	f.IntVar(&s.recoverySize, "recovery-size", 128, "payload bytes of the messages that fill --recovery-gib")
	f.StringVar(&s.dir, "dir", os.TempDir(), "where the servers' temporary data directories go (use a real disk)")
	f.StringVar(&s.hubProfile, "hub-cpuprofile", "", "have the hub write a CPU profile to this file (serve --cpuprofile)")
	f.MarkHidden("hub-cpuprofile")
	f.StringVar(&s.profile, "cpuprofile", "", "write a CPU profile of the bench's clients (this process) to this file")
	f.MarkHidden("cpuprofile")
	return cmd
}

func (s *queueBenchSettings) parse(pubs, phases string) error {
	s.phases = map[string]bool{}
	for _, f := range strings.Split(phases, ",") {
		f = strings.TrimSpace(f)
		if f != "latency" && f != "publish" && f != "consume" {
			return usagef("--phases: %q is not latency, publish or consume", f)
		}
		s.phases[f] = true
	}
	s.publishers = nil
	for _, f := range strings.Split(pubs, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > 1000 {
			return usagef("--publishers: %q is not a count between 1 and 1000", f)
		}
		if !slices.Contains(s.publishers, n) {
			s.publishers = append(s.publishers, n)
		}
	}
	switch {
	case s.size < 1 || s.size > 1<<20:
		return usagef("--size: between 1 and %d", 1<<20)
	case s.recoverySize < 1 || s.recoverySize > 1<<20:
		return usagef("--recovery-size: between 1 and %d", 1<<20)
	case s.inFlight < 1 || s.batch < 1 || s.batch > 100_000 || s.latencyMax < 1:
		return usagef("--in-flight and --latency-msgs must be positive, --batch between 1 and 100000")
	case s.transport != "tcp" && s.transport != "unix":
		return usagef("--transport: tcp or unix")
	case s.recoveryGiB < 0:
		return usagef("--recovery-gib: must not be negative")
	}
	return nil
}

// queueFigures are one server's results: medians over the rounds.
type queueFigures struct {
	Server string `json:"server"` // hub, jetstream-always, jetstream-default
	// DurablePublishMsgsPerS is the best of Publish, at
	// DurablePublishPublishers publishers.
	DurablePublishMsgsPerS   float64          `json:"durable_publish_msgs_per_s"`
	DurablePublishPublishers int              `json:"durable_publish_publishers"`
	Publish                  []queuePubFigure `json:"publish"`
	ConsumeMsgsPerS          float64          `json:"consume_msgs_per_s"`
	ConsumeMsgsPerSRounds    []float64        `json:"consume_msgs_per_s_rounds"`
	ConsumeMsgs              int64            `json:"consume_msgs"` // over all rounds
	// CPU used while consuming, in percent of one CPU: the server process
	// and this one (the clients).
	ConsumeServerCPUPercent float64 `json:"consume_server_cpu_percent"`
	ConsumeClientCPUPercent float64 `json:"consume_client_cpu_percent"`
	consumeCPU              cpuRounds
	AckLatencyP50NS         int64 `json:"ack_latency_p50_ns"`
	AckLatencyP99NS         int64 `json:"ack_latency_p99_ns"`
	AckLatencySamples       int   `json:"ack_latency_samples"` // over all rounds
	p50s, p99s              []float64
}

// queuePubFigure is durable publish at one publisher count.
type queuePubFigure struct {
	Publishers     int       `json:"publishers"`
	MsgsPerS       float64   `json:"msgs_per_s"`
	MsgsPerSRounds []float64 `json:"msgs_per_s_rounds"`
	Msgs           int64     `json:"msgs"` // acknowledged, over all rounds
	// CPU used meanwhile, in percent of one CPU: the server process and
	// this one (the publishers).
	ServerCPUPercent float64 `json:"server_cpu_percent"`
	ClientCPUPercent float64 `json:"client_cpu_percent"`
	cpu              cpuRounds
	// MsgsPerSync is how many messages one fsync of the hub's journal
	// covered (group commit): appends ÷ fsyncs over the run; hub only.
	MsgsPerSync float64 `json:"msgs_per_sync,omitempty"`
	perSync     []float64
	// hub/JetStream at this count (hub rows, with --vs-nats).
	VsJetStreamAlways  float64 `json:"vs_jetstream_always,omitempty"`
	VsJetStreamDefault float64 `json:"vs_jetstream_default,omitempty"`
}

// queueBenchReport is what bench queue prints with --json: the hub's
// figures at the top level, JetStream's beside them.
type queueBenchReport struct {
	queueFigures
	ConsumeAcks      string        `json:"consume_acks"`
	JetStreamAlways  *queueFigures `json:"jetstream_always,omitempty"`
	JetStreamDefault *queueFigures `json:"jetstream_default,omitempty"`
	// Ratios hub/JetStream: throughput (higher is better for the hub) and
	// ack latency p50 (lower is better).
	PublishVsJetStreamAlways  float64            `json:"publish_vs_jetstream_always,omitempty"`
	PublishVsJetStreamDefault float64            `json:"publish_vs_jetstream_default,omitempty"`
	ConsumeVsJetStreamAlways  float64            `json:"consume_vs_jetstream_always,omitempty"`
	ConsumeVsJetStreamDefault float64            `json:"consume_vs_jetstream_default,omitempty"`
	AckP50VsJetStreamAlways   float64            `json:"ack_latency_p50_vs_jetstream_always,omitempty"`
	AckP50VsJetStreamDefault  float64            `json:"ack_latency_p50_vs_jetstream_default,omitempty"`
	Targets                   []benchTargetCheck `json:"targets,omitempty"`
	Recovery                  *queueRecovery     `json:"recovery,omitempty"`
	Hub                       serverInfo         `json:"hub"`
	NATSAlways                *serverInfo        `json:"nats_always,omitempty"`
	NATSDefault               *serverInfo        `json:"nats_default,omitempty"`
	DataFS                    string             `json:"data_fs"` // file system type under --dir
	Settings                  map[string]any     `json:"settings"`
	Machine                   benchMachine       `json:"machine"`
}

// queueRecovery is the --recovery-gib measurement.
type queueRecovery struct {
	GiB          float64 `json:"gib"`
	MsgSize      int     `json:"msg_size"`
	Messages     int64   `json:"messages"`
	JournalBytes int64   `json:"journal_bytes"`
	Segments     int     `json:"segments"`
	FillSeconds  float64 `json:"fill_seconds"`
	StopSeconds  float64 `json:"stop_seconds"` // SIGTERM until the hub exited
	// Restart: from starting the process until the queue answered INFO,
	// with the journal's page cache as the fill left it (warm) and after
	// evicting it (cold).
	RestartToInfoNS     int64  `json:"restart_to_info_ns"`
	JournalReplay       string `json:"journal_replay"` // QueueInfo.Storage.RecoveredIn
	ColdRestartToInfoNS int64  `json:"cold_restart_to_info_ns"`
	ColdJournalReplay   string `json:"cold_journal_replay"`
	MessagesAfter       int64  `json:"messages_after"`
}

const (
	benchQueueName    = "bench"
	benchQueueSubject = "sb.bench.queue"
	recoveryQueue     = "recovery"
	recoverySubject   = "sb.bench.recovery"
)

func runBenchQueue(cmd *cobra.Command, s *queueBenchSettings) error {
	ctx, stop := benchContext()
	defer stop()
	progress := cmd.ErrOrStderr()
	bs := s.bench
	natsPath, err := bs.natsPath()
	if err != nil {
		return err
	}
	rep := &queueBenchReport{Machine: readMachine(), ConsumeAcks: "confirmed"}
	if s.profile != "" {
		stopProfile, err := startCPUProfile(s.profile)
		if err != nil {
			return err
		}
		defer stopProfile()
	}
	tmp, err := os.MkdirTemp(s.dir, "sb-bq-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	rep.DataFS = fsType(tmp)
	if rep.DataFS == "tmpfs" || rep.DataFS == "ramfs" {
		fmt.Fprintf(progress, "warning: %s is on %s: fsync costs nothing there; use --dir on a real disk\n", tmp, rep.DataFS)
	}

	hub := &hubQueueSide{s: s}
	defer hub.close()
	if err := hub.start(ctx, tmp, progress); err != nil {
		return err
	}
	sides := []queueSide{hub}
	figs := []*queueFigures{{Server: "hub"}}
	if natsPath != "" {
		for _, always := range []bool{true, false} {
			js := &jsQueueSide{s: s, always: always}
			defer js.close()
			if err := js.start(ctx, natsPath, tmp, progress); err != nil {
				return err
			}
			sides = append(sides, js)
			figs = append(figs, &queueFigures{Server: js.name()})
		}
	}
	for _, f := range figs {
		for _, n := range s.publishers {
			f.Publish = append(f.Publish, queuePubFigure{Publishers: n})
		}
	}

	payload := make([]byte, s.size)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	for round := 1; round <= bs.rounds; round++ {
		for _, sd := range sides {
			if err := sd.reset(ctx); err != nil {
				return fmt.Errorf("%s: reset: %w", sd.name(), err)
			}
		}
		for i, sd := range sides {
			if !s.phases["latency"] {
				break
			}
			samples, err := queueLatency(ctx, sd, payload, bs.duration, s.latencyMax)
			if err != nil {
				return fmt.Errorf("%s: ack latency: %w", sd.name(), err)
			}
			f := figs[i]
			f.p50s = append(f.p50s, float64(percentile(samples, 0.5)))
			f.p99s = append(f.p99s, float64(percentile(samples, 0.99)))
			f.AckLatencySamples += len(samples)
			fmt.Fprintf(progress, "round %d %s: ack latency p50 %s p99 %s (%d round trips)\n", round, sd.name(),
				fmtNS(percentile(samples, 0.5)), fmtNS(percentile(samples, 0.99)), len(samples))
		}
		for pi, n := range s.publishers {
			for i, sd := range sides {
				if !s.phases["publish"] {
					break
				}
				st0, _ := sd.storage(ctx)
				m := startCPU(sd.pid())
				msgs, el, err := queuePublishFor(ctx, sd, n, s.inFlight, payload, bs.duration, bs.timeout)
				if err != nil {
					return fmt.Errorf("%s: durable publish, %d publishers: %w", sd.name(), n, err)
				}
				p := &figs[i].Publish[pi]
				cs, cc := p.cpu.add(m)
				perSync := ""
				if st1, ok := sd.storage(ctx); ok && st1[1] > st0[1] {
					p.perSync = append(p.perSync, float64(st1[0]-st0[0])/float64(st1[1]-st0[1]))
					perSync = fmt.Sprintf(", %.0f msgs a fsync", p.perSync[len(p.perSync)-1])
				}
				rate := float64(msgs) / el.Seconds()
				p.MsgsPerSRounds = append(p.MsgsPerSRounds, rate)
				p.Msgs += msgs
				fmt.Fprintf(progress, "round %d %s: durable publish, %d publishers: %s msgs/s (%d in %.2fs; CPU: server %.0f%%, clients %.0f%%%s)\n",
					round, sd.name(), n, fmtRate(rate), msgs, el.Seconds(), cs, cc, perSync)
			}
		}
		for i, sd := range sides {
			if !s.phases["consume"] {
				break
			}
			if !s.phases["publish"] {
				// Nothing was published: fill the queue first, untimed.
				if _, _, err := queuePublishFor(ctx, sd, slices.Max(s.publishers), s.inFlight, payload, bs.duration, bs.timeout); err != nil {
					return fmt.Errorf("%s: fill before consuming: %w", sd.name(), err)
				}
			}
			m := startCPU(sd.pid())
			msgs, el, err := queueConsume(ctx, sd, s.batch, bs.duration, bs.timeout)
			if err != nil {
				return fmt.Errorf("%s: consume: %w", sd.name(), err)
			}
			f := figs[i]
			cs, cc := f.consumeCPU.add(m)
			rate := float64(msgs) / el.Seconds()
			f.ConsumeMsgsPerSRounds = append(f.ConsumeMsgsPerSRounds, rate)
			f.ConsumeMsgs += msgs
			fmt.Fprintf(progress, "round %d %s: consume: %s msgs/s (%d in %.2fs; CPU: server %.0f%%, clients %.0f%%)\n",
				round, sd.name(), fmtRate(rate), msgs, el.Seconds(), cs, cc)
		}
	}
	for _, f := range figs {
		f.summarize()
	}
	rep.queueFigures = *figs[0]
	rep.Hub = hub.proc.info
	if len(figs) == 3 {
		rep.JetStreamAlways, rep.JetStreamDefault = figs[1], figs[2]
		rep.NATSAlways, rep.NATSDefault = &sides[1].(*jsQueueSide).proc.info, &sides[2].(*jsQueueSide).proc.info
		rep.compare(s)
	}
	for _, sd := range sides[1:] {
		if err := sd.(*jsQueueSide).proc.stop(); err != nil {
			return fmt.Errorf("%s: %w", sd.name(), err)
		}
	}
	if s.recoveryGiB > 0 {
		if rep.Recovery, err = hub.recovery(ctx, progress); err != nil {
			return fmt.Errorf("recovery: %w", err)
		}
	}
	if err := hub.proc.stop(); err != nil {
		return fmt.Errorf("hub: %w", err)
	}
	rep.Machine.LoadAvgEnd = readLoadAvg()
	rep.Settings = map[string]any{
		"size": s.size, "publishers": s.publishers, "in_flight": s.inFlight, "batch": s.batch,
		"transport": s.transport, "duration": bs.duration.String(), "rounds": bs.rounds,
		"latency_msgs": s.latencyMax, "vs_nats": bs.vsNATS, "recovery_gib": s.recoveryGiB,
		"recovery_size": s.recoverySize,
	}
	return rep.write(cmd.OutOrStdout(), s, bs.json)
}

// summarize fills the medians and the best publisher count.
func (f *queueFigures) summarize() {
	for i := range f.Publish {
		p := &f.Publish[i]
		p.MsgsPerS = median(p.MsgsPerSRounds)
		p.ServerCPUPercent, p.ClientCPUPercent = median(p.cpu.server), median(p.cpu.client)
		p.MsgsPerSync = median(p.perSync)
		if p.MsgsPerS > f.DurablePublishMsgsPerS {
			f.DurablePublishMsgsPerS, f.DurablePublishPublishers = p.MsgsPerS, p.Publishers
		}
	}
	f.ConsumeMsgsPerS = median(f.ConsumeMsgsPerSRounds)
	f.ConsumeServerCPUPercent, f.ConsumeClientCPUPercent = median(f.consumeCPU.server), median(f.consumeCPU.client)
	f.AckLatencyP50NS, f.AckLatencyP99NS = int64(median(f.p50s)), int64(median(f.p99s))
}

// compare fills the ratios and the targets of the issue.
func (rep *queueBenchReport) compare(s *queueBenchSettings) {
	a, d := rep.JetStreamAlways, rep.JetStreamDefault
	for i := range rep.Publish {
		rep.Publish[i].VsJetStreamAlways = ratio(rep.Publish[i].MsgsPerS, a.Publish[i].MsgsPerS)
		rep.Publish[i].VsJetStreamDefault = ratio(rep.Publish[i].MsgsPerS, d.Publish[i].MsgsPerS)
	}
	rep.PublishVsJetStreamAlways = ratio(rep.DurablePublishMsgsPerS, a.DurablePublishMsgsPerS)
	rep.PublishVsJetStreamDefault = ratio(rep.DurablePublishMsgsPerS, d.DurablePublishMsgsPerS)
	rep.ConsumeVsJetStreamAlways = ratio(rep.ConsumeMsgsPerS, a.ConsumeMsgsPerS)
	rep.ConsumeVsJetStreamDefault = ratio(rep.ConsumeMsgsPerS, d.ConsumeMsgsPerS)
	rep.AckP50VsJetStreamAlways = ratio(float64(rep.AckLatencyP50NS), float64(a.AckLatencyP50NS))
	rep.AckP50VsJetStreamDefault = ratio(float64(rep.AckLatencyP50NS), float64(d.AckLatencyP50NS))
	if !s.phases["publish"] {
		return
	}
	for _, t := range []struct {
		name  string
		r     float64
		want  float64
		wants string
	}{
		{"durable publish msgs/s, hub ÷ JetStream sync always", rep.PublishVsJetStreamAlways, 10, ">= 10"},
		{"durable publish msgs/s, hub ÷ JetStream default sync", rep.PublishVsJetStreamDefault, 1, ">= 1"},
	} {
		rep.Targets = append(rep.Targets, benchTargetCheck{Name: t.name, Workload: "durable_publish", Transport: s.transport,
			Size: s.size, Metric: "msgs_per_sec", Ratio: t.r, Want: t.wants, Met: t.r >= t.want})
	}
}

func (rep *queueBenchReport) write(w io.Writer, s *queueBenchSettings, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	m := rep.Machine
	peer := ""
	if rep.NATSAlways != nil {
		peer = " vs nats-server " + rep.NATSAlways.Version + " (JetStream, file storage, R1)"
	}
	fmt.Fprintf(w, "switchboard bench queue: hub %s%s, %s\n", rep.Hub.Version, peer, m.Date)
	fmt.Fprintf(w, "machine: %d cores (GOMAXPROCS %d), %s, %s/%s %s, %s; data on %s\n", m.Cores, m.GOMAXPROCS, m.CPU, m.OS, m.Arch, m.Kernel, m.Go, rep.DataFS)
	fmt.Fprintf(w, "load average: %s at start, %s at end\n", m.LoadAvgStart, m.LoadAvgEnd)
	fmt.Fprintf(w, "settings: %s payloads, hub over %s, median of %d rounds of %v per run, servers in turn\n",
		sizeLabel(s.size), s.transport, s.bench.rounds, s.bench.duration)

	all := []*queueFigures{&rep.queueFigures}
	if rep.JetStreamAlways != nil {
		all = append(all, rep.JetStreamAlways, rep.JetStreamDefault)
	}
	var tw *tabwriter.Writer
	if s.phases["publish"] {
		fmt.Fprintf(w, "\ndurable publish: %d in flight per publisher, each on its own connection; acknowledged msgs/s; CPU in %% of one CPU\n", s.inFlight)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "publishers\tserver\tmsgs/s\tMB/s\thub/server\tserver CPU\tclients CPU\tmsgs/fsync\t")
		for i := range rep.Publish {
			for _, f := range all {
				p := f.Publish[i]
				perSync := ""
				if p.MsgsPerSync > 0 {
					perSync = fmt.Sprintf("%.0f", p.MsgsPerSync)
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%.1f\t%s\t%.0f%%\t%.0f%%\t%s\t\n", p.Publishers, f.Server, fmtRate(p.MsgsPerS),
					p.MsgsPerS*float64(s.size)/1e6, fmtRatio(ratio(rep.Publish[i].MsgsPerS, p.MsgsPerS), f.Server),
					p.ServerCPUPercent, p.ClientCPUPercent, perSync)
			}
		}
		tw.Flush()
	}
	if s.phases["consume"] {
		fmt.Fprintf(w, "\nconsume: Fetch %d, then ack each, all concurrently; acks confirmed (each waits for the server's answer)\n", s.batch)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "server\tmsgs/s\tmsgs (all rounds)\thub/server\tserver CPU\tclient CPU\t")
		for _, f := range all {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.0f%%\t%.0f%%\t\n", f.Server, fmtRate(f.ConsumeMsgsPerS), f.ConsumeMsgs,
				fmtRatio(ratio(rep.ConsumeMsgsPerS, f.ConsumeMsgsPerS), f.Server), f.ConsumeServerCPUPercent, f.ConsumeClientCPUPercent)
		}
		tw.Flush()
	}
	if s.phases["latency"] {
		fmt.Fprintf(w, "\npublish-ack latency: one publisher, one publish in flight\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "server\tp50\tp99\tround trips\thub/server p50\t")
		for _, f := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t\n", f.Server, fmtNS(f.AckLatencyP50NS), fmtNS(f.AckLatencyP99NS), f.AckLatencySamples,
				fmtRatio(ratio(float64(rep.AckLatencyP50NS), float64(f.AckLatencyP50NS)), f.Server))
		}
		tw.Flush()
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintf(w, "\ntargets (issue 6), best publisher count of each server\n")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range rep.Targets {
			verdict := "NOT MET"
			if t.Met {
				verdict = "met"
			}
			fmt.Fprintf(tw, "  %s\t%.2f×\ttarget %s\t%s\n", t.Name, t.Ratio, strings.Replace(t.Want, ">=", "≥", 1), verdict)
		}
		tw.Flush()
	}
	if r := rep.Recovery; r != nil {
		fmt.Fprintf(w, "\nrecovery: %s messages of %s, %.2f GiB of journal in %d segments (filled in %.1fs)\n",
			fmtRate(float64(r.Messages)), sizeLabel(r.MsgSize), float64(r.JournalBytes)/(1<<30), r.Segments, r.FillSeconds)
		fmt.Fprintf(w, "  restart until the queue answers INFO: %s (journal replay %s), page cache warm\n", fmtNS(r.RestartToInfoNS), r.JournalReplay)
		fmt.Fprintf(w, "  restart until the queue answers INFO: %s (journal replay %s), journal evicted from the page cache\n", fmtNS(r.ColdRestartToInfoNS), r.ColdJournalReplay)
		fmt.Fprintf(w, "  stop (SIGTERM until exit) %.2fs; messages after restart %d\n", r.StopSeconds, r.MessagesAfter)
	}
	return nil
}

func fmtRatio(r float64, server string) string {
	if server == "hub" || r == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", r)
}

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

// jsQueueSide is nats-server with JetStream, in its own process, through
// nats.go's jetstream package.
type jsQueueSide struct {
	s      *queueBenchSettings
	always bool // sync_interval: always
	proc   *serverProc
	nc     *nats.Conn
	js     jetstream.JetStream
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
	if j.nc, j.js, err = j.connect("bench queue admin"); err != nil {
		return err
	}
	return nil
}

func (j *jsQueueSide) connect(name string) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(j.url, nats.Name(name), nats.NoReconnect())
	if err != nil {
		return nil, nil, err
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(2*j.s.inFlight))
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return nc, js, nil
}

func (j *jsQueueSide) reset(ctx context.Context) error {
	if err := j.js.DeleteStream(ctx, jsStream); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		return err
	}
	_, err := j.js.CreateStream(ctx, jetstream.StreamConfig{Name: jsStream, Subjects: []string{benchQueueSubject},
		Retention: jetstream.WorkQueuePolicy, Storage: jetstream.FileStorage, Replicas: 1})
	if err != nil {
		return err
	}
	_, err = j.js.CreateOrUpdateConsumer(ctx, jsStream, jetstream.ConsumerConfig{Durable: jsConsumer, AckPolicy: jetstream.AckExplicitPolicy})
	return err
}

func (j *jsQueueSide) stored(ctx context.Context) (int64, error) {
	st, err := j.js.Stream(ctx, jsStream)
	if err != nil {
		return 0, err
	}
	inf, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int64(inf.State.Msgs), nil
}

func (j *jsQueueSide) close() {
	if j.nc != nil {
		j.nc.Close()
	}
	if j.proc != nil {
		j.proc.stop()
	}
}

type jsPublisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subject string
}

func (j *jsQueueSide) publisher(_ context.Context, subject string) (queuePublisher, error) {
	nc, js, err := j.connect("bench queue publisher")
	if err != nil {
		return nil, err
	}
	return &jsPublisher{nc: nc, js: js, subject: subject}, nil
}

func (p *jsPublisher) async(data []byte) (func(context.Context) error, error) {
	f, err := p.js.PublishAsync(p.subject, data)
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		select {
		case <-f.Ok():
			return nil
		case err := <-f.Err():
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}, nil
}

func (p *jsPublisher) sync(ctx context.Context, data []byte) error {
	_, err := p.js.Publish(ctx, p.subject, data)
	return err
}

func (p *jsPublisher) close() { p.nc.Close() }

type jsConsumerConn struct {
	nc *nats.Conn
	c  jetstream.Consumer
}

func (j *jsQueueSide) consumer(ctx context.Context) (queueConsumer, error) {
	nc, js, err := j.connect("bench queue consumer")
	if err != nil {
		return nil, err
	}
	c, err := js.Consumer(ctx, jsStream, jsConsumer)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &jsConsumerConn{nc: nc, c: c}, nil
}

func (c *jsConsumerConn) fetch(_ context.Context, batch int) ([]func(context.Context) error, error) {
	b, err := c.c.FetchNoWait(batch)
	if err != nil {
		return nil, err
	}
	var acks []func(context.Context) error
	for m := range b.Messages() {
		acks = append(acks, m.DoubleAck)
	}
	if err := b.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
		return nil, err
	}
	return acks, nil
}

func (c *jsConsumerConn) close() { c.nc.Close() }

// recovery fills a queue with --recovery-gib of journal, then restarts the
// hub twice (page cache warm, then evicted) and times each restart until
// the queue answers INFO.
func (h *hubQueueSide) recovery(ctx context.Context, progress io.Writer) (*queueRecovery, error) {
	s := h.s
	r := &queueRecovery{GiB: s.recoveryGiB, MsgSize: s.recoverySize}
	target := int64(s.recoveryGiB * (1 << 30))
	// Only the recovery queue is replayed at the restarts.
	if err := h.admin.DeleteQueue(ctx, benchQueueName); err != nil && !errors.Is(err, switchboard.ErrQueueNotFound) {
		return nil, err
	}
	if _, err := h.admin.CreateQueue(ctx, switchboard.QueueConfig{Name: recoveryQueue, Subjects: []string{recoverySubject},
		MaxMsgSize: max(s.recoverySize, 1<<20)}); err != nil {
		return nil, err
	}
	payload := make([]byte, s.recoverySize)
	for i := range payload {
		payload[i] = byte('a' + i%26)
	}
	fmt.Fprintf(progress, "recovery: filling queue %q with %s of journal (%s messages)\n", recoveryQueue, sizeLabel64(target), sizeLabel(s.recoverySize))
	var stop atomic.Bool
	watchDone := make(chan error, 1)
	watch := func() {
		go func() {
			t := time.NewTicker(200 * time.Millisecond)
			defer t.Stop()
			for !stop.Load() {
				select {
				case <-ctx.Done():
					stop.Store(true)
					watchDone <- ctx.Err()
					return
				case <-t.C:
				}
				inf, err := h.admin.QueueInfo(ctx, recoveryQueue)
				if err != nil {
					stop.Store(true)
					watchDone <- err
					return
				}
				if inf.Storage.Bytes >= target {
					stop.Store(true)
				}
			}
			watchDone <- nil
		}()
	}
	_, el, err := queuePublish(ctx, h, recoverySubject, slices.Max(s.publishers), s.inFlight, payload, &stop, watch)
	stop.Store(true)
	if werr := <-watchDone; err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	r.FillSeconds = el.Seconds()
	inf, err := h.admin.QueueInfo(ctx, recoveryQueue)
	if err != nil {
		return nil, err
	}
	r.Messages, r.JournalBytes, r.Segments = inf.Messages, inf.Storage.Bytes, inf.Storage.Segments
	fmt.Fprintf(progress, "recovery: %d messages, %.2f GiB of journal in %.1fs\n", r.Messages, float64(r.JournalBytes)/(1<<30), r.FillSeconds)

	for _, cold := range []bool{false, true} {
		d, replay, n, stopped, err := h.restart(ctx, cold)
		if err != nil {
			return nil, err
		}
		if n != r.Messages {
			return nil, fmt.Errorf("the queue held %d messages before the restart, %d after", r.Messages, n)
		}
		r.MessagesAfter = n
		if cold {
			r.ColdRestartToInfoNS, r.ColdJournalReplay = int64(d), replay
		} else {
			r.RestartToInfoNS, r.JournalReplay, r.StopSeconds = int64(d), replay, stopped.Seconds()
		}
		fmt.Fprintf(progress, "recovery: restart (cold cache %v) until INFO %s, journal replay %s\n", cold, fmtNS(int64(d)), replay)
	}
	return r, nil
}

// restart stops the hub, evicts its files from the page cache if cold, and
// starts it again on the same socket and port; it returns the time from
// starting the process until the recovery queue answered INFO, the
// journal's replay time, the queue's messages and how long stopping took.
func (h *hubQueueSide) restart(ctx context.Context, cold bool) (time.Duration, string, int64, time.Duration, error) {
	h.admin.Close()
	h.admin = nil
	t0 := time.Now()
	if err := h.proc.stop(); err != nil {
		return 0, "", 0, 0, fmt.Errorf("stop hub: %w", err)
	}
	stopped := time.Since(t0)
	if cold {
		if err := evictPageCache(filepath.Join(h.dir, "data")); err != nil {
			return 0, "", 0, 0, err
		}
	}
	old := h.proc
	stderr := old.cmd.Stderr
	start := time.Now()
	p, err := h.launch(old.info.Unix, old.info.TCP, stderr)
	if err != nil {
		return 0, "", 0, 0, err
	}
	h.proc = p
	deadline := start.Add(10*time.Minute + h.s.bench.timeout)
	for {
		nc, err := switchboard.Connect(ctx, p.url("unix"), &switchboard.Options{Name: "bench queue admin", NoReconnect: true, DialTimeout: time.Second})
		if err == nil {
			var inf *switchboard.QueueInfo
			inf, err = nc.QueueInfo(ctx, recoveryQueue)
			if err == nil {
				d := time.Since(start)
				h.admin = nc
				if err := p.waitReady(ctx, "hub"); err != nil {
					return 0, "", 0, 0, err
				}
				return d, inf.Storage.RecoveredIn, inf.Messages, stopped, nil
			}
			nc.Close()
		}
		select {
		case <-p.exited:
			return 0, "", 0, 0, p.exitErr("hub")
		case <-ctx.Done():
			return 0, "", 0, 0, ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return 0, "", 0, 0, fmt.Errorf("the queue did not answer INFO within %v of the restart: %v", time.Since(start), err)
		}
	}
}

// evictPageCache drops the cached pages of every file under dir
// (POSIX_FADV_DONTNEED; the files were fsynced, so their pages are clean).
func evictPageCache(dir string) error {
	return filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return err
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			return fmt.Errorf("fadvise %s: %w", path, err)
		}
		return nil
	})
}

// fsType returns the type of the file system that holds dir, from
// /proc/mounts ("" if unknown).
func fsType(dir string) string {
	abs, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return ""
	}
	b, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return ""
	}
	best, typ := -1, ""
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > best {
			best, typ = len(mp), f[2]
		}
	}
	return typ
}

// cpuMark is the CPU time of a server process and of this one at the
// start of a run.
type cpuMark struct {
	pid            int
	server, client time.Duration
	at             time.Time
}

func startCPU(pid int) cpuMark {
	return cpuMark{pid: pid, server: procCPU(pid), client: procCPU(os.Getpid()), at: time.Now()}
}

// cpuRounds collects each round's CPU use, in percent of one CPU.
type cpuRounds struct{ server, client []float64 }

// add records the CPU used since m and returns it.
func (c *cpuRounds) add(m cpuMark) (server, client float64) {
	el := time.Since(m.at).Seconds()
	server = float64(procCPU(m.pid)-m.server) / 1e9 / el * 100
	client = float64(procCPU(os.Getpid())-m.client) / 1e9 / el * 100
	c.server, c.client = append(c.server, server), append(c.client, client)
	return server, client
}

// procCPU is the user and system CPU time process pid has used, from
// /proc/PID/stat (0 if unknown).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, field 2, may hold spaces: count from its ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	const hz = 100 // USER_HZ on Linux
	return time.Duration(u+st) * time.Second / hz
}

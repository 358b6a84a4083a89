package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

const benchQueueLong = `Measure the hub's durable queues and, with --vs-nats, JetStream in the same
run. Every server runs in its own process with its files in a temporary
directory under --dir (which must be a real disk, not tmpfs, for fsync to
mean anything); the clients are this process, one connection per role.

  durable publish  --publishers P (default 1 and 8) publishers, each on its
                   own connection keeping --in-flight publishes awaiting their
                   acknowledgement (hub: PublishDurableAsync; JetStream:
                   publishes with a reply subject, its publish acks arriving
                   on one wildcard inbox), --size B payloads, for --duration;
                   acknowledged msgs/s
  consume          what the publish runs left in the queue: Fetch --batch
                   messages, ack each one with a confirmed ack (hub:
                   QueueMsg.Ack, answered once the ack is on disk; JetStream:
                   a request with +ACK, its double ack), all acks of a batch
                   concurrently, then fetch
                   again, for --duration or until the queue is empty; msgs/s
                   (with --phases consume alone, the queue is first filled
                   for --duration, untimed)
  ack latency      one publisher, one publish in flight (hub: PublishDurable;
                   JetStream: a request to the stream's subject): p50 and p99
                   of the round trip

Both servers are driven by this repository's client: the hub through its
queue API, JetStream through its $JS.API. requests.

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

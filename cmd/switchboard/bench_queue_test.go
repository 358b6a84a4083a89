package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"testing"
	"time"
)

// TestBenchQueueBinary runs bench queue end to end in a tiny
// configuration, against the hub and both JetStream servers, with a small
// recovery fill. It checks the JSON report's fields, never how fast
// anything was.
func TestBenchQueueBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries and starts servers; skipped with -short")
	}
	bin := buildBenchBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	args := []string{"bench", "queue", "--json", "--vs-nats", "--duration", "200ms", "--rounds", "1",
		"--publishers", "1,2", "--in-flight", "32", "--latency-msgs", "200", "--recovery-gib", "0.002",
		"--recovery-size", "1024", "--dir", t.TempDir()}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("switchboard %v: %v\nstderr:\n%s", args, err, stderr.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	for _, k := range []string{"durable_publish_msgs_per_s", "durable_publish_publishers", "publish", "consume_msgs_per_s",
		"consume_acks", "ack_latency_p50_ns", "ack_latency_p99_ns", "jetstream_always", "jetstream_default",
		"publish_vs_jetstream_always", "publish_vs_jetstream_default", "consume_vs_jetstream_always",
		"ack_latency_p50_vs_jetstream_always", "targets", "recovery", "hub", "nats_always", "nats_default",
		"data_fs", "settings", "machine"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report has no %q", k)
		}
	}
	var rep queueBenchReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.ConsumeAcks != "confirmed" {
		t.Errorf("consume_acks = %q", rep.ConsumeAcks)
	}
	check := func(f *queueFigures, server string) {
		t.Helper()
		if f == nil {
			t.Fatalf("no figures for %s", server)
		}
		if f.Server != server {
			t.Errorf("server %q, want %q", f.Server, server)
		}
		if f.DurablePublishMsgsPerS <= 0 || f.ConsumeMsgsPerS <= 0 || f.ConsumeMsgs <= 0 {
			t.Errorf("%s: rates missing: %+v", server, f)
		}
		if f.AckLatencyP50NS <= 0 || f.AckLatencyP99NS < f.AckLatencyP50NS || f.AckLatencySamples <= 0 {
			t.Errorf("%s: ack latency p50 %d p99 %d over %d samples", server, f.AckLatencyP50NS, f.AckLatencyP99NS, f.AckLatencySamples)
		}
		if len(f.Publish) != 2 || f.Publish[0].Publishers != 1 || f.Publish[1].Publishers != 2 {
			t.Fatalf("%s: publish figures %+v; want publishers 1 and 2", server, f.Publish)
		}
		best := 0.0
		for _, p := range f.Publish {
			if p.MsgsPerS <= 0 || p.Msgs <= 0 || len(p.MsgsPerSRounds) != 1 {
				t.Errorf("%s: publish figure incomplete: %+v", server, p)
			}
			best = max(best, p.MsgsPerS)
		}
		if f.DurablePublishMsgsPerS != best {
			t.Errorf("%s: durable_publish_msgs_per_s %v is not the best count's %v", server, f.DurablePublishMsgsPerS, best)
		}
	}
	check(&rep.queueFigures, "hub")
	check(rep.JetStreamAlways, "jetstream-always")
	check(rep.JetStreamDefault, "jetstream-default")
	for _, p := range rep.Publish {
		if p.VsJetStreamAlways <= 0 || p.VsJetStreamDefault <= 0 {
			t.Errorf("hub publish at %d publishers has no ratios: %+v", p.Publishers, p)
		}
	}
	if rep.PublishVsJetStreamAlways <= 0 || rep.PublishVsJetStreamDefault <= 0 || rep.ConsumeVsJetStreamDefault <= 0 || rep.AckP50VsJetStreamDefault <= 0 {
		t.Errorf("ratios missing: %s", stdout.String())
	}
	if len(rep.Targets) != 2 || rep.Targets[0].Want != ">= 10" || rep.Targets[1].Want != ">= 1" {
		t.Errorf("targets %+v; want >= 10 (sync always) and >= 1 (default)", rep.Targets)
	}
	r := rep.Recovery
	if r == nil {
		t.Fatal("no recovery figures")
	}
	if r.JournalBytes < 2<<20 || r.Messages <= 0 || r.MessagesAfter != r.Messages || r.MsgSize != 1024 {
		t.Errorf("recovery fill: %+v; want at least 2 MiB of journal, every message back", r)
	}
	if r.RestartToInfoNS <= 0 || r.ColdRestartToInfoNS <= 0 || r.JournalReplay == "" || r.ColdJournalReplay == "" {
		t.Errorf("recovery times missing: %+v", r)
	}
	if rep.Hub.Version == "" || rep.NATSAlways == nil || rep.NATSAlways.Version == "" || rep.NATSDefault == nil {
		t.Errorf("server info incomplete: hub %+v, nats %+v %+v", rep.Hub, rep.NATSAlways, rep.NATSDefault)
	}
	if m := rep.Machine; m.Cores < 1 || m.Go == "" || m.Date == "" {
		t.Errorf("machine incomplete: %+v", m)
	}
}

func TestBenchQueueUsage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary; skipped with -short")
	}
	bin := buildBenchBinaries(t)
	for _, args := range [][]string{
		{"--transport", "udp"},
		{"--publishers", "0"},
		{"--size", "0"},
	} {
		out, err := exec.Command(bin, append([]string{"bench", "queue"}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != exitUsage {
			t.Errorf("bench queue %v: %v, want exit code %d\n%s", args, err, exitUsage, out)
		}
	}
}

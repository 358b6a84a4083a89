package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"runtime"
	"testing"
	"time"

	"switchboard/internal/proctest"
)

// TestBenchShmJSON runs bench shm with small counts and checks its JSON
// report: every figure the issue names is there and plausible, the rounds
// took turns (one ratio per round, the reported ratios their medians),
// and the socket stream ran. It checks no speed: timed assertions flake
// on a shared machine.
func TestBenchShmJSON(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("bench shm needs 2 CPUs (the raw spin baseline)")
	}
	bin := proctest.Build(t, "switchboard/cmd/switchboard")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "bench", "shm", "--json", "--rounds", "3",
		"--round-trips", "600", "--warmup", "300", "--stream", "20000", "--large", "6",
		"--baseline", "3000", "--wake", "10")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench shm: %v\nstderr:\n%s", err, stderr.String())
	}
	var res shmBenchResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("not a JSON report: %v\n%s", err, stdout.String())
	}
	var raw map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rtt_p50_ns", "rtt_p99_ns", "msgs_per_s", "large_rtt_p50_ns", "baseline_rtt_p50_ns", "rtt_vs_baseline", "stream_vs_socket", "large_vs_small", "rounds"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report has no %q", k)
		}
	}
	if res.Rounds != 3 || len(res.RTTVsBaselineRounds) != 3 || len(res.LargeVsSmallRounds) != 3 || len(res.BaselineRoundsP50NS) != 3 {
		t.Errorf("rounds %d, ratios %v and %v, baselines %v: want 3 of each", res.Rounds, res.RTTVsBaselineRounds, res.LargeVsSmallRounds, res.BaselineRoundsP50NS)
	}
	if res.RTTP50NS <= 0 || res.RTTP99NS < res.RTTP50NS || res.BaselineRTTP50NS <= 0 || res.LargeRTTP50NS <= 0 {
		t.Errorf("round trips: 16 B p50 %d p99 %d, baseline %d, 4 MiB %d", res.RTTP50NS, res.RTTP99NS, res.BaselineRTTP50NS, res.LargeRTTP50NS)
	}
	if res.RoundTrips != 3*200 || res.LargeRoundTrips != 3*2 {
		t.Errorf("%d 16 B and %d 4 MiB round trips measured, want 600 and 6", res.RoundTrips, res.LargeRoundTrips)
	}
	if res.MsgsPerS <= 0 || res.SocketMsgsPerS <= 0 || res.StreamMsgs != 20000 {
		t.Errorf("streams: %v and %v msgs/s over %d messages", res.MsgsPerS, res.SocketMsgsPerS, res.StreamMsgs)
	}
	if m := median(res.RTTVsBaselineRounds); res.RTTVsBaseline != m {
		t.Errorf("rtt_vs_baseline %v, the rounds' median %v", res.RTTVsBaseline, m)
	}
	if m := median(res.LargeVsSmallRounds); res.LargeVsSmall != m {
		t.Errorf("large_vs_small %v, the rounds' median %v", res.LargeVsSmall, m)
	}
}

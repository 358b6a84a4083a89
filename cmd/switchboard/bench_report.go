package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// benchMachine describes where the bench ran.
type benchMachine struct {
	Cores        int    `json:"cores"`
	GOMAXPROCS   int    `json:"gomaxprocs"`
	CPU          string `json:"cpu,omitempty"`
	OS           string `json:"os"`
	Arch         string `json:"arch"`
	Kernel       string `json:"kernel"`
	Go           string `json:"go"`
	Date         string `json:"date"`
	LoadAvgStart string `json:"loadavg_start,omitempty"` // /proc/loadavg when the bench started
	LoadAvgEnd   string `json:"loadavg_end,omitempty"`
}

func readMachine() benchMachine {
	m := benchMachine{
		Cores:        runtime.NumCPU(),
		GOMAXPROCS:   runtime.GOMAXPROCS(0),
		OS:           runtime.GOOS,
		Arch:         runtime.GOARCH,
		Kernel:       kernelRelease(),
		Go:           runtime.Version(),
		Date:         time.Now().UTC().Format(time.RFC3339),
		LoadAvgStart: readLoadAvg(),
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// readLoadAvg returns the 1, 5 and 15 minute load averages.
func readLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// benchTargetCheck is one of the README's performance targets, evaluated.
type benchTargetCheck struct {
	Name      string  `json:"name"`
	Workload  string  `json:"workload"`
	Transport string  `json:"transport"` // hub transport, compared with nats-server over TCP
	Size      int     `json:"size"`
	Metric    string  `json:"metric"` // "msgs_per_sec" or "p50_ns"
	Ratio     float64 `json:"ratio"`
	Want      string  `json:"want"` // ">= 1.5" or "<= 0.5"
	Met       bool    `json:"met"`
}

// benchReport is everything one bench invocation measured; --json prints
// it as is.
type benchReport struct {
	Machine  benchMachine   `json:"machine"`
	Settings map[string]any `json:"settings"`
	Hub      serverInfo     `json:"hub"`
	NATS     *serverInfo    `json:"nats,omitempty"`
	// Runs has every run in the order they ran.
	Runs []benchResult `json:"runs,omitempty"`
	// Results has one row per workload, size, server and transport: the
	// median over the rounds of each rate, duration and percentile, the
	// totals of Msgs, Expected and Received, and the hub/nats ratio.
	Results []benchResult      `json:"results,omitempty"`
	Targets []benchTargetCheck `json:"targets,omitempty"`
	Conns   []connsResult      `json:"conns,omitempty"`

	settings *benchSettings // for the text header
}

func (s *benchSettings) jsonSettings(workloads []string) map[string]any {
	return map[string]any{
		"workloads":  workloads,
		"sizes":      s.sizes,
		"transports": s.transports,
		"msgs":       s.msgs,
		"max_bytes":  s.maxBytes,
		"duration":   s.duration.String(),
		"requests":   s.requests,
		"warmup":     s.warmup,
		"subs":       s.subs,
		"rounds":     s.rounds,
		"window":     s.window,
		"vs_nats":    s.vsNATS,
	}
}

// summarize fills Results and Targets from Runs.
func (rep *benchReport) summarize() {
	type key struct {
		workload, server, transport string
		size                        int
	}
	var order []key
	groups := map[key][]benchResult{}
	for _, r := range rep.Runs {
		k := key{r.Workload, r.Server, r.Transport, r.Size}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	rep.Results = nil
	for _, k := range order {
		rs := groups[k]
		med := func(f func(benchResult) float64) float64 {
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return median(v)
		}
		s := benchResult{Workload: k.workload, Server: k.server, Transport: k.transport, Size: k.size,
			Rounds: len(rs), Subscribers: rs[0].Subscribers}
		for _, r := range rs {
			s.Msgs += r.Msgs
			s.Expected += r.Expected
			s.Received += r.Received
		}
		s.Seconds = med(func(r benchResult) float64 { return r.Seconds })
		s.MsgsPerSec = med(func(r benchResult) float64 { return r.MsgsPerSec })
		s.MBPerSec = med(func(r benchResult) float64 { return r.MBPerSec })
		s.PubMsgsPerSec = med(func(r benchResult) float64 { return r.PubMsgsPerSec })
		s.P50NS = int64(med(func(r benchResult) float64 { return float64(r.P50NS) }))
		s.P99NS = int64(med(func(r benchResult) float64 { return float64(r.P99NS) }))
		s.P999NS = int64(med(func(r benchResult) float64 { return float64(r.P999NS) }))
		rep.Results = append(rep.Results, s)
	}
	for i := range rep.Results {
		h := &rep.Results[i]
		if h.Server != "hub" {
			continue
		}
		n := rep.find(h.Workload, "nats", "tcp", h.Size)
		if n == nil {
			continue
		}
		var ratio float64
		switch {
		case h.Workload == "reqrep" && n.P50NS > 0:
			ratio = float64(h.P50NS) / float64(n.P50NS)
		case h.Workload != "reqrep" && n.MsgsPerSec > 0:
			ratio = h.MsgsPerSec / n.MsgsPerSec
		default:
			continue // no ratio to a zero (JSON has no Inf)
		}
		h.Ratio = &ratio
	}

	rep.Targets = nil
	for _, t := range []struct {
		name, workload, transport string
		higher                    bool
		want                      float64
	}{
		{"pub→sub 16 B msgs/s, hub unix ÷ nats tcp", "pubsub", "unix", true, 1.5},
		{"pub→sub 16 B msgs/s, hub tcp ÷ nats tcp", "pubsub", "tcp", true, 1.0},
		{"request/reply 16 B p50, hub unix ÷ nats tcp", "reqrep", "unix", false, 0.5},
		{"request/reply 16 B p50, hub tcp ÷ nats tcp", "reqrep", "tcp", false, 1.0},
	} {
		h := rep.find(t.workload, "hub", t.transport, 16)
		if h == nil || h.Ratio == nil {
			continue
		}
		c := benchTargetCheck{Name: t.name, Workload: t.workload, Transport: t.transport, Size: 16, Ratio: *h.Ratio}
		if t.higher {
			c.Metric, c.Want, c.Met = "msgs_per_sec", ">= "+strconv.FormatFloat(t.want, 'f', 1, 64), *h.Ratio >= t.want
		} else {
			c.Metric, c.Want, c.Met = "p50_ns", "<= "+strconv.FormatFloat(t.want, 'f', 1, 64), *h.Ratio <= t.want
		}
		rep.Targets = append(rep.Targets, c)
	}
}

func (rep *benchReport) find(workload, server, transport string, size int) *benchResult {
	for i := range rep.Results {
		r := &rep.Results[i]
		if r.Workload == workload && r.Server == server && r.Transport == transport && r.Size == size {
			return r
		}
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// write prints the report as text or as one indented JSON document.
func (rep *benchReport) write(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.writeHeader(w)
	titles := map[string]string{
		"pub":    "pub: one publisher, no subscribers; published msgs/s",
		"pubsub": "pubsub: one publisher, one subscriber; delivered msgs/s, first publish to last receipt",
		"fanout": "fanout: one publisher, %d subscribers; delivered msgs/s (all subscribers) and publish rate",
		"reqrep": "reqrep: sequential request/reply round trips; latency over every sample, ratio of p50",
	}
	for _, wl := range []string{"pub", "pubsub", "fanout", "reqrep"} {
		var rows []benchResult
		for _, r := range rep.Results {
			if r.Workload == wl {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		title := titles[wl]
		if wl == "fanout" {
			title = fmt.Sprintf(title, rows[0].Subscribers)
		}
		fmt.Fprintf(w, "\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		switch wl {
		case "reqrep":
			fmt.Fprintln(tw, "size\tserver\ttransport\tp50\tp99\tp99.9\tround trips/s\thub/nats\t")
		case "fanout":
			fmt.Fprintln(tw, "size\tserver\ttransport\tdelivered/s\tMB/s\tpublished/s\thub/nats\t")
		default:
			fmt.Fprintln(tw, "size\tserver\ttransport\tmsgs/s\tMB/s\thub/nats\t")
		}
		for _, r := range rows {
			ratio := ""
			if r.Ratio != nil {
				ratio = fmt.Sprintf("%.2f×", *r.Ratio)
			}
			switch wl {
			case "reqrep":
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", sizeLabel(r.Size), r.Server, r.Transport,
					fmtNS(r.P50NS), fmtNS(r.P99NS), fmtNS(r.P999NS), fmtRate(r.MsgsPerSec), ratio)
			case "fanout":
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%s\t%s\t\n", sizeLabel(r.Size), r.Server, r.Transport,
					fmtRate(r.MsgsPerSec), r.MBPerSec, fmtRate(r.PubMsgsPerSec), ratio)
			default:
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\t%s\t\n", sizeLabel(r.Size), r.Server, r.Transport,
					fmtRate(r.MsgsPerSec), r.MBPerSec, ratio)
			}
		}
		tw.Flush()
	}
	if len(rep.Targets) > 0 {
		fmt.Fprintf(w, "\ntargets (README)\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, t := range rep.Targets {
			verdict := "MISSED"
			if t.Met {
				verdict = "met"
			}
			fmt.Fprintf(tw, "  %s\t%.2f×\twant %s×\t%s\n", t.Name, t.Ratio, t.Want, verdict)
		}
		tw.Flush()
	}
	if len(rep.Conns) > 0 {
		writeConns(w, rep.Conns)
	}
	return nil
}

func (rep *benchReport) writeHeader(w io.Writer) {
	m := rep.Machine
	peer := ""
	if rep.NATS != nil {
		peer = " vs nats-server " + rep.NATS.Version
	}
	fmt.Fprintf(w, "switchboard bench: hub %s%s, %s\n", rep.Hub.Version, peer, m.Date)
	fmt.Fprintf(w, "machine: %d cores (GOMAXPROCS %d), %s, %s/%s %s, %s\n", m.Cores, m.GOMAXPROCS, m.CPU, m.OS, m.Arch, m.Kernel, m.Go)
	if m.LoadAvgStart != "" {
		fmt.Fprintf(w, "load average: %s at start, %s at end\n", m.LoadAvgStart, m.LoadAvgEnd)
	}
	if s := rep.settings; s != nil && len(rep.Runs) > 0 {
		fmt.Fprintf(w, "settings: median of %d rounds, servers alternating; a run publishes at most %d messages, %s, or for %v; reqrep: %d round trips or %v after %d to warm up; window %s\n",
			s.rounds, s.msgs, sizeLabel64(s.maxBytes), s.duration, s.requests, s.duration, s.warmup, sizeLabel64(s.window))
	}
}

// fmtRate formats a rate with thousands separators.
func fmtRate(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// fmtNS formats a latency: 23.4µs, 1.23ms.
func fmtNS(ns int64) string {
	d := time.Duration(ns)
	switch {
	case d < time.Microsecond:
		return strconv.FormatInt(ns, 10) + "ns"
	case d < time.Millisecond:
		return strconv.FormatFloat(float64(ns)/1e3, 'f', 1, 64) + "µs"
	case d < time.Second:
		return strconv.FormatFloat(float64(ns)/1e6, 'f', 2, 64) + "ms"
	}
	return d.Round(time.Millisecond).String()
}

// progressLine is the one-line summary of a run printed while the bench runs.
func (r benchResult) progressLine() string {
	head := fmt.Sprintf("%s %s %s/%s round %d:", r.Workload, sizeLabel(r.Size), r.Server, r.Transport, r.Round)
	if r.Workload == "reqrep" {
		return fmt.Sprintf("%s p50 %s p99 %s p99.9 %s, %s round trips/s (%d in %.2fs)", head,
			fmtNS(r.P50NS), fmtNS(r.P99NS), fmtNS(r.P999NS), fmtRate(r.MsgsPerSec), r.Msgs, r.Seconds)
	}
	return fmt.Sprintf("%s %s msgs/s, %.1f MB/s (%d msgs, %.2fs)", head, fmtRate(r.MsgsPerSec), r.MBPerSec, r.Msgs, r.Seconds)
}

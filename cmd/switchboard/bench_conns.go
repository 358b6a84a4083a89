package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// connsResult is what `bench conns` measured on one server and transport.
type connsResult struct {
	Server    string `json:"server"`
	Transport string `json:"transport"`
	Version   string `json:"version"`
	N         int    `json:"n"`      // connections asked for
	Opened    int    `json:"opened"` // connections that completed CONNECT and PING/PONG
	// Seconds is how long opening them all took.
	Seconds float64 `json:"seconds"`
	// RSSBefore and RSSAfter are the server's VmRSS before the first
	// connection and after the last one (plus a moment to settle).
	RSSBefore    int64   `json:"rss_before_bytes"`
	RSSAfter     int64   `json:"rss_after_bytes"`
	BytesPerConn float64 `json:"bytes_per_conn"`
}

// connsCONNECT is what each idle connection sends after INFO.
const connsCONNECT = "CONNECT {\"verbose\":false,\"pedantic\":false,\"name\":\"bench conns\",\"lang\":\"go\",\"version\":\"bench\",\"protocol\":1}\r\nPING\r\n"

func runConns(cmd *cobra.Command, s *benchSettings) error {
	ctx, stop := benchContext()
	defer stop()
	natsPath, err := s.natsPath()
	if err != nil {
		return err
	}
	// Before starting the servers, which inherit the limit.
	if err := raiseNoFile(uint64(s.conns) + 512); err != nil {
		return err
	}
	rep := &benchReport{
		Machine:  readMachine(),
		Settings: map[string]any{"workloads": []string{"conns"}, "n": s.conns, "transports": s.transports, "vs_nats": s.vsNATS},
	}
	progress := cmd.ErrOrStderr()
	tmp, err := os.MkdirTemp("", "sb-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	measure := func(p *serverProc, transport string) error {
		defer p.stop()
		res, err := measureConns(ctx, p, transport, s.conns)
		if err != nil {
			return fmt.Errorf("conns on %s/%s: %w", p.info.Server, transport, err)
		}
		if err := p.stop(); err != nil {
			return fmt.Errorf("%s: %w", p.info.Server, err)
		}
		fmt.Fprintf(progress, "conns %s/%s: %d connections, RSS %s -> %s, %.0f bytes each\n",
			res.Server, res.Transport, res.Opened, fmtMiB(res.RSSBefore), fmtMiB(res.RSSAfter), res.BytesPerConn)
		rep.Conns = append(rep.Conns, res)
		return nil
	}
	for _, tr := range s.transports {
		hub, err := startHub(ctx, tmp, 1<<20, progress)
		if err != nil {
			return err
		}
		rep.Hub = hub.info
		if err := measure(hub, tr); err != nil {
			return err
		}
	}
	if natsPath != "" {
		nats, err := startNATS(ctx, natsPath, 1<<20, progress)
		if err != nil {
			return err
		}
		rep.NATS = &nats.info
		if err := measure(nats, "tcp"); err != nil {
			return err
		}
	}
	rep.Machine.LoadAvgEnd = readLoadAvg()
	if s.json {
		return rep.write(cmd.OutOrStdout(), true)
	}
	rep.writeHeader(cmd.OutOrStdout())
	writeConns(cmd.OutOrStdout(), rep.Conns)
	return nil
}

// measureConns opens n idle connections to p over transport and reads the
// server's RSS before and after.
func measureConns(ctx context.Context, p *serverProc, transport string, n int) (connsResult, error) {
	res := connsResult{Server: p.info.Server, Transport: transport, Version: p.info.Version, N: n}
	network, addr := "tcp", p.info.TCP
	if transport == "unix" {
		network, addr = "unix", p.info.Unix
	}
	time.Sleep(300 * time.Millisecond) // let the server settle after start-up
	before, err := readRSS(p.info.PID)
	if err != nil {
		return res, err
	}
	res.RSSBefore = before

	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	const workers = 32 // in flight at once: well below the listen backlog
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				c, err := idleConn(ctx, network, addr)
				if err != nil {
					errOnce.Do(func() { firstErr = fmt.Errorf("connection %d: %w", i+1, err); cancel() })
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	for _, c := range conns {
		if c != nil {
			res.Opened++
		}
	}
	if firstErr != nil {
		return res, fmt.Errorf("%w (%d of %d open)", firstErr, res.Opened, n)
	}
	select {
	case <-p.exited:
		return res, fmt.Errorf("%s exited: %v", p.info.Server, p.waitErr)
	case <-time.After(500 * time.Millisecond): // let the server settle
	}
	after, err := readRSS(p.info.PID)
	if err != nil {
		return res, err
	}
	res.RSSAfter = after
	if n > 0 {
		res.BytesPerConn = float64(after-before) / float64(n)
	}
	return res, nil
}

// idleConn dials addr, reads INFO, sends CONNECT and PING and waits for
// PONG. A unix socket whose backlog is full answers EAGAIN: retry.
func idleConn(ctx context.Context, network, addr string) (net.Conn, error) {
	deadline := time.Now().Add(30 * time.Second)
	var d net.Dialer
	var c net.Conn
	for {
		dctx, cancel := context.WithDeadline(ctx, deadline)
		var err error
		c, err = d.DialContext(dctx, network, addr)
		cancel()
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EAGAIN) || time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	c.SetDeadline(deadline)
	br := bufio.NewReaderSize(c, 4096)
	line, err := br.ReadSlice('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("read INFO: %w", err)
	}
	if _, err := parseInfo(line); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := io.WriteString(c, connsCONNECT); err != nil {
		c.Close()
		return nil, fmt.Errorf("write CONNECT: %w", err)
	}
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("waiting for PONG: %w", err)
		}
		l := strings.TrimSpace(string(line))
		switch {
		case l == "PONG":
			c.SetDeadline(time.Time{})
			return c, nil
		case strings.HasPrefix(l, "-ERR"):
			c.Close()
			return nil, fmt.Errorf("server said %s", l)
		}
		// +OK, PING or an async INFO: keep reading.
	}
}

// raiseNoFile raises this process's open-file limit to at least want (the
// servers it starts inherit it).
func raiseNoFile(want uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Max < want {
		return usagef("--n needs about %d open files but the hard limit is %d: raise it (ulimit -Hn) or lower --n", want, lim.Max)
	}
	// Set it even when high enough: an explicit Setrlimit also stops os/exec
	// from restoring the original soft limit in the servers.
	lim.Cur = max(lim.Cur, want)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	return nil
}

func writeConns(w io.Writer, rs []connsResult) {
	fmt.Fprintf(w, "\nconns: idle connections (each did CONNECT and PING/PONG); server VmRSS\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\ttransport\tconns\tRSS before\tRSS after\tbytes/conn\topen time\t")
	for _, r := range rs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%.0f\t%.2fs\t\n", r.Server, r.Transport, r.Opened,
			fmtMiB(r.RSSBefore), fmtMiB(r.RSSAfter), r.BytesPerConn, r.Seconds)
	}
	tw.Flush()
}

func fmtMiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"switchboard"
)

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

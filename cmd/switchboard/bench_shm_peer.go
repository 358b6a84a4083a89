package main

// The peer process of bench shm: it echoes pings and large messages and
// counts streams.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"switchboard"
)

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
	go echoLoaned(stop, pping, ppong, false)
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
	back, err := nc.NewPublisher(ctx, "sb.bench.large.back", &switchboard.RingOptions{Slots: 4, SlotSize: largeSize})
	if err != nil {
		return err
	}
	large, err := nc.SubscribeSync("sb.bench.large")
	if err != nil {
		return err
	}
	go echoLoaned(stop, large, back, true)
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

// echoLoaned sends each message sub gets back through pub, zero-copy: a
// loan of the message's size, into which it copies the message, or with
// head only its first 8 bytes (a 4 MiB frame's round trip touches the
// frame, not all of it). It returns when a read or a loan fails.
func echoLoaned(ctx context.Context, sub *switchboard.Subscription, pub *switchboard.Publisher, head bool) {
	for {
		v, err := sub.NextView(ctx)
		if err != nil {
			return
		}
		buf, err := pub.Loan(len(v.Data))
		if err != nil {
			v.Release()
			return
		}
		if head {
			copy(buf[:min(8, len(buf))], v.Data)
		} else {
			copy(buf, v.Data)
		}
		v.Release()
		pub.Send(len(buf))
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"switchboard"
	"switchboard/internal/paths"
)

// connect dials the hub named by --server, $SWITCHBOARD_URL or the default
// socket.
func connect(ctx context.Context, cmd *cobra.Command) (*switchboard.Conn, error) {
	url, _ := cmd.Flags().GetString("server")
	if url == "" {
		url = paths.DefaultURL()
	}
	if _, _, err := switchboard.ParseURL(url); err != nil {
		return nil, usageError{err}
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nc, err := switchboard.Connect(dctx, url, &switchboard.Options{Name: "switchboard " + cmd.Name(), MaxReconnects: 0})
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", url, err)
	}
	return nc, nil
}

// open connects for a client command and returns a context cancelled by
// SIGINT or SIGTERM, the connection, and a function that closes both.
func open(cmd *cobra.Command) (context.Context, *switchboard.Conn, func(), error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	nc, err := connect(ctx, cmd)
	if err != nil {
		stop()
		return nil, nil, nil, err
	}
	return ctx, nc, func() { nc.Close(); stop() }, nil
}

func newPub() *cobra.Command {
	return &cobra.Command{
		Use:   "pub SUBJECT [DATA]",
		Short: "Publish DATA, or each line of stdin as one message",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			subj := args[0]
			if len(args) == 2 {
				if err := nc.Publish(subj, []byte(args[1])); err != nil {
					return err
				}
				return nc.Flush(ctx)
			}
			sc := bufio.NewScanner(cmd.InOrStdin())
			sc.Buffer(make([]byte, 64<<10), int(nc.MaxPayload())+1)
			for sc.Scan() {
				if err := nc.Publish(subj, bytes.Clone(sc.Bytes())); err != nil {
					return err
				}
			}
			if err := sc.Err(); err != nil {
				return fmt.Errorf("read stdin: %w", err)
			}
			return nc.Flush(ctx)
		},
	}
}

func newSub() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sub SUBJECT",
		Short: "Print messages on SUBJECT (wildcards allowed), one per line",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			queue, _ := cmd.Flags().GetString("queue")
			count, _ := cmd.Flags().GetInt("count")
			raw, _ := cmd.Flags().GetBool("raw")
			if count < 0 {
				return usagef("--count: must not be negative")
			}
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			ch := make(chan *switchboard.Msg, 4096)
			var sub *switchboard.Subscription
			if queue != "" {
				sub, err = nc.ChanQueueSubscribe(args[0], queue, ch)
			} else {
				sub, err = nc.ChanSubscribe(args[0], ch)
			}
			if err != nil {
				return err
			}
			if count > 0 {
				if err := sub.AutoUnsubscribe(count); err != nil {
					return err
				}
			}
			if err := nc.Flush(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "switchboard: subscribed to %s\n", args[0])
			out := bufio.NewWriter(cmd.OutOrStdout())
			defer out.Flush()
			for n := 0; count == 0 || n < count; n++ {
				var m *switchboard.Msg
				select {
				case m = <-ch:
				case <-ctx.Done():
					return nil
				}
				if raw {
					out.Write(m.Data)
					out.WriteByte('\n')
				} else {
					fmt.Fprintf(out, "[%s] %s\n", m.Subject, m.Data)
				}
				if len(ch) == 0 {
					if err := out.Flush(); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().String("queue", "", "join queue group G: each message goes to one member")
	cmd.Flags().Int("count", 0, "exit after N messages (0 = run until interrupted)")
	cmd.Flags().Bool("raw", false, "print payloads only")
	return cmd
}

func newReq() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "req SUBJECT DATA",
		Short: "Send a request and print the reply",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			timeout, _ := cmd.Flags().GetDuration("timeout")
			if timeout <= 0 {
				return usagef("--timeout: must be positive")
			}
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			m, err := nc.Request(rctx, args[0], []byte(args[1]))
			if err != nil {
				if errors.Is(err, switchboard.ErrNoResponders) {
					return fmt.Errorf("no responders on %q", args[0])
				}
				return err
			}
			w := cmd.OutOrStdout()
			w.Write(m.Data)
			if len(m.Data) == 0 || m.Data[len(m.Data)-1] != '\n' {
				io.WriteString(w, "\n")
			}
			return nil
		},
	}
	cmd.Flags().Duration("timeout", 5*time.Second, "how long to wait for the reply")
	return cmd
}

func newReply() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "reply SUBJECT",
		Short: "Answer requests on SUBJECT: echo them, or with the output of --command",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			command, _ := cmd.Flags().GetString("command")
			queue, _ := cmd.Flags().GetString("queue")
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			answer := func(m *switchboard.Msg) {
				if m.Reply == "" {
					return
				}
				data := m.Data
				if command != "" {
					var err error
					data, err = runCommand(ctx, command, m.Data)
					if err != nil {
						fmt.Fprintf(cmd.ErrOrStderr(), "switchboard: reply: %v\n", err)
					}
				}
				if err := m.Respond(data); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "switchboard: reply: %v\n", err)
				}
			}
			if queue != "" {
				_, err = nc.QueueSubscribe(args[0], queue, answer)
			} else {
				_, err = nc.Subscribe(args[0], answer)
			}
			if err != nil {
				return err
			}
			if err := nc.Flush(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "switchboard: answering requests on %s\n", args[0])
			<-ctx.Done()
			dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return nc.Drain(dctx)
		},
	}
	cmd.Flags().String("command", "", "shell command run per request (request on stdin, reply from stdout)")
	cmd.Flags().String("queue", "", "join queue group G so several repliers share the load")
	return cmd
}

// runCommand runs command with sh -c, the request on stdin, and returns its
// standard output; on failure the output so far plus the error text.
func runCommand(ctx context.Context, command string, in []byte) ([]byte, error) {
	c := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	c.Stdin = bytes.NewReader(in)
	var out, errb bytes.Buffer
	c.Stdout = &out
	c.Stderr = &errb
	if err := c.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg != "" {
			return out.Bytes(), fmt.Errorf("command %q: %v: %s", command, err, msg)
		}
		return out.Bytes(), fmt.Errorf("command %q: %v", command, err)
	}
	return out.Bytes(), nil
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"switchboard"
)

func newQueue() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "Durable queues: add, list, inspect, push, pull, watch",
		Long: `Durable queues keep what is published on their subjects on disk until a
consumer acknowledges it (docs/queues.md). "queue add jobs" makes a queue
that stores what is published on the subject jobs; "queue push jobs" stores
each line of stdin as one message and prints its acknowledgement; "queue
pull jobs --ack" takes one message and acknowledges it.`,
	}
	cmd.AddCommand(newQueueAdd(), newQueueLs(), newQueueInfo(), newQueueRm(), newQueuePurge(),
		newQueuePush(), newQueuePull(), newQueueWatch())
	return cmd
}

func newQueueAdd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Create a queue (by default: subject NAME, work retention)",
		Args:  wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := queueConfigFlags(cmd, args[0])
			if err != nil {
				return err
			}
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			inf, err := nc.CreateQueue(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "queue %s: subjects %s, %s retention\n", inf.Config.Name, strings.Join(inf.Config.Subjects, " "), inf.Config.Retention)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSlice("subjects", nil, "subjects to store (wildcards allowed); default: NAME")
	f.String("retention", "work", `"work": a message goes once acknowledged; "limits": kept until the limits remove it`)
	f.Int64("max-msgs", 0, "most messages kept (0: no limit)")
	f.String("max-bytes", "0", "most bytes kept, e.g. 1GiB (0: no limit)")
	f.Duration("max-age", 0, "remove messages older than this (0: never)")
	f.String("max-msg-size", "0", "largest message, e.g. 1MiB (0: 1 MiB)")
	f.Duration("dedup-window", 0, "how long a Msg-Id is remembered (0: 2m)")
	f.Int("max-deliver", 0, "deliveries before a message goes to the dead-letter queue (0: no limit)")
	f.Duration("ack-wait", 0, "how long a delivery may go unacknowledged (0: 30s)")
	f.String("dead-letter", "", "queue that receives messages past --max-deliver or terminated")
	f.String("sync", "always", `"always" (acknowledged once fsynced), "interval" or "never" (weaker, see docs/storage.md)`)
	addClientFlags(cmd)
	return cmd
}

// queueConfigFlags builds a QueueConfig from queue add's flags.
func queueConfigFlags(cmd *cobra.Command, name string) (switchboard.QueueConfig, error) {
	f := cmd.Flags()
	cfg := switchboard.QueueConfig{Name: name}
	cfg.Subjects, _ = f.GetStringSlice("subjects")
	cfg.Retention, _ = f.GetString("retention")
	cfg.MaxMsgs, _ = f.GetInt64("max-msgs")
	v, _ := f.GetString("max-bytes")
	n, err := parseByteSize(v)
	if err != nil {
		return cfg, usagef("--max-bytes: %v", err)
	}
	cfg.MaxBytes = n
	v, _ = f.GetString("max-msg-size")
	n, err = parseByteSize(v)
	if err != nil || n > 1<<31 {
		return cfg, usagef("--max-msg-size: %q: a size such as 1MiB", v)
	}
	cfg.MaxMsgSize = int(n)
	d := func(flag string) switchboard.Duration { v, _ := f.GetDuration(flag); return switchboard.Duration(v) }
	cfg.MaxAge, cfg.DedupWindow, cfg.AckWait = d("max-age"), d("dedup-window"), d("ack-wait")
	cfg.MaxDeliver, _ = f.GetInt("max-deliver")
	cfg.DeadLetter, _ = f.GetString("dead-letter")
	cfg.Sync, _ = f.GetString("sync")
	return cfg, nil
}

func newQueueLs() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the queues: messages, bytes, consumers",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			qs, err := nc.Queues(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, qs)
			}
			tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "QUEUE\tSUBJECTS\tRETENTION\tMESSAGES\tBYTES\tIN FLIGHT\tCONSUMERS\tSTATE")
			for _, q := range qs {
				inflight := 0
				for _, c := range q.Consumers {
					inflight += c.InFlight
				}
				state := "ok"
				if q.Error != "" {
					state = "FAILED: " + q.Error
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\t%s\n", q.Config.Name, strings.Join(q.Config.Subjects, ","), q.Config.Retention,
					q.Messages, sizeLabel64(q.Bytes), inflight, len(q.Consumers), state)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	addClientFlags(cmd)
	return cmd
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newQueueInfo() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "info NAME",
		Short: "Show a queue's configuration, counters, consumers and storage",
		Args:  wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			q, err := nc.QueueInfo(ctx, args[0])
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				return writeJSON(out, q)
			}
			c := q.Config
			tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
			row := func(k string, v any) { fmt.Fprintf(tw, "%s\t%v\n", k, v) }
			row("queue", c.Name)
			row("subjects", strings.Join(c.Subjects, " "))
			row("retention", c.Retention)
			row("sync", orDefault(c.Sync, "always"))
			row("messages", q.Messages)
			row("bytes", sizeLabel64(q.Bytes))
			row("sequences", fmt.Sprintf("%d..%d", q.FirstSeq, q.LastSeq))
			row("delayed", q.Delayed)
			row("limits", fmt.Sprintf("max_msgs %d, max_bytes %s, max_age %v, max_msg_size %s", c.MaxMsgs, sizeLabel64(c.MaxBytes), time.Duration(c.MaxAge), sizeLabel(c.MaxMsgSize)))
			row("delivery", fmt.Sprintf("ack_wait %v, max_deliver %d, dead_letter %q, dedup_window %v", time.Duration(c.AckWait), c.MaxDeliver, c.DeadLetter, time.Duration(c.DedupWindow)))
			row("storage", fmt.Sprintf("%d segments, %s, %d appends, %d fsyncs, replayed in %s", q.Storage.Segments, sizeLabel64(q.Storage.Bytes), q.Storage.Appends, q.Storage.Syncs, q.Storage.RecoveredIn))
			if q.Storage.Recovery != "" {
				row("recovery", q.Storage.Recovery)
			}
			if q.Error != "" {
				row("ERROR", q.Error)
			}
			for _, cs := range q.Consumers {
				kind := "pull"
				if cs.DeliverSubject != "" {
					kind = "push to " + cs.DeliverSubject
				}
				row("consumer "+cs.Name, fmt.Sprintf("%s, %d in flight (max %d), %d fetches waiting, %d to redeliver", kind, cs.InFlight, cs.MaxInFlight, cs.Waiting, cs.Redeliveries))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the info as JSON")
	addClientFlags(cmd)
	return cmd
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func newQueueRm() *cobra.Command {
	return queueNameCmd("rm NAME", "Delete a queue and every message it holds", (*switchboard.Conn).DeleteQueue)
}

func newQueuePurge() *cobra.Command {
	return queueNameCmd("purge NAME", "Remove every message of a queue (the queue stays)", (*switchboard.Conn).PurgeQueue)
}

// queueNameCmd is a command that calls fn with the queue it is given.
func queueNameCmd(use, short string, fn func(*switchboard.Conn, context.Context, string) error) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			return fn(nc, ctx, args[0])
		},
	}
	addClientFlags(cmd)
	return cmd
}

// pushWindow is how many publishes queue push keeps in flight.
const pushWindow = 256

func newQueuePush() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "push NAME [DATA]",
		Short: "Store DATA, or each line of stdin, in a queue; print one JSON ack per message",
		Long: `Publish DATA (or each line of stdin as one message) on the queue's subject
(--subject, or the queue's first subject when it has no wildcard) and print
the hub's acknowledgement of each, one JSON line per message in input order:
{"queue":"jobs","seq":12,"duplicate":false}. An acknowledgement means the
message is on disk. The command stops at the first failure and exits 1.`,
		Args: wrapArgs(cobra.RangeArgs(1, 2)),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			subj, _ := cmd.Flags().GetString("subject")
			if subj == "" {
				inf, err := nc.QueueInfo(ctx, args[0])
				if err != nil {
					return err
				}
				subj = inf.Config.Subjects[0]
				if strings.ContainsAny(subj, "*>") {
					return usagef("queue %s stores %s: say which subject with --subject", args[0], subj)
				}
			}
			opts := &switchboard.DurableOpts{}
			opts.MsgID, _ = cmd.Flags().GetString("msg-id")
			opts.Delay, _ = cmd.Flags().GetDuration("delay")
			out := cmd.OutOrStdout()
			if len(args) == 2 {
				a, err := nc.PublishDurable(ctx, subj, []byte(args[1]), opts)
				if err != nil {
					return err
				}
				return json.NewEncoder(out).Encode(a)
			}
			return pushLines(ctx, nc, subj, opts, cmd.InOrStdin(), out)
		},
	}
	cmd.Flags().String("subject", "", "subject to publish on (default: the queue's)")
	cmd.Flags().String("msg-id", "", "Msg-Id of the message (with DATA), for deduplication")
	cmd.Flags().Duration("delay", 0, "hold the messages back from consumers this long")
	addClientFlags(cmd)
	return cmd
}

// pushLines publishes each line of in, keeping up to pushWindow in flight,
// and writes the acks in input order.
func pushLines(ctx context.Context, nc *switchboard.Conn, subj string, opts *switchboard.DurableOpts, in io.Reader, out io.Writer) error {
	w := bufio.NewWriter(out)
	defer w.Flush()
	enc := json.NewEncoder(w)
	var window []*switchboard.AckFuture
	line := 0
	settle := func() error {
		f := window[0]
		window = window[1:]
		line++
		a, err := f.Wait(ctx)
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		return enc.Encode(a)
	}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), int(nc.MaxPayload())+1)
	o := *opts
	o.MsgID = "" // one Msg-Id for many lines would store only the first
	for sc.Scan() {
		f, err := nc.PublishDurableAsync(subj, bytes.Clone(sc.Bytes()), &o)
		if err != nil {
			return err
		}
		window = append(window, f)
		if len(window) >= pushWindow {
			if err := settle(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	for len(window) > 0 {
		if err := settle(); err != nil {
			return err
		}
	}
	return nil
}

func newQueuePull() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pull NAME",
		Short: "Take messages from a queue and print them",
		Long: `Fetch up to --count messages (default 1) from the queue's consumer
(--consumer, default "default") and print them: "[SUBJECT #SEQ] DATA", or
only DATA with --raw. With --ack each is acknowledged (removed from a work
queue) once printed; with --nak each is given back at once; with neither it
is delivered again after the queue's ack wait. Exits 1 if no message came
within --timeout.`,
		Args: wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			count, _ := cmd.Flags().GetInt("count")
			ack, _ := cmd.Flags().GetBool("ack")
			nak, _ := cmd.Flags().GetBool("nak")
			raw, _ := cmd.Flags().GetBool("raw")
			timeout, _ := cmd.Flags().GetDuration("timeout")
			consumer, _ := cmd.Flags().GetString("consumer")
			if count < 1 {
				return usagef("--count: at least 1")
			}
			if ack && nak {
				return usagef("--ack and --nak: choose one")
			}
			if timeout <= 0 {
				return usagef("--timeout: must be positive")
			}
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			out := cmd.OutOrStdout()
			got := 0
			deadline := time.Now().Add(timeout)
			for got < count {
				wait := time.Until(deadline)
				if wait <= 0 {
					break
				}
				// At most pullBatch at a time: they are acked before the next
				// fetch, and a consumer hands out no more than its
				// max_in_flight unacknowledged (1000 by default), so one
				// fetch for everything could wait out the timeout.
				msgs, err := nc.Fetch(ctx, args[0], consumer, min(count-got, pullBatch), &switchboard.FetchOpts{Expires: wait})
				if err != nil {
					return err
				}
				if len(msgs) == 0 {
					break
				}
				for _, m := range msgs {
					if raw {
						fmt.Fprintf(out, "%s\n", m.Data)
					} else {
						fmt.Fprintf(out, "[%s #%d] %s\n", m.Subject, m.Seq, m.Data)
					}
					switch {
					case ack:
						err = m.Ack(ctx)
					case nak:
						err = m.Nak(ctx, 0)
					}
					if err != nil {
						return fmt.Errorf("message %d: %w", m.Seq, err)
					}
					got++
				}
			}
			if got == 0 {
				return fmt.Errorf("no message from queue %s within %v: %w", args[0], timeout, errNothing)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.Int("count", 1, "messages to take")
	f.Bool("ack", false, "acknowledge each message after printing it")
	f.Bool("nak", false, "give each message back after printing it")
	f.Bool("raw", false, "print only the payloads")
	f.Duration("timeout", 5*time.Second, "how long to wait for messages")
	f.String("consumer", "default", "consumer to fetch from")
	addClientFlags(cmd)
	return cmd
}

var errNothing = errors.New("nothing to pull")

// pullBatch is the most messages queue pull fetches at once.
const pullBatch = 256

func newQueueWatch() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "watch NAME",
		Short: "Print a queue's counters every second until interrupted",
		Args:  wrapArgs(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			every, _ := cmd.Flags().GetDuration("every")
			if every <= 0 {
				return usagef("--every: must be positive")
			}
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			out := cmd.OutOrStdout()
			var last *switchboard.QueueInfo
			var lastAt time.Time
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				q, err := nc.QueueInfo(ctx, args[0])
				if err != nil {
					if ctx.Err() != nil {
						return nil
					}
					return err
				}
				now := time.Now()
				inflight, waiting := 0, 0
				for _, c := range q.Consumers {
					inflight += c.InFlight
					waiting += c.Waiting
				}
				rate := ""
				if last != nil {
					rate = fmt.Sprintf("  %.0f appends/s", float64(q.Storage.Appends-last.Storage.Appends)/now.Sub(lastAt).Seconds())
				}
				state := ""
				if q.Error != "" {
					state = "  FAILED: " + q.Error
				}
				fmt.Fprintf(out, "%s  %s: %d messages, %s, %d in flight, %d fetches waiting, %d delayed%s%s\n",
					now.Format("15:04:05"), q.Config.Name, q.Messages, sizeLabel64(q.Bytes), inflight, waiting, q.Delayed, rate, state)
				last, lastAt = q, now
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
		},
	}
	cmd.Flags().Duration("every", time.Second, "how often to print")
	addClientFlags(cmd)
	return cmd
}

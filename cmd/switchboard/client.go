package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
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

// Environment variables the client commands read for credentials when the
// matching flag is not given. They are the preferred way to pass secrets:
// other users can read a process's arguments (ps, /proc), but not its
// environment.
const (
	envToken    = "SWITCHBOARD_TOKEN"
	envUser     = "SWITCHBOARD_USER"
	envPassword = "SWITCHBOARD_PASSWORD"
)

// addClientFlags adds the credential and TLS flags of the commands that
// connect to the hub (pub, sub, req, reply).
func addClientFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.String("token", "", "authentication token (default $"+envToken+"; prefer the variable: other users can see command-line arguments in ps)")
	f.String("user", "", "user name to log in with (default $"+envUser+")")
	f.String("password", "", "password of --user (default $"+envPassword+"; prefer the variable: other users can see command-line arguments in ps)")
	f.String("tls-ca", "", "CA certificates (PEM) the hub's certificate must chain to (default: the system's roots); enables TLS, as does a tls:// --server")
	f.String("tls-cert", "", "client certificate (PEM) for mutual TLS; needs --tls-key; enables TLS")
	f.String("tls-key", "", "private key (PEM) of --tls-cert")
	f.String("inbox-prefix", "", `subject prefix of reply inboxes (default "_INBOX"); a policy may let you subscribe only to your own`)
}

// credential returns the flag's value if it was given, else the
// environment variable's.
func credential(cmd *cobra.Command, flag, env string) string {
	if cmd.Flags().Changed(flag) {
		v, _ := cmd.Flags().GetString(flag)
		return v
	}
	return os.Getenv(env)
}

// clientOptions builds the connection options of a client command from its
// flags and the environment. TLS is used when a --tls-* flag is given, for
// tls:// URLs and when the hub requires it.
func clientOptions(cmd *cobra.Command, url string) (*switchboard.Options, error) {
	o := &switchboard.Options{
		Name:     "switchboard " + cmd.Name(),
		Token:    credential(cmd, "token", envToken),
		User:     credential(cmd, "user", envUser),
		Password: credential(cmd, "password", envPassword),
	}
	o.InboxPrefix, _ = cmd.Flags().GetString("inbox-prefix")
	ca, _ := cmd.Flags().GetString("tls-ca")
	cert, _ := cmd.Flags().GetString("tls-cert")
	key, _ := cmd.Flags().GetString("tls-key")
	if ca == "" && cert == "" && key == "" {
		return o, nil
	}
	if network, _, _ := switchboard.ParseURL(url); network == "unix" {
		return nil, usagef("--tls-ca, --tls-cert, --tls-key: TLS is not used over unix sockets (%s); give --server tls://host:port", url)
	}
	if (cert == "") != (key == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	cfg, err := switchboard.TLSClientConfig(ca, cert, key)
	if err != nil {
		return nil, usagef("--tls-ca, --tls-cert, --tls-key: %s", strings.TrimPrefix(err.Error(), "switchboard: "))
	}
	o.TLSConfig = cfg
	return o, nil
}

// connect dials the hub named by --server, $SWITCHBOARD_URL or the default
// socket, with the credentials and TLS settings of addClientFlags.
func connect(ctx context.Context, cmd *cobra.Command) (*switchboard.Conn, error) {
	url, _ := cmd.Flags().GetString("server")
	if url == "" {
		url = paths.DefaultURL()
	}
	if _, _, err := switchboard.ParseURL(url); err != nil {
		return nil, usageError{err}
	}
	opts, err := clientOptions(cmd, url)
	if err != nil {
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nc, err := switchboard.Connect(dctx, url, opts)
	if err != nil {
		ce := connectError{err: err} // err names the URL already
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) && opts.TLSConfig == nil {
			ce.hint = " (--tls-ca names the CA of the hub's certificate)"
		}
		return nil, ce
	}
	return nc, nil
}

// connectError is an error from switchboard.Connect without its package
// prefix, which run prints in front of every error, and with a hint.
type connectError struct {
	err  error
	hint string
}

func (e connectError) Error() string {
	msg := strings.TrimPrefix(e.err.Error(), "switchboard: ")
	return strings.ReplaceAll(msg, ": switchboard: ", ": ") + e.hint
}
func (e connectError) Unwrap() error { return e.err }

// flushChecked flushes and then fails if the hub refused anything sent
// before: its -ERR arrives before the PONG that ends the flush.
func flushChecked(ctx context.Context, nc *switchboard.Conn) error {
	if err := nc.Flush(ctx); err != nil {
		return err
	}
	if err := nc.LastError(); errors.Is(err, switchboard.ErrPermission) {
		return err
	}
	return nil
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
	cmd := &cobra.Command{
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
				return flushChecked(ctx, nc)
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
			return flushChecked(ctx, nc)
		},
	}
	addClientFlags(cmd)
	return cmd
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
			if err := flushChecked(ctx, nc); err != nil {
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
	addClientFlags(cmd)
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
				if le := nc.LastError(); errors.Is(le, switchboard.ErrPermission) {
					return le // the hub refused the request or its reply inbox
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
	addClientFlags(cmd)
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
			if err := flushChecked(ctx, nc); err != nil {
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
	addClientFlags(cmd)
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

// Command switchboard is the Switchboard hub and its command-line client:
// serve runs the hub; pub, sub, req and reply talk to it; bench measures it.
package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"switchboard/internal/spinbase"
)

// Exit codes.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError marks errors in how the command was called or configured;
// they exit with code 2.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func main() {
	spinbase.ChildMain() // bench shm's baseline runs a copy of this executable
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRoot()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	// Errors from the client library carry its "switchboard: " prefix too.
	fmt.Fprintln(os.Stderr, "switchboard:", strings.TrimPrefix(err.Error(), "switchboard: "))
	var ue usageError
	if errors.As(err, &ue) {
		return exitUsage
	}
	return exitRuntime
}

func newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:           "switchboard",
		Short:         "Switchboard: one hub for the messages between your processes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.PersistentFlags().String("server", "", "hub URL: unix:///path, tcp://host:port, nats://host:port or tls://host:port (default $SWITCHBOARD_URL, else the hub's default unix socket)")
	root.AddCommand(newServe(), newPub(), newSub(), newReq(), newReply(), newBench())
	root.AddCommand(newAuth(), newShm(), newQueue())
	for _, c := range root.Commands() {
		c.Args = wrapArgs(c.Args)
	}
	return root
}

// wrapArgs turns cobra's argument validation errors into usage errors.
func wrapArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	if v == nil {
		return nil
	}
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

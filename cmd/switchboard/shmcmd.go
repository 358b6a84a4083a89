package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"switchboard/internal/protocol"
)

func newShm() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "shm",
		Short: "Inspect the hub's shared-memory channels",
	}
	var asJSON bool
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the shared-memory rings: pattern, publisher, readers, counters",
		Long: `List the rings the hub has handed out: each ring's pattern, its publisher
(connection id and identity), its readers (and their positions), its
geometry, whether the hub forwards it to socket subscribers, and the message
and byte counts the publisher keeps in the ring's header. A restricted
identity sees only the rings whose pattern it may subscribe to.`,
		Args: wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, nc, done, err := open(cmd)
			if err != nil {
				return err
			}
			defer done()
			m, err := nc.Request(ctx, "$SB.SHM.LIST", nil)
			if err != nil {
				return err
			}
			var chans []protocol.ShmChannel
			if err := json.Unmarshal(m.Data, &chans); err != nil {
				return fmt.Errorf("the hub's answer: %w: %.200s", err, m.Data)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(chans)
			}
			tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "RING\tPATTERN\tPUBLISHER\tREADERS\tSLOTS\tSLOT SIZE\tFORWARDED\tMESSAGES\tBYTES\tAGE")
			for _, c := range chans {
				fmt.Fprintf(tw, "%d\t%s\t%d %s\t%d\t%d\t%s\t%v\t%d\t%d\t%s\n", c.Ring, c.Pattern, c.Publisher.Cid, c.Publisher.Who,
					len(c.Readers), c.Slots, sizeLabel(c.SlotSize), c.Forwarder, c.Messages, c.Bytes, time.Since(c.Created).Round(time.Second))
			}
			return tw.Flush()
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	addClientFlags(ls)
	cmd.AddCommand(ls)
	return cmd
}

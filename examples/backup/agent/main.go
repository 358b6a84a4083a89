// Command agent is a toy backup agent: it walks a source directory and
// enqueues one backup job per regular file on the durable queue "backup",
// creating the queue (and its dead-letter queue) if needed. It exits once
// the hub has acknowledged every job, that is once every job is on the
// hub's disk: the workers need not be running.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"switchboard"
	"switchboard/examples/backup"
)

func main() {
	server := flag.String("server", "", "hub URL (default $SWITCHBOARD_URL or the default socket)")
	src := flag.String("src", "", "directory to back up (required)")
	ackWait := flag.Duration("ack-wait", 30*time.Second, "how long a worker may hold a job without news before it goes to another (used when the queue is created)")
	flag.Parse()
	log.SetPrefix("agent: ")
	log.SetFlags(0)
	if *src == "" {
		log.Fatal("-src DIR is required")
	}
	root, err := filepath.Abs(*src)
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, err := switchboard.Connect(ctx, *server, &switchboard.Options{Name: "backup agent"})
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	if err := backup.CreateQueues(ctx, nc, *ackWait); err != nil {
		log.Fatal(err)
	}

	enqueued, already := 0, 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		name, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		job := backup.NewJob(path, name, fi)
		body, err := json.Marshal(job)
		if err != nil {
			return err
		}
		// PublishDurable returns once the job is on the hub's disk. The
		// Msg-Id makes a retry (or a second run) harmless.
		ack, err := nc.PublishDurable(ctx, backup.Subject, body, &switchboard.DurableOpts{MsgID: job.ID})
		if err != nil {
			return fmt.Errorf("enqueue %s: %w", name, err)
		}
		if ack.Duplicate {
			already++
			fmt.Printf("agent: %s was enqueued already (job #%d)\n", job.Name, ack.Seq)
			return nil
		}
		enqueued++
		fmt.Printf("agent: enqueued %s (%d bytes) as job #%d\n", job.Name, job.Size, ack.Seq)
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("agent: done: %d jobs enqueued, %d enqueued already\n", enqueued, already)
}

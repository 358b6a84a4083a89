// Command worker is a toy backup worker: it takes jobs from the durable
// queue "backup" one at a time, copies each file into the backup
// directory (to NAME.partial, synced, then renamed to NAME) and
// acknowledges the job only then. Until the acknowledgement the hub keeps
// the job: if the worker dies, the job is handed out again after the
// queue's ack wait, and doing it again is harmless. A job that can never
// succeed (its file is gone) is terminated: it goes to the dead-letter
// queue. Run as many workers as you like; each job goes to one of them.
//
// With -die-mid-job the worker kills itself (SIGKILL) halfway through the
// copy of its first job, to show what a crash does.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"switchboard"
	"switchboard/examples/backup"
)

// worker holds what every job needs.
type worker struct {
	nc      *switchboard.Conn
	out     string
	ackWait time.Duration // the queue's: how long a job may go without news
	die     bool
}

func main() {
	server := flag.String("server", "", "hub URL (default $SWITCHBOARD_URL or the default socket)")
	out := flag.String("out", "", "backup directory (required)")
	die := flag.Bool("die-mid-job", false, "kill this process (SIGKILL) halfway through the first job")
	flag.Parse()
	log.SetPrefix("worker: ")
	log.SetFlags(0)
	if *out == "" {
		log.Fatal("-out DIR is required")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	nc, err := switchboard.Connect(ctx, *server, &switchboard.Options{Name: "backup worker"})
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	w := &worker{nc: nc, out: *out, die: *die}
	fmt.Println("worker: ready")
	var lastErr string // said once, not every second
	for ctx.Err() == nil {
		if w.ackWait == 0 {
			inf, err := nc.QueueInfo(ctx, backup.Queue)
			if err != nil {
				// No queue yet (no agent ran), or the hub is away.
				if ctx.Err() == nil && err.Error() != lastErr {
					lastErr = err.Error()
					log.Printf("waiting for queue %s: %v", backup.Queue, err)
				}
				pause(ctx, time.Second)
				continue
			}
			w.ackWait = time.Duration(inf.Config.AckWait)
		}
		msgs, err := nc.Fetch(ctx, backup.Queue, "default", 1, &switchboard.FetchOpts{Expires: 5 * time.Second})
		if err != nil {
			if ctx.Err() == nil && err.Error() != lastErr {
				lastErr = err.Error()
				log.Printf("fetch: %v", err)
			}
			pause(ctx, time.Second)
			continue
		}
		lastErr = ""
		for _, m := range msgs {
			w.handle(ctx, m)
		}
	}
	log.Print("stopping")
}

// handle does one job and answers the hub.
func (w *worker) handle(ctx context.Context, m *switchboard.QueueMsg) {
	var job backup.Job
	if err := json.Unmarshal(m.Data, &job); err != nil || !filepath.IsLocal(filepath.FromSlash(job.Name)) {
		log.Printf("job #%d is not a valid job (%v): terminated", m.Seq, err)
		m.Term(ctx) // to the dead-letter queue, never again here
		return
	}
	fmt.Printf("worker: working on %s (job #%d, delivery %d)\n", job.Name, m.Seq, m.Delivered)
	n, err := w.copy(ctx, m, job)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// The file is gone: trying again cannot help.
		fmt.Printf("worker: gave up on %s: %v\n", job.Name, err)
		if err := m.Term(ctx); err != nil {
			log.Printf("terminate job #%d: %v", m.Seq, err)
		}
		return
	case err != nil:
		// Maybe better next time (a full disk, a busy file): ask for the
		// job again in a while. After MaxDeliver attempts it is a dead
		// letter.
		log.Printf("%s: %v: asking for it again in 5s", job.Name, err)
		m.Nak(ctx, 5*time.Second)
		return
	}
	// Only now is the job done: the copy is on disk under its name.
	if err := m.Ack(ctx); err != nil {
		// The hub did not record it (the ack wait ran out and the job
		// went to another worker, or the hub went away): the job may come
		// again, and copying again is harmless.
		log.Printf("ack of %s: %v", job.Name, err)
		return
	}
	fmt.Printf("worker: backed up %s (%d bytes, job #%d, delivery %d)\n", job.Name, n, m.Seq, m.Delivered)
}

// copy copies job's file to the backup directory: into NAME.partial,
// synced, then renamed to NAME. A long copy tells the hub it is still at
// work (InProgress) so that the job does not go to another worker.
func (w *worker) copy(ctx context.Context, m *switchboard.QueueMsg, job backup.Job) (int64, error) {
	src, err := os.Open(job.Path)
	if err != nil {
		return 0, err
	}
	defer src.Close()
	dst := filepath.Join(w.out, filepath.FromSlash(job.Name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return 0, err
	}
	tmp := dst + ".partial" // a crashed attempt's leftover is overwritten
	f, err := os.Create(tmp)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	lastNews := time.Now()
	for {
		k, rerr := src.Read(buf)
		if k > 0 {
			if _, err := f.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
		}
		if w.die && n >= job.Size/2 {
			f.Sync() // what a crash leaves: half a file, and no ack
			fmt.Printf("worker: dying in the middle of %s (%d of %d bytes copied)\n", job.Name, n, job.Size)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return n, rerr
		}
		if time.Since(lastNews) > w.ackWait/3 {
			if err := m.InProgress(ctx); err != nil {
				return n, fmt.Errorf("still working: %w", err)
			}
			lastNews = time.Now()
		}
	}
	if err := f.Sync(); err != nil {
		return n, err
	}
	if err := f.Close(); err != nil {
		return n, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		return n, err
	}
	// The rename itself is durable once the directory is synced.
	d, err := os.Open(filepath.Dir(dst))
	if err != nil {
		return n, err
	}
	defer d.Close()
	return n, d.Sync()
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

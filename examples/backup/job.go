package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"switchboard"
)

const (
	// Queue is the durable queue of backup jobs; it stores what is
	// published on Subject.
	Queue   = "backup"
	Subject = "backup.jobs"
	// DeadQueue receives the jobs that failed MaxDeliver times or that a
	// worker gave up on.
	DeadQueue = "backup-dead"
	// MaxDeliver is how many times a job is handed out before it is a
	// dead letter.
	MaxDeliver = 5
)

// Job asks for one file to be backed up.
type Job struct {
	// ID names this version of the file (its path, size and modification
	// time). It is the message's Msg-Id: an agent run again within the
	// queue's dedup window (2 minutes) does not enqueue an unchanged
	// file twice.
	ID   string `json:"id"`
	Path string `json:"path"` // the file to copy, absolute
	Name string `json:"name"` // its path in the backup, relative and local
	Size int64  `json:"size"`
}

// NewJob makes the job that backs up the file at path as name.
func NewJob(path, name string, fi fs.FileInfo) Job {
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d", path, fi.Size(), fi.ModTime().UnixNano())))
	return Job{ID: hex.EncodeToString(h[:12]), Path: path, Name: filepath.ToSlash(name), Size: fi.Size()}
}

// CreateQueues creates the job queue (with the given ack wait) and its
// dead-letter queue, unless they exist; an existing queue keeps its
// configuration.
func CreateQueues(ctx context.Context, nc *switchboard.Conn, ackWait time.Duration) error {
	for _, cfg := range []switchboard.QueueConfig{
		{Name: DeadQueue},
		{Name: Queue, Subjects: []string{Subject}, AckWait: switchboard.Duration(ackWait), MaxDeliver: MaxDeliver, DeadLetter: DeadQueue},
	} {
		if _, err := nc.CreateQueue(ctx, cfg); err != nil && !errors.Is(err, switchboard.ErrQueueExists) {
			return fmt.Errorf("create queue %s: %w", cfg.Name, err)
		}
	}
	return nil
}

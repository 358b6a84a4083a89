// Package backup is the durable-queue scenario: a backup agent finds the
// files to back up and enqueues one job per file on the durable queue
// "backup"; worker processes take the jobs, copy each file into the
// backup directory and acknowledge the job once the copy is on disk. The
// hub keeps every job on disk until a worker acknowledged it, so a worker
// that dies in the middle of a copy loses nothing: after the queue's ack
// wait the job goes to another worker (or to the same one, restarted),
// which does it again. A job that fails on every attempt (a file that
// vanished) goes to the dead-letter queue "backup-dead" after
// MaxDeliver attempts, or at once when a worker knows it can never
// succeed.
//
// README.md shows how to run it by hand; the test in this directory runs
// the hub, the agent and two workers as real processes, the first worker
// dying in the middle of a job.
package backup

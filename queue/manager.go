package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"switchboard/internal/subject"
	"switchboard/queue/journal"
)

// Options configure a Manager.
type Options struct {
	// Dir holds one directory per queue. Required.
	Dir string
	// NewSender makes the Sender of one queue goroutine. Required.
	NewSender func() Sender
	// FS is the file system the journals use; nil means the real one.
	// Queue directories and config files always use the real one unless
	// FS is set (tests use a fault-injecting FS for both).
	FS journal.FS
	// SegmentSize is the journals' segment size; 0 means the journal's
	// default (64 MiB).
	SegmentSize int64
	// Logger receives recovery reports and storage failures; default
	// slog.Default().
	Logger *slog.Logger
}

// Manager holds the queues of one hub.
//
// Concurrency: all methods are safe for concurrent use. Bound is the only
// one on the publish path of every message: an atomic load when no queue
// exists, a cached trie lookup otherwise.
type Manager struct {
	opts Options
	log  *slog.Logger
	fsys journal.FS

	mu       sync.RWMutex
	queues   map[string]*Queue
	deleting map[string]bool // names whose Delete is still removing files
	bind     *subject.Sublist[*Queue]
	any      atomic.Bool
	closed   bool
}

const configFile = "config.json"

// Open loads every queue under opts.Dir (creating the directory if
// needed). A queue whose configuration or journal cannot be opened is
// reported in the returned error and skipped, never deleted; the others
// open.
func Open(opts Options) (*Manager, error) {
	if opts.Dir == "" || opts.NewSender == nil {
		return nil, errors.New("queue: Options.Dir and Options.NewSender are required")
	}
	m := &Manager{opts: opts, log: opts.Logger, fsys: opts.FS, queues: map[string]*Queue{}, deleting: map[string]bool{}, bind: subject.NewSublist[*Queue]()}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.fsys == nil {
		m.fsys = journal.OSFS{}
	}
	if err := mkdirDurable(m.fsys, opts.Dir); err != nil {
		return nil, fmt.Errorf("queue: data directory: %w", err)
	}
	names, err := m.fsys.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("queue: data directory: %w", err)
	}
	sort.Strings(names)
	var errs []error
	for _, name := range names {
		if !validName(name) {
			continue
		}
		dir := filepath.Join(opts.Dir, name)
		cfg, err := m.readConfig(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue // not a queue (or one whose creation did not finish)
		}
		if err == nil && cfg.Name != name {
			err = fmt.Errorf("%s names queue %q", configFile, cfg.Name)
		}
		if err == nil {
			cfg, err = cfg.withDefaults()
		}
		var q *Queue
		if err == nil {
			q, err = m.openQueue(dir, cfg)
		}
		if err == nil {
			err = m.bindLocked(q, cfg.Subjects)
			if err != nil {
				q.close("Queue Closed")
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("queue %s (left on disk, not opened): %w", name, err))
			m.log.Error("queue: not opened", "queue", name, "err", err)
			continue
		}
		m.queues[name] = q
	}
	m.any.Store(len(m.queues) > 0)
	return m, errors.Join(errs...)
}

// mkdirDurable creates dir and its missing parents, and fsyncs the parent
// of each directory it created: a new directory survives a power cut only
// once its parent is synced, and a queue created in it would vanish too.
func mkdirDurable(fsys journal.FS, dir string) error {
	dir = filepath.Clean(dir)
	var missing []string // deepest first
	for d := dir; ; d = filepath.Dir(d) {
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		names, err := fsys.ReadDir(parent)
		if err == nil && slices.Contains(names, filepath.Base(d)) {
			break
		}
		missing = append(missing, d)
	}
	if err := fsys.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, d := range missing {
		if err := fsys.SyncDir(filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) readConfig(dir string) (Config, error) {
	var cfg Config
	f, err := m.fsys.OpenFile(filepath.Join(dir, configFile), os.O_RDONLY, 0)
	if err != nil {
		return cfg, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return cfg, err
	}
	if size > 1<<20 {
		return cfg, fmt.Errorf("%s: %d bytes, at most 1 MiB", configFile, size)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil {
		return cfg, fmt.Errorf("%s: %w", configFile, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", configFile, err)
	}
	return cfg, nil
}

func (m *Manager) writeConfig(dir string, cfg Config) error {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return journal.WriteFileAtomic(m.fsys, filepath.Join(dir, configFile), append(b, '\n'))
}

// overlapLocked returns ErrSubjectOverlap if a queue other than q stores a
// subject that overlaps one of subjects.
func (m *Manager) overlapLocked(q *Queue, subjects []string) error {
	for _, o := range m.queues {
		if o == q {
			continue
		}
		for _, a := range o.cfg.Subjects {
			for _, b := range subjects {
				if subject.Overlap(a, b) {
					return fmt.Errorf("%w: %q and queue %s's %q", ErrSubjectOverlap, b, o.name, a)
				}
			}
		}
	}
	return nil
}

// bindLocked makes q receive its subjects, refusing overlaps with other
// queues.
func (m *Manager) bindLocked(q *Queue, subjects []string) error {
	if err := m.overlapLocked(q, subjects); err != nil {
		return err
	}
	for _, s := range subjects {
		if err := m.bind.Insert(s, "", q); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manager) unbindLocked(q *Queue, subjects []string) {
	for _, s := range subjects {
		m.bind.Remove(s, "", q)
	}
}

// Bound returns the queue that stores messages published on subj, or nil.
func (m *Manager) Bound(subj []byte) *Queue {
	if !m.any.Load() {
		return nil
	}
	r := m.bind.Match(subj)
	if len(r.Plain) == 0 {
		return nil
	}
	return r.Plain[0]
}

// Overlaps reports whether a queue stores messages on some subject that
// pattern matches (the hub hands out no shared-memory ring for such a
// pattern: ring messages bypass the hub's publish path).
func (m *Manager) Overlaps(pattern string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.overlapLocked(nil, []string{pattern}) != nil
}

// Get returns the queue name, or nil.
func (m *Manager) Get(name string) *Queue {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.queues[name]
}

// Create makes a queue. Its directory and configuration are durable
// before it is bound to its subjects.
func (m *Manager) Create(cfg Config) (Info, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Info{}, ErrClosed
	}
	if q := m.queues[cfg.Name]; q != nil {
		return Info{}, fmt.Errorf("%w: %s", ErrExists, cfg.Name)
	}
	if m.deleting[cfg.Name] {
		return Info{}, fmt.Errorf("%w: %s is being deleted; try again", ErrExists, cfg.Name)
	}
	if err := m.checkDeadLetterLocked(cfg); err != nil {
		return Info{}, err
	}
	// Checked before anything is written; bindLocked checks again.
	if err := m.overlapLocked(nil, cfg.Subjects); err != nil {
		return Info{}, err
	}
	dir := filepath.Join(m.opts.Dir, cfg.Name)
	if err := m.fsys.MkdirAll(dir, 0o700); err != nil {
		return Info{}, fmt.Errorf("create queue %s: %w", cfg.Name, err)
	}
	if err := m.writeConfig(dir, cfg); err != nil {
		return Info{}, fmt.Errorf("create queue %s: %w", cfg.Name, err)
	}
	if err := m.fsys.SyncDir(m.opts.Dir); err != nil {
		return Info{}, fmt.Errorf("create queue %s: %w", cfg.Name, err)
	}
	q, err := m.openQueue(dir, cfg)
	if err != nil {
		return Info{}, err
	}
	if err := m.bindLocked(q, cfg.Subjects); err != nil {
		q.close("Queue Closed")
		return Info{}, err
	}
	m.queues[cfg.Name] = q
	m.any.Store(true)
	return q.Info(), nil
}

func (m *Manager) checkDeadLetterLocked(cfg Config) error {
	if cfg.DeadLetter != "" && m.queues[cfg.DeadLetter] == nil {
		return fmt.Errorf("%w: dead_letter %q: no such queue (create it first)", ErrBadConfig, cfg.DeadLetter)
	}
	return nil
}

// Update changes a queue's configuration. Name and Retention cannot
// change; subjects, limits, timings, the dead-letter queue and the
// consumers can.
func (m *Manager) Update(cfg Config) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.updateLocked(cfg)
}

// updateLocked is Update with m.mu held.
func (m *Manager) updateLocked(cfg Config) (Info, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Info{}, err
	}
	q := m.queues[cfg.Name]
	if q == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, cfg.Name)
	}
	old := q.Config()
	if cfg.Retention != old.Retention {
		return Info{}, fmt.Errorf("%w: retention (%s) of queue %s", ErrImmutableConfig, old.Retention, cfg.Name)
	}
	if cfg.Sync != old.Sync {
		return Info{}, fmt.Errorf("%w: sync (%q) of queue %s", ErrImmutableConfig, old.Sync, cfg.Name)
	}
	if err := m.checkDeadLetterLocked(cfg); err != nil {
		return Info{}, err
	}
	// Bind the new subjects before unbinding the old ones: a subject in
	// both stays bound throughout (the table counts it twice meanwhile).
	if err := m.bindLocked(q, cfg.Subjects); err != nil {
		return Info{}, err
	}
	if err := m.writeConfig(q.dir, cfg); err != nil {
		m.unbindLocked(q, cfg.Subjects)
		return Info{}, fmt.Errorf("update queue %s: %w", cfg.Name, err)
	}
	m.unbindLocked(q, old.Subjects)
	q.mu.Lock()
	q.cfg = cfg
	q.setConsumersLocked(cfg.Consumers, true)
	q.mu.Unlock()
	q.kick()
	return q.Info(), nil
}

// AddConsumer adds (or replaces) a consumer of queue name.
func (m *Manager) AddConsumer(name string, cc ConsumerConfig) (Info, error) {
	cc, err := cc.withDefaults()
	if err != nil {
		return Info{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queues[name]
	if q == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	cfg := q.Config()
	list := make([]ConsumerConfig, 0, len(cfg.Consumers)+1)
	for _, o := range cfg.Consumers {
		if o.Name != cc.Name {
			list = append(list, o)
		}
	}
	cfg.Consumers = append(list, cc)
	return m.updateLocked(cfg)
}

// DeleteConsumer removes a consumer of queue name.
func (m *Manager) DeleteConsumer(name, consumer string) (Info, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queues[name]
	if q == nil {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	cfg := q.Config()
	list := cfg.Consumers[:0:0]
	for _, o := range cfg.Consumers {
		if o.Name != consumer {
			list = append(list, o)
		}
	}
	if len(list) == len(cfg.Consumers) {
		return Info{}, fmt.Errorf("%w: %q on queue %s", ErrNoConsumer, consumer, name)
	}
	cfg.Consumers = list
	return m.updateLocked(cfg)
}

// Delete removes a queue and its stored messages. A queue that is
// another's dead-letter queue cannot be deleted.
func (m *Manager) Delete(name string) error {
	m.mu.Lock()
	q := m.queues[name]
	if q == nil {
		m.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	for _, o := range m.queues {
		if o.Config().DeadLetter == name {
			m.mu.Unlock()
			return fmt.Errorf("%w: queue %s is the dead-letter queue of %s", ErrBadConfig, name, o.name)
		}
	}
	m.unbindLocked(q, q.Config().Subjects)
	delete(m.queues, name)
	m.deleting[name] = true // Create waits until the files are gone
	m.any.Store(len(m.queues) > 0)
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		delete(m.deleting, name)
		m.mu.Unlock()
	}()
	q.close("Queue Deleted")
	// Rename first, so that a crash in the middle leaves no half queue
	// that Open would load.
	gone := filepath.Join(m.opts.Dir, "."+name+".deleted."+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := m.fsys.Rename(q.dir, gone); err != nil {
		return fmt.Errorf("delete queue %s: %w", name, err)
	}
	if err := m.fsys.SyncDir(m.opts.Dir); err != nil {
		return fmt.Errorf("delete queue %s: %w", name, err)
	}
	if _, ok := m.fsys.(journal.OSFS); ok {
		if err := os.RemoveAll(gone); err != nil {
			m.log.Warn("queue: deleted queue's files not removed", "queue", name, "dir", gone, "err", err)
		}
	}
	return nil
}

// List returns every queue's Info, by name.
func (m *Manager) List() []Info {
	m.mu.RLock()
	qs := make([]*Queue, 0, len(m.queues))
	for _, q := range m.queues {
		qs = append(qs, q)
	}
	m.mu.RUnlock()
	sort.Slice(qs, func(i, j int) bool { return qs[i].name < qs[j].name })
	out := make([]Info, len(qs))
	for i, q := range qs {
		out[i] = q.Info()
	}
	return out
}

// Close stops every queue and closes its journal: pending appends finish
// (acknowledged or failed) first.
func (m *Manager) Close() error {
	m.mu.Lock()
	m.closed = true
	qs := m.queues
	m.queues = map[string]*Queue{}
	m.any.Store(false)
	m.mu.Unlock()
	var errs []error
	for _, q := range qs {
		errs = append(errs, q.close("Hub Shutting Down"))
	}
	return errors.Join(errs...)
}

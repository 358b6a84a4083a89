package queuetest

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"switchboard/queue/journal"
)

// FaultFS is an in-memory journal.FS that models durability and injects
// faults; see the package documentation. The zero value is not usable:
// call New. Its methods are safe for concurrent use.
type FaultFS struct {
	mu      sync.Mutex
	files   map[string]*inode // what a reader sees: path -> file
	durable map[string]*inode // entries that survive a crash
	pending []dirOp           // directory operations not yet synced
	dirs    map[string]bool   // directories a reader sees
	ddirs   map[string]bool   // directories that survive a crash
	strict  bool              // see StrictDirs
	locks   map[string]bool
	calls   map[Op]int
	faults  []Fault
	hook    func(op Op, name string, n int) error
}

// inode is a file's content.
type inode struct {
	data   []byte // volatile
	synced []byte // durable
	// lost are byte ranges a failed Sync dropped: the page cache calls
	// them clean, so later Syncs do not persist them (Linux after an
	// fsync error); on disk they keep what was there before.
	lost []span
}

// span is a byte range [from, to).
type span struct{ from, to int64 }

type dirKind int

const (
	opCreate dirKind = iota
	opRemove
	opRename
	opMkdir
)

// dirOp is a directory change waiting for a SyncDir.
type dirOp struct {
	kind    dirKind
	dir     string
	name    string // created or removed entry, or rename source
	newName string // rename target
	ino     *inode
}

var _ journal.FS = (*FaultFS)(nil)

// New returns an empty FaultFS whose only directory is the root "/" (and
// ".").
func New() *FaultFS {
	return &FaultFS{
		files:   map[string]*inode{},
		durable: map[string]*inode{},
		dirs:    map[string]bool{"/": true, ".": true},
		ddirs:   map[string]bool{"/": true, ".": true},
		locks:   map[string]bool{},
		calls:   map[Op]int{},
	}
}

func clean(name string) string { return filepath.Clean(name) }

func pathErr(op, name string, err error) error { return &fs.PathError{Op: op, Path: name, Err: err} }

// OpenFile opens or creates a file (OpCreate with O_CREATE, else OpOpen).
func (f *FaultFS) OpenFile(name string, flag int, perm fs.FileMode) (journal.File, error) {
	name = clean(name)
	op := OpOpen
	if flag&os.O_CREATE != 0 {
		op = OpCreate
	}
	if err := f.begin(op, name); err != nil {
		return nil, pathErr("open", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dirs[filepath.Dir(name)] {
		return nil, pathErr("open", name, syscall.ENOENT)
	}
	if f.dirs[name] {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	ino, ok := f.files[name]
	switch {
	case ok && flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, pathErr("open", name, syscall.EEXIST)
	case !ok && flag&os.O_CREATE == 0:
		return nil, pathErr("open", name, syscall.ENOENT)
	case !ok:
		ino = &inode{}
		f.files[name] = ino
		f.pending = append(f.pending, dirOp{kind: opCreate, dir: filepath.Dir(name), name: name, ino: ino})
	}
	writable := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if flag&os.O_TRUNC != 0 && writable {
		ino.data = ino.data[:0:0]
	}
	return &file{fs: f, ino: ino, name: name, write: writable, read: flag&os.O_WRONLY == 0}, nil
}

// ReadDir returns the sorted names in dir (files and directories).
func (f *FaultFS) ReadDir(dir string) ([]string, error) {
	dir = clean(dir)
	if err := f.begin(OpReadDir, dir); err != nil {
		return nil, pathErr("readdir", dir, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dirs[dir] {
		return nil, pathErr("readdir", dir, syscall.ENOENT)
	}
	var names []string
	for p := range f.files {
		if filepath.Dir(p) == dir {
			names = append(names, filepath.Base(p))
		}
	}
	for p := range f.dirs {
		if p != dir && filepath.Dir(p) == dir {
			names = append(names, filepath.Base(p))
		}
	}
	slices.Sort(names)
	return names, nil
}

// Remove removes a file; open handles keep working.
func (f *FaultFS) Remove(name string) error {
	name = clean(name)
	if err := f.begin(OpRemove, name); err != nil {
		return pathErr("remove", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.files[name]; !ok {
		return pathErr("remove", name, syscall.ENOENT)
	}
	delete(f.files, name)
	f.pending = append(f.pending, dirOp{kind: opRemove, dir: filepath.Dir(name), name: name})
	return nil
}

// Rename renames a file within its directory, replacing newname.
func (f *FaultFS) Rename(oldname, newname string) error {
	oldname, newname = clean(oldname), clean(newname)
	if err := f.begin(OpRename, oldname); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, ok := f.files[oldname]
	switch {
	case !ok:
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.ENOENT}
	case filepath.Dir(oldname) != filepath.Dir(newname):
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: syscall.EXDEV}
	case oldname == newname:
		return nil
	}
	delete(f.files, oldname)
	f.files[newname] = ino
	f.pending = append(f.pending, dirOp{kind: opRename, dir: filepath.Dir(oldname), name: oldname, newName: newname, ino: ino})
	return nil
}

// MkdirAll creates a directory and its parents; with StrictDirs each
// new directory is an entry of its parent, durable once the parent is
// synced.
func (f *FaultFS) MkdirAll(dir string, perm fs.FileMode) error {
	dir = clean(dir)
	if err := f.begin(OpMkdir, dir); err != nil {
		return pathErr("mkdir", dir, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var missing []string
	for d := dir; !f.dirs[d]; d = filepath.Dir(d) {
		if _, ok := f.files[d]; ok {
			return pathErr("mkdir", d, syscall.ENOTDIR)
		}
		missing = append(missing, d)
	}
	for _, d := range slices.Backward(missing) {
		f.dirs[d] = true
		if f.strict {
			f.pending = append(f.pending, dirOp{kind: opMkdir, dir: filepath.Dir(d), name: d})
		} else {
			f.ddirs[d] = true
		}
	}
	return nil
}

// StrictDirs makes directories created from now on behave as on a real
// file system: a new directory is an entry of its parent, durable only
// once the parent is synced, and a crash that loses it loses everything
// inside. Without it (the default, kept for tests written before it),
// MkdirAll is durable at once. Crash passes the setting on.
func (f *FaultFS) StrictDirs() *FaultFS {
	f.mu.Lock()
	f.strict = true
	f.mu.Unlock()
	return f
}

// SyncDir makes the pending entries of dir durable.
func (f *FaultFS) SyncDir(dir string) error {
	dir = clean(dir)
	if err := f.begin(OpSyncDir, dir); err != nil {
		return pathErr("sync", dir, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.dirs[dir] {
		return pathErr("sync", dir, syscall.ENOENT)
	}
	rest := f.pending[:0]
	for _, op := range f.pending {
		if op.dir == dir {
			op.apply(f.durable, f.ddirs)
		} else {
			rest = append(rest, op)
		}
	}
	clear(f.pending[len(rest):])
	f.pending = rest
	return nil
}

// apply replays a directory operation on a namespace.
func (op dirOp) apply(ns map[string]*inode, dirs map[string]bool) {
	switch op.kind {
	case opMkdir:
		dirs[op.name] = true
	case opCreate:
		ns[op.name] = op.ino
	case opRemove:
		delete(ns, op.name)
	case opRename:
		delete(ns, op.name)
		ns[op.newName] = op.ino
	}
}

// Lock takes an exclusive lock on name (no file is created); a second
// Lock of the same name fails with an error wrapping journal.ErrLocked
// until the first is closed. A crash releases every lock.
func (f *FaultFS) Lock(name string) (io.Closer, error) {
	name = clean(name)
	if err := f.begin(OpLock, name); err != nil {
		return nil, pathErr("lock", name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.locks[name] {
		return nil, fmt.Errorf("lock %s: %w", name, journal.ErrLocked)
	}
	f.locks[name] = true
	return &lock{fs: f, name: name}, nil
}

type lock struct {
	fs   *FaultFS
	name string
	once sync.Once
}

func (l *lock) Close() error {
	l.once.Do(func() {
		l.fs.mu.Lock()
		delete(l.fs.locks, l.name)
		l.fs.mu.Unlock()
	})
	return nil
}

// ReadFile returns a copy of a file's current (volatile) content.
func (f *FaultFS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ino, ok := f.files[clean(name)]
	if !ok {
		return nil, pathErr("read", name, syscall.ENOENT)
	}
	return bytes.Clone(ino.data), nil
}

// WriteFile sets a file's content, durably, directory entry included,
// creating its directory; it is not counted and never fails, for tests
// that prepare a file system.
func (f *FaultFS) WriteFile(name string, data []byte) {
	name = clean(name)
	f.mu.Lock()
	defer f.mu.Unlock()
	for d := filepath.Dir(name); !f.dirs[d]; d = filepath.Dir(d) {
		f.dirs[d] = true
		f.ddirs[d] = true
	}
	ino := &inode{data: bytes.Clone(data), synced: bytes.Clone(data)}
	f.files[name] = ino
	f.durable[name] = ino
}

// file is an open FaultFS file.
type file struct {
	fs          *FaultFS
	ino         *inode
	name        string
	read, write bool
	closed      bool
}

func (fl *file) check(op string, write bool) error {
	if fl.closed {
		return pathErr(op, fl.name, os.ErrClosed)
	}
	if write && !fl.write || !write && !fl.read {
		return pathErr(op, fl.name, syscall.EBADF)
	}
	return nil
}

// ReadAt reads from the volatile content (OpRead).
func (fl *file) ReadAt(p []byte, off int64) (int, error) {
	if err := fl.fs.begin(OpRead, fl.name); err != nil {
		return 0, pathErr("read", fl.name, err)
	}
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	if err := fl.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", fl.name, syscall.EINVAL)
	}
	if off >= int64(len(fl.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, fl.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt writes to the volatile content (OpWrite), extending the file
// with zeros if off is past its end.
func (fl *file) WriteAt(p []byte, off int64) (int, error) {
	short := false
	if err := fl.fs.beginWrite(fl.name, &short); err != nil && !short {
		return 0, pathErr("write", fl.name, err)
	} else if err != nil {
		// A short write: half the bytes land, then the error.
		n, _ := fl.writeAt(p[:len(p)/2], off)
		return n, pathErr("write", fl.name, err)
	}
	return fl.writeAt(p, off)
}

func (fl *file) writeAt(p []byte, off int64) (int, error) {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	if err := fl.check("write", true); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("write", fl.name, syscall.EINVAL)
	}
	end := off + int64(len(p))
	if end > int64(len(fl.ino.data)) {
		fl.ino.data = append(fl.ino.data, make([]byte, end-int64(len(fl.ino.data)))...)
	}
	copy(fl.ino.data[off:], p)
	fl.ino.lost = cutSpans(fl.ino.lost, off, end)
	return len(p), nil
}

// Sync makes the content durable (OpSync). A failed Sync persists
// nothing and, as Linux does, forgets that the unsynced bytes were
// dirty: a later successful Sync does not persist them either (unless
// they are written again).
func (fl *file) Sync() error {
	if err := fl.fs.begin(OpSync, fl.name); err != nil {
		fl.fs.mu.Lock()
		defer fl.fs.mu.Unlock()
		ino := fl.ino
		if c := commonPrefix(ino.data, ino.synced); c < len(ino.data) {
			ino.lost = append(ino.lost, span{int64(c), int64(len(ino.data))})
		}
		return pathErr("sync", fl.name, err)
	}
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	if fl.closed {
		return pathErr("sync", fl.name, os.ErrClosed)
	}
	ino := fl.ino
	synced := bytes.Clone(ino.data)
	for _, l := range ino.lost {
		for i := l.from; i < l.to && i < int64(len(synced)); i++ {
			if i < int64(len(ino.synced)) {
				synced[i] = ino.synced[i]
			} else {
				synced[i] = 0
			}
		}
	}
	ino.synced = synced
	return nil
}

// commonPrefix is the length of the common prefix of a and b.
func commonPrefix(a, b []byte) int {
	c := 0
	for c < len(a) && c < len(b) && a[c] == b[c] {
		c++
	}
	return c
}

// Truncate changes the volatile size (OpTruncate).
func (fl *file) Truncate(size int64) error {
	if err := fl.fs.begin(OpTruncate, fl.name); err != nil {
		return pathErr("truncate", fl.name, err)
	}
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	if err := fl.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", fl.name, syscall.EINVAL)
	}
	fl.ino.lost = cutSpans(fl.ino.lost, size, 1<<62)
	if size <= int64(len(fl.ino.data)) {
		fl.ino.data = slices.Clone(fl.ino.data[:size])
	} else {
		fl.ino.data = append(fl.ino.data, make([]byte, size-int64(len(fl.ino.data)))...)
	}
	return nil
}

// Size returns the volatile size (not counted, never fails but closed).
func (fl *file) Size() (int64, error) {
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	if fl.closed {
		return 0, pathErr("stat", fl.name, os.ErrClosed)
	}
	return int64(len(fl.ino.data)), nil
}

// Close closes the handle (OpClose); the content stays as it is.
func (fl *file) Close() error {
	err := fl.fs.begin(OpClose, fl.name)
	fl.fs.mu.Lock()
	defer fl.fs.mu.Unlock()
	if fl.closed {
		return pathErr("close", fl.name, os.ErrClosed)
	}
	fl.closed = true
	if err != nil {
		return pathErr("close", fl.name, err)
	}
	return nil
}

// cutSpans removes [from, to) from spans: those bytes are dirty again.
func cutSpans(spans []span, from, to int64) []span {
	if len(spans) == 0 {
		return spans
	}
	var out []span
	for _, sp := range spans {
		if sp.to <= from || sp.from >= to {
			out = append(out, sp)
			continue
		}
		if sp.from < from {
			out = append(out, span{sp.from, from})
		}
		if sp.to > to {
			out = append(out, span{to, sp.to})
		}
	}
	return out
}

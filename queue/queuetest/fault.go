package queuetest

import (
	"syscall"
)

// Op names a kind of FaultFS call, for counting and fault injection.
type Op string

// The operations FaultFS counts. File.Size and the test helpers ReadFile
// and WriteFile are not counted.
const (
	OpOpen     Op = "open"     // OpenFile without O_CREATE
	OpCreate   Op = "create"   // OpenFile with O_CREATE
	OpRead     Op = "read"     // File.ReadAt
	OpWrite    Op = "write"    // File.WriteAt
	OpSync     Op = "sync"     // File.Sync
	OpTruncate Op = "truncate" // File.Truncate
	OpClose    Op = "close"    // File.Close
	OpRemove   Op = "remove"
	OpRename   Op = "rename"
	OpReadDir  Op = "readdir"
	OpMkdir    Op = "mkdir"
	OpSyncDir  Op = "syncdir"
	OpLock     Op = "lock"
)

// Fault makes calls of one operation fail.
type Fault struct {
	Op Op
	// N is the call to fail, counting from 1 since New (or Crash, which
	// starts a new count).
	N int
	// Sticky fails every call from the N-th on, as a dead disk would.
	Sticky bool
	// Err is the error returned (wrapped in an *fs.PathError); nil means
	// syscall.EIO.
	Err error
	// Short makes a failing OpWrite write the first half of its bytes
	// before it returns the error.
	Short bool
}

// Inject adds a fault. Faults are checked in the order added; the first
// that matches a call fails it.
func (f *FaultFS) Inject(flt Fault) {
	if flt.Err == nil {
		flt.Err = syscall.EIO
	}
	f.mu.Lock()
	f.faults = append(f.faults, flt)
	f.mu.Unlock()
}

// ClearFaults removes every fault and the hook.
func (f *FaultFS) ClearFaults() {
	f.mu.Lock()
	f.faults, f.hook = nil, nil
	f.mu.Unlock()
}

// Calls returns how many calls of op have been made.
func (f *FaultFS) Calls(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// SetHook sets a function run before every counted call, outside the
// file system's lock, with the call's operation, path and number (as
// counted by Calls). It may block; if it returns an error, the call
// fails with it. nil removes the hook.
func (f *FaultFS) SetHook(hook func(op Op, name string, n int) error) {
	f.mu.Lock()
	f.hook = hook
	f.mu.Unlock()
}

// begin counts a call and says whether it fails.
func (f *FaultFS) begin(op Op, name string) error {
	short := false
	return f.count(op, name, &short)
}

// beginWrite is begin for OpWrite; *short is set when the write should
// land half its bytes before failing.
func (f *FaultFS) beginWrite(name string, short *bool) error {
	return f.count(OpWrite, name, short)
}

func (f *FaultFS) count(op Op, name string, short *bool) error {
	f.mu.Lock()
	f.calls[op]++
	n := f.calls[op]
	hook := f.hook
	for _, flt := range f.faults {
		if flt.Op == op && (n == flt.N || flt.Sticky && n >= flt.N) {
			f.mu.Unlock()
			*short = flt.Short && op == OpWrite
			return flt.Err
		}
	}
	f.mu.Unlock()
	if hook != nil {
		return hook(op, name, n)
	}
	return nil
}

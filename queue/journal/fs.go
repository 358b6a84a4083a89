package journal

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the file system a journal lives in: OSFS for real files,
// queuetest.FaultFS in tests to crash and fail on purpose. Names are
// paths as the os package takes them. Implementations must be safe for
// concurrent use.
type FS interface {
	// OpenFile opens or creates a file, with the flags of os.OpenFile
	// (O_RDONLY, O_RDWR, O_CREATE, O_EXCL, O_TRUNC).
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// ReadDir returns the names of the entries of a directory, sorted.
	ReadDir(dir string) ([]string, error)
	// Remove removes a file.
	Remove(name string) error
	// Rename renames a file, replacing newname if it exists; both names
	// are in the same directory.
	Rename(oldname, newname string) error
	// MkdirAll creates a directory and its parents if missing.
	MkdirAll(dir string, perm fs.FileMode) error
	// SyncDir makes the directory's entries (files created, removed and
	// renamed in it) durable, as fsync on the directory does.
	SyncDir(dir string) error
	// Lock takes an exclusive lock named by a file, for the life of the
	// returned Closer; it fails at once, with an error wrapping ErrLocked,
	// if the lock is held elsewhere.
	Lock(name string) (io.Closer, error)
}

// File is an open file of an FS. ReadAt may run concurrently with the
// other methods.
type File interface {
	io.ReaderAt
	// WriteAt writes at an offset; a short write returns an error.
	io.WriterAt
	// Sync makes the file's content durable (fsync).
	Sync() error
	// Truncate changes the file's size.
	Truncate(size int64) error
	// Size returns the file's current size.
	Size() (int64, error)
	Close() error
}

// OSFS is the real file system, through the os package: File.Sync is
// fsync(2), SyncDir opens the directory and fsyncs it, Lock is flock(2)
// on Unix.
type OSFS struct{}

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// OpenFile opens a file with os.OpenFile.
func (OSFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// ReadDir lists a directory with os.ReadDir.
func (OSFS) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

// Remove removes a file with os.Remove.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename renames a file with os.Rename.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// MkdirAll creates a directory with os.MkdirAll.
func (OSFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }

// SyncDir opens dir and fsyncs it.
func (OSFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Lock takes an exclusive flock(2) on name, creating the file if needed.
func (OSFS) Lock(name string) (io.Closer, error) { return lockFile(name) }

// joinDir joins a journal directory and a file name.
func joinDir(dir, name string) string { return filepath.Join(dir, name) }

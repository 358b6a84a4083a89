package journal

import (
	"fmt"
	"os"
	"path/filepath"
)

// WriteFileAtomic replaces the file name with data so that after a crash
// the file holds either its old content or data, never a mix: it writes
// name+".tmp", fsyncs it, renames it over name and fsyncs the directory.
// It is meant for small metadata files (a queue's configuration); a
// leftover name+".tmp" from a crash is overwritten by the next call.
func WriteFileAtomic(fsys FS, name string, data []byte) error {
	if fsys == nil {
		fsys = OSFS{}
	}
	tmp := name + tmpExt
	f, err := fsys.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("journal: write %s: %w", name, err)
	}
	if _, err = f.WriteAt(data, 0); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err == nil {
		err = fsys.SyncDir(filepath.Dir(name))
	}
	if err != nil {
		return fmt.Errorf("journal: write %s: %w", name, err)
	}
	return nil
}

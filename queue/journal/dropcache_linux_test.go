package journal_test

import (
	"os"

	"golang.org/x/sys/unix"
)

// dropCache asks the kernel to evict a (synced) file from the page cache,
// so that reading it again goes to the disk (or at least the hypervisor).
func dropCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

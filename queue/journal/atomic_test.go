package journal_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"switchboard/queue/journal"
	"switchboard/queue/queuetest"
)

func TestWriteFileAtomicOS(t *testing.T) {
	name := filepath.Join(t.TempDir(), "config.json")
	for _, data := range []string{"first", "second, longer", "3"} {
		if err := journal.WriteFileAtomic(journal.OSFS{}, name, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(name); err != nil || string(got) != data {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	}
	if _, err := os.Stat(name + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	if err := journal.WriteFileAtomic(nil, filepath.Join(name, "x"), nil); err == nil {
		t.Fatal("writing under a regular file succeeded")
	}
}

// TestWriteFileAtomicCrash: a power cut before any call of
// WriteFileAtomic, or a failure of any call, leaves the old content or
// the new one, never a mix or nothing; once it returned nil, the new.
func TestWriteFileAtomicCrash(t *testing.T) {
	const name = "/q/config.json"
	old, new := []byte("old content"), []byte("new, longer content")
	for k := 1; ; k++ {
		ffs := queuetest.New().StrictDirs()
		ffs.WriteFile(name, old)
		var crashed []*queuetest.FaultFS
		var calls atomic.Int32
		ffs.SetHook(func(queuetest.Op, string, int) error {
			if calls.Add(1) == int32(k) {
				for seed := range uint64(20) {
					crashed = append(crashed, ffs.Crash(rand.New(rand.NewPCG(seed, uint64(k)))))
				}
				return syscall.EIO // and fail that call
			}
			return nil
		})
		err := journal.WriteFileAtomic(ffs, name, new)
		if err == nil {
			if calls.Load() >= int32(k) {
				t.Fatalf("call %d failed, WriteFileAtomic returned nil", k)
			}
			ffs.SetHook(nil)
			for seed := range uint64(20) {
				if got, _ := ffs.Crash(rand.New(rand.NewPCG(seed, 0))).ReadFile(name); string(got) != string(new) {
					t.Fatalf("after success and a power cut: %q", got)
				}
			}
			t.Logf("checked a crash and a failure at each of %d calls", k-1)
			return
		}
		if !errors.Is(err, syscall.EIO) {
			t.Fatalf("call %d: %v", k, err)
		}
		for _, c := range append(crashed, ffs) {
			got, err := c.ReadFile(name)
			if err != nil || string(got) != string(old) && string(got) != string(new) {
				t.Fatalf("crash or failure at call %d: %q, %v", k, got, err)
			}
		}
	}
}

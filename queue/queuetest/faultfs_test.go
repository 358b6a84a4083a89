package queuetest

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"slices"
	"syscall"
	"testing"

	"switchboard/queue/journal"
)

func mustCreate(t *testing.T, f *FaultFS, name string) journal.File {
	t.Helper()
	fl, err := f.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}

func mustWrite(t *testing.T, fl journal.File, p []byte, off int64) {
	t.Helper()
	if _, err := fl.WriteAt(p, off); err != nil {
		t.Fatal(err)
	}
}

func content(t *testing.T, f *FaultFS, name string) []byte {
	t.Helper()
	b, err := f.ReadFile(name)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func exists(f *FaultFS, name string) bool {
	_, err := f.ReadFile(name)
	return err == nil
}

// TestCrashKeepsOnlySynced: with a nil source a crash keeps exactly the
// synced content and the synced directory entries.
func TestCrashKeepsOnlySynced(t *testing.T) {
	f := New()
	if err := f.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	a := mustCreate(t, f, "/d/a")
	mustWrite(t, a, []byte("hello"), 0)
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	c := f.Crash(nil)
	if exists(c, "/d/a") {
		t.Fatal("a file whose directory entry was never synced survived")
	}
	if err := f.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, a, []byte(" world"), 5)
	b := mustCreate(t, f, "/d/b")
	mustWrite(t, b, []byte("unsynced"), 0)
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	c = f.Crash(nil)
	if got := content(t, c, "/d/a"); string(got) != "hello" {
		t.Fatalf("a after crash = %q, want the synced %q", got, "hello")
	}
	if exists(c, "/d/b") {
		t.Fatal("b survived without SyncDir")
	}
	if got := content(t, f, "/d/a"); string(got) != "hello world" {
		t.Fatalf("the crash changed the original: %q", got)
	}

	// Rename and remove are durable only after SyncDir.
	if err := f.Rename("/d/b", "/d/c"); err != nil {
		t.Fatal(err)
	}
	if err := f.Remove("/d/a"); err != nil {
		t.Fatal(err)
	}
	c = f.Crash(nil)
	if !exists(c, "/d/a") || exists(c, "/d/c") {
		t.Fatal("unsynced rename or remove survived")
	}
	if err := f.SyncDir("/d"); err != nil {
		t.Fatal(err)
	}
	c = f.Crash(nil)
	if exists(c, "/d/a") || exists(c, "/d/b") || string(content(t, c, "/d/c")) != "unsynced" {
		names, _ := c.ReadDir("/d")
		t.Fatalf("after SyncDir: %v", names)
	}
	// A crash releases locks, and the crashed copy starts a new count.
	if _, err := f.Lock("/d/LOCK"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Lock("/d/LOCK"); !errors.Is(err, journal.ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	c = f.Crash(nil)
	if _, err := c.Lock("/d/LOCK"); err != nil {
		t.Fatalf("lock after crash: %v", err)
	}
	if c.Calls(OpWrite) != 0 || f.Calls(OpWrite) != 3 {
		t.Fatalf("counts: crashed %d, original %d", c.Calls(OpWrite), f.Calls(OpWrite))
	}
}

// TestCrashTornWrites: with a source, a file keeps its synced content
// and a prefix of what was written after it, damaged only past the
// synced part; every outcome occurs over enough seeds, and a seed gives
// the same result every time.
func TestCrashTornWrites(t *testing.T) {
	f := New()
	f.WriteFile("/d/seg", nil)
	fl, err := f.OpenFile("/d/seg", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	synced := bytes.Repeat([]byte("S"), 100)
	mustWrite(t, fl, synced, 0)
	if err := fl.Sync(); err != nil {
		t.Fatal(err)
	}
	tail := bytes.Repeat([]byte("T"), 50)
	mustWrite(t, fl, tail, 100)
	var sawNone, sawPart, sawAll, sawGarbage bool
	for seed := range uint64(300) {
		got := content(t, f.Crash(rand.New(rand.NewPCG(seed, 1))), "/d/seg")
		again := content(t, f.Crash(rand.New(rand.NewPCG(seed, 1))), "/d/seg")
		if !bytes.Equal(got, again) {
			t.Fatalf("seed %d: not deterministic", seed)
		}
		if len(got) < 100 || len(got) > 150 || !bytes.Equal(got[:100], synced) {
			t.Fatalf("seed %d: synced part damaged: %q", seed, got)
		}
		torn := got[100:]
		switch {
		case len(torn) == 0:
			sawNone = true
		case bytes.Equal(torn, tail[:len(torn)]) && len(torn) == 50:
			sawAll = true
		case bytes.Equal(torn, tail[:len(torn)]):
			sawPart = true
		default:
			sawGarbage = true
		}
	}
	if !sawNone || !sawPart || !sawAll || !sawGarbage {
		t.Fatalf("outcomes: none %v, part %v, all %v, garbage %v", sawNone, sawPart, sawAll, sawGarbage)
	}

	// A truncation since the last Sync may or may not have landed.
	if err := fl.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fl.Truncate(120); err != nil {
		t.Fatal(err)
	}
	lens := map[int]bool{}
	for seed := range uint64(50) {
		lens[len(content(t, f.Crash(rand.New(rand.NewPCG(seed, 2))), "/d/seg"))] = true
	}
	if !lens[150] || !lens[120] || len(lens) != 2 {
		t.Fatalf("lengths after an unsynced truncate: %v", lens)
	}
}

// TestCrashDirPrefix: the pending directory operations that survive are
// a prefix, in order.
func TestCrashDirPrefix(t *testing.T) {
	f := New()
	if err := f.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	names := []string{"/d/1", "/d/2", "/d/3", "/d/4"}
	for _, n := range names {
		mustCreate(t, f, n).Close()
	}
	counts := map[int]bool{}
	for seed := range uint64(100) {
		c := f.Crash(rand.New(rand.NewPCG(seed, 3)))
		got, err := c.ReadDir("/d")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"1", "2", "3", "4"}[:len(got)]
		if !slices.Equal(got, want) {
			t.Fatalf("seed %d: %v is not a prefix", seed, got)
		}
		counts[len(got)] = true
	}
	if len(counts) != 5 {
		t.Fatalf("prefix lengths seen: %v", counts)
	}
}

func TestFaults(t *testing.T) {
	f := New()
	f.Inject(Fault{Op: OpWrite, N: 2, Err: syscall.ENOSPC, Short: true})
	f.Inject(Fault{Op: OpSync, N: 2, Sticky: true})
	fl := mustCreate(t, f, "/a")
	mustWrite(t, fl, []byte("abcd"), 0)
	n, err := fl.WriteAt([]byte("efgh"), 4)
	if n != 2 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("short write: %d, %v", n, err)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != "/a" {
		t.Fatalf("error %v is not a PathError on /a", err)
	}
	mustWrite(t, fl, []byte("ij"), 6)
	if got := content(t, f, "/a"); string(got) != "abcdefij" {
		t.Fatalf("content %q", got)
	}
	if err := fl.Sync(); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := fl.Sync(); !errors.Is(err, syscall.EIO) {
			t.Fatalf("sticky sync fault: %v", err)
		}
	}
	if f.Calls(OpWrite) != 3 || f.Calls(OpSync) != 4 || f.Calls(OpCreate) != 1 {
		t.Fatalf("calls: write %d sync %d create %d", f.Calls(OpWrite), f.Calls(OpSync), f.Calls(OpCreate))
	}
	// The failed syncs persisted nothing.
	if err := f.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	if got := content(t, f.Crash(nil), "/a"); string(got) != "abcdefij" {
		t.Fatalf("after crash %q", got)
	}
	f.ClearFaults()
	f.Inject(Fault{Op: OpWrite, N: 4})
	if err := fl.Sync(); err != nil {
		t.Fatal(err)
	}
	f.SetHook(func(op Op, name string, n int) error {
		if op == OpRename {
			return syscall.EROFS
		}
		return nil
	})
	if err := f.Rename("/a", "/b"); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("hooked rename: %v", err)
	}
	if _, err := fl.WriteAt([]byte("x"), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("default fault error: %v", err)
	}
	if _, err := f.OpenFile("/nodir/x", os.O_RDWR|os.O_CREATE, 0o644); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("create in a missing directory: %v", err)
	}
	ro, err := f.OpenFile("/a", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ro.WriteAt([]byte("x"), 0); err == nil {
		t.Fatal("write to a read-only handle succeeded")
	}
	buf := make([]byte, 10)
	if n, err := ro.ReadAt(buf, 4); n != 4 || err != io.EOF {
		t.Fatalf("ReadAt past the end: %d, %v", n, err)
	}
	ro.Close()
	if _, err := ro.ReadAt(buf, 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}

// TestFailedSyncForgetsDirtyData: after a failed Sync, a Sync that
// succeeds does not persist what the failed one dropped (Linux marks the
// pages clean), but does persist bytes written again or later.
func TestFailedSyncForgetsDirtyData(t *testing.T) {
	f := New()
	f.WriteFile("/seg", []byte("synced;"))
	fl, err := f.OpenFile("/seg", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, fl, []byte("dropped;"), 7)
	f.Inject(Fault{Op: OpSync, N: 1})
	if err := fl.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("injected sync fault: %v", err)
	}
	mustWrite(t, fl, []byte("later"), 15)
	if err := fl.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := content(t, f, "/seg"); string(got) != "synced;dropped;later" {
		t.Fatalf("reads see %q", got)
	}
	want := "synced;\x00\x00\x00\x00\x00\x00\x00\x00later"
	if got := content(t, f.Crash(nil), "/seg"); string(got) != want {
		t.Fatalf("after the crash %q, want %q", got, want)
	}
	// Written again, the bytes are dirty and a Sync persists them.
	mustWrite(t, fl, []byte("again"), 7)
	if err := fl.Sync(); err != nil {
		t.Fatal(err)
	}
	want = "synced;again\x00\x00\x00later"
	if got := content(t, f.Crash(nil), "/seg"); string(got) != want {
		t.Fatalf("after rewriting %q, want %q", got, want)
	}
}

// TestCrashLosesUnsyncedDirectory: a new directory is an entry of its
// parent; until the parent is synced a crash loses it with everything
// in it, synced files included.
func TestCrashLosesUnsyncedDirectory(t *testing.T) {
	f := New().StrictDirs()
	if err := f.MkdirAll("/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	fl := mustCreate(t, f, "/a/b/file")
	mustWrite(t, fl, []byte("data"), 0)
	if err := fl.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.SyncDir("/a/b"); err != nil {
		t.Fatal(err)
	}
	if c := f.Crash(nil); exists(c, "/a/b/file") {
		t.Fatal("a file survived in a directory whose entry was never synced")
	}
	if err := f.SyncDir("/a"); err != nil { // b is durable in a, a is not in /
		t.Fatal(err)
	}
	if c := f.Crash(nil); exists(c, "/a/b/file") {
		t.Fatal("a file survived under a directory whose entry was never synced")
	}
	if err := f.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	c := f.Crash(nil)
	if got := content(t, c, "/a/b/file"); string(got) != "data" {
		t.Fatalf("after syncing every parent: %q", got)
	}
	if names, err := c.ReadDir("/a"); err != nil || len(names) != 1 || names[0] != "b" {
		t.Fatalf("ReadDir /a after the crash: %v, %v", names, err)
	}
}

// TestLenientDirs: without StrictDirs, new directories survive a crash
// without a sync of their parent.
func TestLenientDirs(t *testing.T) {
	f := New()
	if err := f.MkdirAll("/a/b", 0o755); err != nil {
		t.Fatal(err)
	}
	if names, err := f.Crash(nil).ReadDir("/a"); err != nil || len(names) != 1 {
		t.Fatalf("ReadDir /a after a crash: %v, %v", names, err)
	}
}

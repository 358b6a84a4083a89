package queuetest

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"path/filepath"
)

// Crash returns the file system as a power cut at this moment would leave
// it (see the package documentation): a new FaultFS, with fresh counters,
// no faults, no hook and no locks. f itself is unchanged and can go on
// being used (by a journal that did not notice the "crash"; it no longer
// affects the result).
//
// With rng nil only what was synced survives. Otherwise rng decides how
// many pending directory operations survive (a prefix of them, in order)
// and, for each file changed since its last Sync, how much of the
// change reached the disk: a prefix of the bytes past the part that
// still matches the synced content, sometimes with a stretch of zeros or
// random bytes in that torn part; a file truncated or overwritten since
// its Sync may also keep its synced content whole.
func (f *FaultFS) Crash(rng *rand.Rand) *FaultFS {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns, dirs := maps.Clone(f.durable), maps.Clone(f.ddirs)
	if rng != nil {
		for _, op := range f.pending[:rng.IntN(len(f.pending)+1)] {
			op.apply(ns, dirs)
		}
	}
	// A directory survives only if its parent does; a file only if its
	// directory does.
	var alive func(d string) bool
	alive = func(d string) bool {
		p := filepath.Dir(d)
		return dirs[d] && (p == d || alive(p))
	}
	out := New()
	out.strict = f.strict
	for d := range dirs {
		if alive(d) {
			out.dirs[d], out.ddirs[d] = true, true
		}
	}
	inodes := map[*inode]*inode{}
	for name, ino := range ns {
		if !out.dirs[filepath.Dir(name)] {
			continue
		}
		n, ok := inodes[ino]
		if !ok {
			data := crashContent(ino, rng)
			n = &inode{data: data, synced: bytes.Clone(data)}
			inodes[ino] = n
		}
		out.files[name] = n
		out.durable[name] = n
	}
	return out
}

// crashContent is what a file holds after a power cut.
func crashContent(ino *inode, rng *rand.Rand) []byte {
	d, s := ino.data, ino.synced
	if rng == nil || bytes.Equal(d, s) {
		return bytes.Clone(s)
	}
	c := commonPrefix(d, s)
	if len(s) > c && rng.IntN(2) == 0 {
		return bytes.Clone(s) // the truncation or overwrite never landed
	}
	k := rng.IntN(len(d) - c + 1)
	out := bytes.Clone(d[:c+k])
	if k > 0 && rng.IntN(3) == 0 {
		a := c + rng.IntN(k)
		b := a + 1 + rng.IntN(c+k-a)
		if rng.IntN(2) == 0 {
			clear(out[a:b])
		} else {
			for i := a; i < b; i++ {
				out[i] = byte(rng.Uint32())
			}
		}
	}
	return out
}

//go:build !linux

package shm

// asymmetricFences is false without membarrier(2): writers keep their full
// barrier on every message.
func asymmetricFences() bool { return false }

func globalBarrier() bool  { return false }
func privateBarrier() bool { return false }

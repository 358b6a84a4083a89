//go:build race

package shm

// raceEnabled: the race detector does not know membarrier(2), so Go memory
// the writer would store to plainly is stored atomically instead.
const raceEnabled = true

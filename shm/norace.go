//go:build !race

package shm

// raceEnabled: see race.go.
const raceEnabled = false

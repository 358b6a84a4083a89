//go:build !linux

package spinbase

import "context"

// Run returns ErrUnsupported: the spin ping-pong needs Linux (memfd,
// PR_SET_PDEATHSIG).
func Run(ctx context.Context, n int) (Result, error) { return Result{}, ErrUnsupported }

// ChildMain does nothing on systems other than Linux.
func ChildMain() {}

//go:build tools

// Package deps pins modules that only tests and tools import, so that
// `go mod tidy` keeps them while the code that uses them is written.
package deps

import (
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go"
	_ "go.uber.org/goleak"
	_ "golang.org/x/sys/unix"
	_ "pgregory.net/rapid"
)

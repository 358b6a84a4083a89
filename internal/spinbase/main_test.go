package spinbase

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain turns the test binary into Run's child when Run re-executes it.
func TestMain(m *testing.M) {
	ChildMain()
	goleak.VerifyTestMain(m)
}

package journal_test

import (
	"flag"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The model test finds rare interleavings (a crash in the middle of
	// removing several segments) only with more than rapid's default 100
	// runs; -rapid.checks on the command line still wins.
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "rapid.checks" })
	if !set {
		flag.Set("rapid.checks", "400")
	}
	goleak.VerifyTestMain(m)
}

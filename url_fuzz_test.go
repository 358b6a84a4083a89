package switchboard_test

import (
	"strings"
	"testing"

	"switchboard"
)

// FuzzParseURL: any string gives an address to dial or a clear error,
// never a panic.
func FuzzParseURL(f *testing.F) {
	for _, seed := range []string{
		"unix:///run/sb.sock", "tcp://127.0.0.1:4222", "nats://localhost", "localhost:4222",
		"unix://relative", "tcp://user:pass@host:1", "ftp://x", "nats://[::1]:4222", "::::", "tcp://", "a b",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, url string) {
		if url == "" {
			return // the default URL depends on the environment
		}
		network, addr, err := switchboard.ParseURL(url)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "switchboard: ") {
				t.Fatalf("error without the package prefix: %v", err)
			}
			return
		}
		if (network != "unix" && network != "tcp") || addr == "" {
			t.Fatalf("ParseURL(%q) = %q, %q", url, network, addr)
		}
		if network == "unix" && !strings.HasPrefix(addr, "/") {
			t.Fatalf("ParseURL(%q): relative socket path %q", url, addr)
		}
	})
}

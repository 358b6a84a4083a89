package main

import (
	"strings"
	"testing"
)

// FuzzConfig feeds arbitrary bytes to the configuration parser: it must
// never panic, errors must name the file on one line, and an accepted file
// must apply cleanly.
func FuzzConfig(f *testing.F) {
	for _, seed := range []string{
		"",
		"socket = \"/run/sb.sock\"\nlisten = \"127.0.0.1:4222\"\n",
		"max_payload = \"1MiB\"\nmax_pending = 67108864\nwrite_deadline = \"10s\"\n",
		"socket_mode = \"0660\"\nlog_format = \"json\"\nlog_level = \"debug\"\n",
		"max_payload = \"lots\"\n",
		"write_deadline = \"-1s\"\n",
		"bogus = 1\n",
		"max_payload = = 1\n",
		"[table]\nx = 1\n",
		"max_connections = 99999999999999999999\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fc, err := parseConfig("fuzz.toml", data)
		if err != nil {
			if !strings.Contains(err.Error(), "fuzz.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		s := &serveSettings{}
		_ = s.applyFile(fc)
	})
}

// FuzzByteSize: sizes parse without panicking and stay in range.
func FuzzByteSize(f *testing.F) {
	for _, seed := range []string{"0", "512", "4KiB", "1 MiB", "64MB", "1G", "-1", "1e3", "99999999999999999999GiB", "KiB", ""} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseByteSize(s)
		if err == nil && (n < 0 || n > 1<<40) {
			t.Fatalf("parseByteSize(%q) = %d: out of range", s, n)
		}
	})
}

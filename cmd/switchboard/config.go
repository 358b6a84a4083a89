package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"switchboard/auth"
)

// fileConfig is the hub's TOML configuration file. Every key is optional;
// flags given on the command line override the file. The defaults are those
// of serveFlags below and of hub.Config. The policy (rules, users, tokens,
// allow_anonymous; see auth.File) may live in the same file.
type fileConfig struct {
	Socket           *string   `toml:"socket"`            // unix socket path; "" disables; default under $XDG_RUNTIME_DIR
	SocketMode       *string   `toml:"socket_mode"`       // octal file mode of the socket; default "0600"
	SocketGroup      *string   `toml:"socket_group"`      // group (name or id) given the socket file; default: the hub's
	Policy           *string   `toml:"policy"`            // policy file; default: the policy keys of this file, else the built-in default
	AuthTimeout      *duration `toml:"auth_timeout"`      // default "2s"
	TLS              *tlsFile  `toml:"tls"`               // TLS on the TCP listener; default off
	Listen           *string   `toml:"listen"`            // TCP host:port; "" disables; default "127.0.0.1:4222"
	Data             *string   `toml:"data"`              // data directory; default $XDG_STATE_HOME/switchboard
	Name             *string   `toml:"name"`              // name in INFO; default host name
	MaxPayload       *byteSize `toml:"max_payload"`       // default "1MiB"
	MaxControlLine   *byteSize `toml:"max_control_line"`  // default "4KiB"
	MaxPending       *byteSize `toml:"max_pending"`       // default "64MiB"
	WriteDeadline    *duration `toml:"write_deadline"`    // default "10s"
	PingInterval     *duration `toml:"ping_interval"`     // default "2m"
	MaxPingsOut      *int      `toml:"max_pings_out"`     // default 2
	MaxConnections   *int      `toml:"max_connections"`   // default 65536
	MaxSubscriptions *int      `toml:"max_subscriptions"` // default 0 (no limit)
	LogFormat        *string   `toml:"log_format"`        // "text" (default) or "json"
	LogLevel         *string   `toml:"log_level"`         // "debug", "info" (default), "warn", "error"

	auth.File // policy keys: allow_anonymous, allow_responses, response_ttl, [[user]], [[token]], [[rule]]

	path string // where the file was read from
	data []byte // its text, for the line numbers of policy rules
}

// tlsFile is the [tls] table: with cert and key set, the TCP listener
// requires TLS.
type tlsFile struct {
	Cert   *string `toml:"cert"`   // server certificate chain (PEM)
	Key    *string `toml:"key"`    // its private key (PEM)
	CA     *string `toml:"ca"`     // CAs that client certificates must chain to (PEM)
	Verify *bool   `toml:"verify"` // require a client certificate (mutual TLS); needs ca
}

// loadConfigFile reads path strictly: unknown keys and wrongly typed values
// are errors naming the key.
func loadConfigFile(path string) (*fileConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	fc, err := parseConfig(path, data)
	if err != nil {
		// One line, always: the message names the key.
		return nil, errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	fc.path, fc.data = path, data
	return fc, nil
}

// parseConfig decodes a configuration file's contents; path is for
// messages only.
func parseConfig(path string, data []byte) (*fileConfig, error) {
	var fc fileConfig
	md, err := toml.Decode(string(data), &fc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			if pe.LastKey != "" {
				return nil, fmt.Errorf("config %s: line %d: %s: %s", path, pe.Position.Line, pe.LastKey, pe.Message)
			}
			return nil, fmt.Errorf("config %s: line %d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("config %s: unknown key %q", path, und[0].String())
	}
	return &fc, nil
}

// duration is a time.Duration written as a string in TOML ("10s", "2m").
type duration time.Duration

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (try \"10s\" or \"2m\")", b)
	}
	if v <= 0 {
		return fmt.Errorf("%q must be positive", b)
	}
	*d = duration(v)
	return nil
}

// byteSize is a size in bytes written as an integer or a string with a
// unit: "512", "4KiB", "1MiB", "1GiB" (KB/MB/GB are accepted as powers of
// 1024 too).
type byteSize int64

func (s *byteSize) UnmarshalText(b []byte) error {
	v, err := parseByteSize(string(b))
	if err != nil {
		return err
	}
	*s = byteSize(v)
	return nil
}

// UnmarshalTOML accepts a plain integer as well as a string.
func (s *byteSize) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("%d must not be negative", x)
		}
		*s = byteSize(x)
		return nil
	case string:
		return s.UnmarshalText([]byte(x))
	}
	return fmt.Errorf("%v is not a size (try 1048576 or \"1MiB\")", v)
}

func parseByteSize(str string) (int64, error) {
	t := strings.TrimSpace(str)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("%q is not a size (try 1048576 or \"1MiB\")", str)
	}
	return n * mult, nil
}

// fileExists reports whether path names an existing file.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

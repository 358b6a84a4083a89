package switchboard

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"switchboard/internal/paths"
)

// ParseURL splits a hub URL into the network and address to dial:
//
//	unix:///abs/path      -> "unix", "/abs/path"
//	tcp://host:port       -> "tcp", "host:port"
//	nats://host[:port]    -> "tcp", "host:port" (port defaults to 4222)
//	tls://host[:port]     -> "tcp", "host:port" (port defaults to 4222; Connect requires TLS)
//	host:port             -> "tcp", "host:port"
//
// An empty url means paths.DefaultURL() ($SWITCHBOARD_URL, or the hub's
// default unix socket). Credentials in the URL are rejected (use
// Options.User, Password or Token). Errors wrap ErrBadURL.
func ParseURL(url string) (network, address string, err error) {
	t, err := parseURL(url)
	return t.network, t.addr, err
}

// target is a parsed hub URL.
type target struct {
	network string // "unix" or "tcp"
	addr    string // socket path or host:port
	host    string // host without port or brackets, for TLS verification; "" for unix
	tls     bool   // the scheme was tls://
}

func parseURL(url string) (target, error) {
	if url == "" {
		url = paths.DefaultURL()
	}
	bad := func(why string) (target, error) {
		return target{}, fmt.Errorf("%w %q: %s", ErrBadURL, url, why)
	}
	if strings.ContainsAny(url, " \t\r\n") {
		return bad("contains whitespace")
	}
	scheme, rest, hasScheme := strings.Cut(url, "://")
	if !hasScheme {
		if strings.Contains(url, "/") {
			return bad("want unix:///path, tcp://host:port, nats://host:port, tls://host:port or host:port")
		}
		scheme, rest = "tcp", url
	}
	scheme = strings.ToLower(scheme)
	switch scheme {
	case "unix":
		if rest == "" {
			return bad("missing socket path")
		}
		if !strings.HasPrefix(rest, "/") {
			return bad("socket path must be absolute (unix:///abs/path)")
		}
		return target{network: "unix", addr: rest}, nil
	case "tcp", "nats", "tls":
		rest = strings.TrimSuffix(rest, "/")
		if strings.Contains(rest, "@") {
			return bad("credentials in the URL are not supported; use Options.User, Password or Token")
		}
		if strings.ContainsAny(rest, "/?#") {
			return bad("unexpected path after host:port")
		}
		if rest == "" {
			return bad("missing host")
		}
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			if scheme == "tcp" || strings.Count(rest, ":") > 1 && !strings.HasPrefix(rest, "[") {
				return bad("want host:port")
			}
			host, port = strings.Trim(rest, "[]"), "4222"
		}
		if host == "" {
			return bad("missing host")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("port must be a number from 1 to 65535")
		}
		return target{network: "tcp", addr: net.JoinHostPort(host, port), host: host, tls: scheme == "tls"}, nil
	default:
		return bad("unsupported scheme " + strconv.Quote(scheme) + " (want unix, tcp, nats or tls)")
	}
}

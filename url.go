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
//	host:port             -> "tcp", "host:port"
//
// An empty url means paths.DefaultURL() ($SWITCHBOARD_URL, or the hub's
// default unix socket). Credentials in the URL are rejected (use
// Options.User, Password or Token). Errors wrap ErrBadURL.
func ParseURL(url string) (network, address string, err error) {
	if url == "" {
		url = paths.DefaultURL()
	}
	bad := func(why string) (string, string, error) {
		return "", "", fmt.Errorf("%w %q: %s", ErrBadURL, url, why)
	}
	if strings.ContainsAny(url, " \t\r\n") {
		return bad("contains whitespace")
	}
	scheme, rest, hasScheme := strings.Cut(url, "://")
	if !hasScheme {
		if strings.Contains(url, "/") {
			return bad("want unix:///path, tcp://host:port, nats://host:port or host:port")
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
		return "unix", rest, nil
	case "tcp", "nats":
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
			if scheme != "nats" || strings.Count(rest, ":") > 1 && !strings.HasPrefix(rest, "[") {
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
		return "tcp", net.JoinHostPort(host, port), nil
	default:
		return bad("unsupported scheme " + strconv.Quote(scheme) + " (want unix, tcp or nats)")
	}
}

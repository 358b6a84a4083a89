package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"switchboard/auth"
	"switchboard/hub"
	"switchboard/internal/paths"
)

// serveSettings are the effective settings of `switchboard serve`, built
// from defaults, then the config file, then flags.
type serveSettings struct {
	socket      string
	socketMode  os.FileMode
	socketGroup string
	listen      string
	policyPath  string      // --policy or the config's policy key
	policyFile  *fileConfig // a config file with policy keys
	tls         auth.TLSOptions
	tlsConfig   *tls.Config // built from tls when any TLS setting is given
	data        string
	logFormat   string
	logLevel    string
	hub         hub.Config
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "switchboard")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".local", "state", "switchboard")
	}
	return filepath.Join(os.TempDir(), "switchboard-"+strconv.Itoa(os.Getuid()), "data")
}

func newServe() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the hub",
		Long: `Run the hub. With no flags it listens on the default unix socket
($XDG_RUNTIME_DIR/switchboard.sock, else $TMPDIR/switchboard-UID/switchboard.sock,
mode 0600) and on TCP 127.0.0.1:4222. Settings come from defaults, then
--config FILE (TOML), then flags; flags win. SIGINT or SIGTERM stops accepting,
flushes what is pending and exits 0.

Security (docs/security.md): the hub's own uid and root may do everything;
other local uids nothing unless --policy FILE (or policy keys in the config
file) grants it; TCP clients must log in (a [[user]] password, a [[token]],
or a client certificate with --tls-ca) unless the policy sets
allow_anonymous. --socket-mode 0666 lets other uids reach the socket at all;
the policy still decides what they may do.`,
		Args: cobra.NoArgs,
		RunE: runServe,
	}
	f := cmd.Flags()
	f.String("config", "", "TOML configuration file")
	f.String("socket", paths.DefaultSocket(), `unix socket path ("" disables)`)
	f.String("socket-mode", "0600", "unix socket file mode (octal); the policy still applies to whoever can connect")
	f.String("socket-group", "", "group (name or id) to give the socket file, with --socket-mode 0660")
	f.String("policy", "", "policy file: who may publish and subscribe to what (see docs/security.md)")
	f.Duration("auth-timeout", 2*time.Second, "how long a new connection may take to finish TLS and CONNECT")
	f.String("tls-cert", "", "TLS certificate (PEM): the TCP listener then requires TLS")
	f.String("tls-key", "", "TLS private key (PEM)")
	f.String("tls-ca", "", "CA certificates (PEM) that client certificates must chain to")
	f.Bool("tls-verify", false, "require a client certificate signed by --tls-ca (mutual TLS)")
	f.String("listen", hub.DefaultTCPAddr, `TCP listen address host:port ("" disables)`)
	f.String("data", defaultDataDir(), "data directory (durable state)")
	f.String("name", "", "hub name reported to clients (default: host name)")
	f.String("max-payload", "1MiB", "largest message a client may publish")
	f.String("max-pending", "64MiB", "bytes queued for one connection before it is cut off as a slow consumer")
	f.Int("max-connections", 65536, "maximum concurrent connections")
	f.Int("max-subscriptions", 0, "maximum subscriptions per connection (0 = no limit)")
	f.Duration("write-deadline", 10*time.Second, "how long a write may stall before the connection is cut off as a slow consumer")
	f.Duration("ping-interval", 2*time.Minute, "how often quiet clients are pinged")
	f.String("log-format", "text", "log format: text or json")
	f.String("log-level", "info", "log level: debug, info, warn or error")
	f.String("cpuprofile", "", "write a CPU profile of the hub to this file until it stops")
	f.MarkHidden("cpuprofile")
	return cmd
}

// settingsFromCommand applies defaults, the config file and then the flags
// the user set. Errors are usage errors (exit 2) naming the key.
func settingsFromCommand(cmd *cobra.Command) (*serveSettings, error) {
	f := cmd.Flags()
	s := &serveSettings{socketMode: 0o600}
	s.socket, _ = f.GetString("socket")
	s.listen, _ = f.GetString("listen")
	s.data, _ = f.GetString("data")
	s.logFormat, _ = f.GetString("log-format")
	s.logLevel, _ = f.GetString("log-level")

	if path, _ := f.GetString("config"); path != "" {
		fc, err := loadConfigFile(path)
		if err != nil {
			return nil, usageError{err}
		}
		if err := s.applyFile(fc); err != nil {
			return nil, usageError{fmt.Errorf("config %s: %w", path, err)}
		}
		if !fc.File.Empty() {
			s.policyFile = fc
		}
	}

	var err error
	set := func(name string, apply func() error) {
		if err == nil && f.Changed(name) {
			if e := apply(); e != nil {
				err = usagef("--%s: %v", name, e)
			}
		}
	}
	set("socket", func() error { s.socket, _ = f.GetString("socket"); return nil })
	set("listen", func() error { s.listen, _ = f.GetString("listen"); return nil })
	set("data", func() error { s.data, _ = f.GetString("data"); return nil })
	set("log-format", func() error { s.logFormat, _ = f.GetString("log-format"); return nil })
	set("log-level", func() error { s.logLevel, _ = f.GetString("log-level"); return nil })
	set("name", func() error { s.hub.Name, _ = f.GetString("name"); return nil })
	set("socket-mode", func() (e error) { v, _ := f.GetString("socket-mode"); s.socketMode, e = parseMode(v); return })
	set("socket-group", func() error { s.socketGroup, _ = f.GetString("socket-group"); return nil })
	set("policy", func() error { s.policyPath, _ = f.GetString("policy"); return nil })
	set("auth-timeout", func() error { s.hub.AuthTimeout, _ = f.GetDuration("auth-timeout"); return nil })
	set("tls-cert", func() error { s.tls.CertFile, _ = f.GetString("tls-cert"); return nil })
	set("tls-key", func() error { s.tls.KeyFile, _ = f.GetString("tls-key"); return nil })
	set("tls-ca", func() error { s.tls.ClientCAFile, _ = f.GetString("tls-ca"); return nil })
	set("tls-verify", func() error { s.tls.Verify, _ = f.GetBool("tls-verify"); return nil })
	set("max-payload", func() error { return sizeFlag(f.GetString, "max-payload", &s.hub.MaxPayload) })
	set("max-pending", func() error { return sizeFlag(f.GetString, "max-pending", &s.hub.MaxPending) })
	set("max-connections", func() error { s.hub.MaxConnections, _ = f.GetInt("max-connections"); return nil })
	set("max-subscriptions", func() error { s.hub.MaxSubscriptions, _ = f.GetInt("max-subscriptions"); return nil })
	set("write-deadline", func() error { s.hub.WriteDeadline, _ = f.GetDuration("write-deadline"); return nil })
	set("ping-interval", func() error { s.hub.PingInterval, _ = f.GetDuration("ping-interval"); return nil })
	if err != nil {
		return nil, err
	}
	if s.logFormat != "text" && s.logFormat != "json" {
		return nil, usagef("log_format: %q must be \"text\" or \"json\"", s.logFormat)
	}
	var lvl slog.Level
	if e := lvl.UnmarshalText([]byte(s.logLevel)); e != nil {
		return nil, usagef("log_level: %q must be debug, info, warn or error", s.logLevel)
	}
	if s.socket == "" && s.listen == "" {
		return nil, usagef("nothing to listen on: both socket and listen are empty")
	}
	if s.listen != "" {
		if _, _, e := net.SplitHostPort(s.listen); e != nil {
			return nil, usagef("listen: %q is not host:port", s.listen)
		}
	}
	if pol, e := s.loadPolicy(); e != nil {
		return nil, usageError{e}
	} else {
		s.hub.Policy = pol
	}
	if s.tls != (auth.TLSOptions{}) {
		if s.listen == "" {
			return nil, usagef("tls: TLS is for the TCP listener, and listen is empty")
		}
		cfg, e := auth.ServerTLSConfig(s.tls)
		if e != nil {
			return nil, usageError{e}
		}
		s.tlsConfig = cfg
	}
	return s, nil
}

func (s *serveSettings) applyFile(fc *fileConfig) error {
	str := func(p *string, dst *string) {
		if p != nil {
			*dst = *p
		}
	}
	str(fc.Socket, &s.socket)
	str(fc.Listen, &s.listen)
	str(fc.Data, &s.data)
	str(fc.Name, &s.hub.Name)
	str(fc.LogFormat, &s.logFormat)
	str(fc.LogLevel, &s.logLevel)
	str(fc.SocketGroup, &s.socketGroup)
	str(fc.Policy, &s.policyPath)
	if fc.AuthTimeout != nil {
		s.hub.AuthTimeout = time.Duration(*fc.AuthTimeout)
	}
	if t := fc.TLS; t != nil {
		str(t.Cert, &s.tls.CertFile)
		str(t.Key, &s.tls.KeyFile)
		str(t.CA, &s.tls.ClientCAFile)
		if t.Verify != nil {
			s.tls.Verify = *t.Verify
		}
	}
	if fc.SocketMode != nil {
		m, err := parseMode(*fc.SocketMode)
		if err != nil {
			return fmt.Errorf("socket_mode: %w", err)
		}
		s.socketMode = m
	}
	size := func(p *byteSize, dst *int) {
		if p != nil {
			*dst = int(*p)
		}
	}
	size(fc.MaxPayload, &s.hub.MaxPayload)
	size(fc.MaxControlLine, &s.hub.MaxControlLine)
	size(fc.MaxPending, &s.hub.MaxPending)
	if fc.WriteDeadline != nil {
		s.hub.WriteDeadline = time.Duration(*fc.WriteDeadline)
	}
	if fc.PingInterval != nil {
		s.hub.PingInterval = time.Duration(*fc.PingInterval)
	}
	intv := func(p *int, dst *int) {
		if p != nil {
			*dst = *p
		}
	}
	intv(fc.MaxPingsOut, &s.hub.MaxPingsOut)
	intv(fc.MaxConnections, &s.hub.MaxConnections)
	intv(fc.MaxSubscriptions, &s.hub.MaxSubscriptions)
	return nil
}

func parseMode(v string) (os.FileMode, error) {
	m, err := strconv.ParseUint(v, 8, 32)
	if err != nil || m == 0 || m > 0o777 {
		return 0, fmt.Errorf("%q is not an octal file mode like 0600", v)
	}
	return os.FileMode(m), nil
}

func sizeFlag(get func(string) (string, error), name string, dst *int) error {
	v, _ := get(name)
	n, err := parseByteSize(v)
	if err != nil {
		return err
	}
	*dst = int(n)
	return nil
}

func (s *serveSettings) logger() *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(s.logLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if s.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func runServe(cmd *cobra.Command, _ []string) error {
	s, err := settingsFromCommand(cmd)
	if err != nil {
		return err
	}
	log := s.logger()
	s.hub.Logger = log
	if s.data != "" {
		if err := os.MkdirAll(s.data, 0o700); err != nil {
			return usagef("data: %v", err)
		}
	}
	s.hub.DataDir = s.data
	h, err := hub.New(s.hub)
	if errors.Is(err, hub.ErrStorage) {
		return fmt.Errorf("data %s: %w", s.data, err)
	} else if err != nil {
		return usagef("config: %v", err)
	}

	var ls []net.Listener
	closeAll := func() {
		for _, l := range ls {
			l.Close()
		}
		h.Close() // releases the queues' journals
	}
	if s.socket != "" {
		l, err := s.listenUnix(log)
		if err != nil {
			closeAll()
			return err
		}
		ls = append(ls, l)
	}
	if s.listen != "" {
		l, err := s.listenTCP(log)
		if err != nil {
			closeAll()
			return err
		}
		ls = append(ls, l)
	}

	if path, _ := cmd.Flags().GetString("cpuprofile"); path != "" {
		stopProfile, err := startCPUProfile(path)
		if err != nil {
			closeAll()
			return err
		}
		defer stopProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- h.Serve(context.Background(), ls...) }()
	eff := h.Config()
	log.Info("hub ready", "version", hub.Version, "max_payload", eff.MaxPayload, "max_pending", eff.MaxPending, "max_connections", eff.MaxConnections,
		"policy", policySource(s), "rules", eff.Policy.Rules(), "owner_uid", eff.Policy.Owner(), "auth_timeout", eff.AuthTimeout)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: flushing pending messages")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(sctx); err != nil {
		log.Warn("shutdown deadline passed; closed remaining connections", "err", err)
	}
	<-served
	log.Info("stopped")
	return nil
}

// startCPUProfile profiles the process into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpuprofile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// policySource says where the policy came from, for the startup log.
func policySource(s *serveSettings) string {
	switch {
	case s.policyPath != "":
		return s.policyPath
	case s.policyFile != nil:
		return s.policyFile.path
	}
	return "built-in default"
}

package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"switchboard/auth"
	"switchboard/hub"
)

// loadPolicy returns the policy of the hub: from --policy (or the config's
// policy key), or from policy keys in the config file itself, or nil for
// the built-in default. Both at once is an error: one place decides.
func (s *serveSettings) loadPolicy() (*auth.Policy, error) {
	switch {
	case s.policyPath != "" && s.policyFile != nil:
		return nil, fmt.Errorf("policy: both %s and policy keys in config %s; keep one", s.policyPath, s.policyFile.path)
	case s.policyPath != "":
		data, err := os.ReadFile(s.policyPath)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		return auth.Parse(s.policyPath, data)
	case s.policyFile != nil:
		return auth.Compile(s.policyFile.path, s.policyFile.data, &s.policyFile.File)
	}
	return nil, nil
}

// listenUnix opens the unix socket with its mode and group, and warns when
// the mode lets other users in but the directory keeps them out.
func (s *serveSettings) listenUnix(log *slog.Logger) (net.Listener, error) {
	gid := -1
	if s.socketGroup != "" {
		var err error
		if gid, err = lookupGID(s.socketGroup); err != nil {
			return nil, usagef("socket_group: %v", err)
		}
	}
	l, err := hub.ListenUnixGroup(s.socket, s.socketMode, gid)
	if err != nil {
		return nil, err
	}
	log.Info("listening", "transport", "unix", "path", s.socket, "mode", fmt.Sprintf("%#o", s.socketMode), "group", s.socketGroup)
	if s.socketMode&0o077 != 0 {
		dir := filepath.Dir(s.socket)
		if fi, err := os.Stat(dir); err == nil && !searchable(fi, s.socketMode, gid) {
			log.Warn("the socket's mode admits other users, but its directory does not: they cannot reach it; choose a socket path in a directory they can search", "dir", dir, "dir_mode", fmt.Sprintf("%#o", fi.Mode().Perm()))
		}
	}
	return l, nil
}

// searchable reports whether the users a socket of mode (and group gid,
// -1 for the hub's) admits can search directory fi to reach it.
func searchable(fi os.FileInfo, mode os.FileMode, gid int) bool {
	perm := fi.Mode().Perm()
	if perm&0o001 != 0 {
		return true
	}
	if mode&0o007 != 0 {
		return false // others are admitted but cannot search
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if gid < 0 {
		gid = os.Getegid()
	}
	return perm&0o010 != 0 && ok && int(st.Gid) == gid
}

// listenTCP opens the TCP listener, with TLS when a certificate is set.
func (s *serveSettings) listenTCP(log *slog.Logger) (net.Listener, error) {
	pol := s.hub.Policy
	if pol == nil {
		pol = auth.DefaultPolicy()
	}
	if s.tlsConfig == nil {
		l, err := hub.ListenTCP(s.listen)
		if err != nil {
			return nil, err
		}
		log.Info("listening", "transport", "tcp", "addr", l.Addr().String(), "tls", false, "anonymous", pol.AllowAnonymous())
		if !pol.AllowAnonymous() && !pol.HasCredentials() {
			log.Warn("the TCP listener will refuse every client: the policy has no [[user]] or [[token]] and does not set allow_anonymous (see docs/security.md)")
		}
		return l, nil
	}
	l, err := hub.ListenTLS(s.listen, s.tlsConfig)
	if err != nil {
		return nil, err
	}
	log.Info("listening", "transport", "tls", "addr", l.Addr().String(), "client_ca", s.tls.ClientCAFile, "verify", s.tls.Verify, "anonymous", pol.AllowAnonymous())
	return l, nil
}

// lookupGID resolves a group name or numeric id.
func lookupGID(g string) (int, error) {
	if n, err := strconv.Atoi(g); err == nil && n >= 0 {
		return n, nil
	}
	gr, err := user.LookupGroup(g)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(gr.Gid)
}

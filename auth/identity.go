package auth

import (
	"log/slog"
	"slices"
	"strconv"
	"strings"
)

// Identity is who is on the other end of a connection.
type Identity struct {
	Transport  string   // "unix", "tcp", "tls", "websocket"
	Local      bool     // UID, GID, Groups, PID come from the kernel (unix socket peer credentials)
	UID, GID   uint32   // Local only
	Groups     []uint32 // supplementary group ids
	PID        int32
	Comm       string   // process name at connect time, "" if unknown (logs only)
	UserName   string   // name of UID, "" if unknown
	GroupNames []string // names of GID and Groups that resolved
	CertCN     string   // subject common name of the verified client certificate
	Login      string   // password user, set by Authenticate
	Token      string   // token name, set by Authenticate
	Anonymous  bool     // admitted without credentials by allow_anonymous
}

// Credentials are what a client presented in CONNECT.
type Credentials struct{ User, Pass, Token string }

// Principals returns the principals of id, sorted and without duplicates:
// "*" always; for a Local identity uid:N, gid:N for GID and each of Groups,
// user:NAME if UserName is set and group:NAME for each of GroupNames; then
// cert:CN, login:NAME, token:NAME and anonymous as set. A nil Identity has
// only "*".
func (id *Identity) Principals() []string {
	ps := []string{"*"}
	if id == nil {
		return ps
	}
	if id.Local {
		ps = append(ps, "uid:"+u32(id.UID), "gid:"+u32(id.GID))
		for _, g := range id.Groups {
			ps = append(ps, "gid:"+u32(g))
		}
		if id.UserName != "" {
			ps = append(ps, "user:"+id.UserName)
		}
		for _, n := range id.GroupNames {
			if n != "" {
				ps = append(ps, "group:"+n)
			}
		}
	}
	if id.CertCN != "" {
		ps = append(ps, "cert:"+id.CertCN)
	}
	if id.Login != "" {
		ps = append(ps, "login:"+id.Login)
	}
	if id.Token != "" {
		ps = append(ps, "token:"+id.Token)
	}
	if id.Anonymous {
		ps = append(ps, "anonymous")
	}
	slices.Sort(ps)
	return slices.Compact(ps)
}

// Key returns the principal that per-principal limits (max_connections)
// count against: the first of login:NAME, token:NAME, cert:CN, uid:N (Local
// only) and anonymous that id has, or "" if none.
func (id *Identity) Key() string {
	switch {
	case id == nil:
		return ""
	case id.Login != "":
		return "login:" + id.Login
	case id.Token != "":
		return "token:" + id.Token
	case id.CertCN != "":
		return "cert:" + id.CertCN
	case id.Local:
		return "uid:" + u32(id.UID)
	case id.Anonymous:
		return "anonymous"
	}
	return ""
}

// String returns a short form for humans and logs, such as
// "uid:1000(alice) pid:4242(psql)" or "cert:web via tls".
func (id *Identity) String() string {
	if id == nil {
		return "<nil>"
	}
	var parts []string
	if id.Local {
		s := "uid:" + u32(id.UID)
		if id.UserName != "" {
			s += "(" + id.UserName + ")"
		}
		parts = append(parts, s)
		if id.PID > 0 {
			s := "pid:" + strconv.Itoa(int(id.PID))
			if id.Comm != "" {
				s += "(" + id.Comm + ")"
			}
			parts = append(parts, s)
		}
	}
	if id.CertCN != "" {
		parts = append(parts, "cert:"+id.CertCN)
	}
	if id.Login != "" {
		parts = append(parts, "login:"+id.Login)
	}
	if id.Token != "" {
		parts = append(parts, "token:"+id.Token)
	}
	if id.Anonymous {
		parts = append(parts, "anonymous")
	}
	if len(parts) == 0 {
		parts = append(parts, "unauthenticated")
	}
	if !id.Local && id.Transport != "" {
		parts = append(parts, "via", id.Transport)
	}
	return strings.Join(parts, " ")
}

// LogValue returns a group of the fields that are set, for structured logs.
func (id *Identity) LogValue() slog.Value {
	if id == nil {
		return slog.StringValue("<nil>")
	}
	var as []slog.Attr
	if id.Transport != "" {
		as = append(as, slog.String("transport", id.Transport))
	}
	if id.Local {
		as = append(as, slog.Uint64("uid", uint64(id.UID)), slog.Uint64("gid", uint64(id.GID)))
		if len(id.Groups) > 0 {
			as = append(as, slog.Any("groups", id.Groups))
		}
		if id.PID > 0 {
			as = append(as, slog.Int("pid", int(id.PID)))
		}
	}
	str := func(k, v string) {
		if v != "" {
			as = append(as, slog.String(k, v))
		}
	}
	str("comm", id.Comm)
	str("user", id.UserName)
	if len(id.GroupNames) > 0 {
		as = append(as, slog.Any("group_names", id.GroupNames))
	}
	str("cert", id.CertCN)
	str("login", id.Login)
	str("token", id.Token)
	if id.Anonymous {
		as = append(as, slog.Bool("anonymous", true))
	}
	return slog.GroupValue(as...)
}

func u32(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

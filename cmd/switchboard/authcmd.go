package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"switchboard/auth"
	"switchboard/internal/subject"
)

func newAuth() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Check what a policy allows, hash passwords, make tokens",
		Long: `Tools for the hub's policy file (see docs/security.md):

  switchboard auth check --policy FILE --who uid:1000 --pub orders.new
  switchboard auth hash < password.txt
  switchboard auth token backup`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.Help()
			return usagef("auth: give a subcommand: check, hash or token")
		},
	}
	cmd.AddCommand(newAuthCheck(), newAuthHash(), newAuthToken())
	for _, c := range cmd.Commands() {
		c.Args = wrapArgs(c.Args)
	}
	return cmd
}

// errDenied makes `auth check` exit 1 after printing a denial.
var errDenied = errors.New("denied")

func newAuthCheck() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check --policy FILE --who PRINCIPAL [--who ...] (--pub SUBJECT | --sub PATTERN)",
		Short: "Tell whether an identity may publish or subscribe, and which rule decides",
		Long: `Evaluates a policy file for an identity made of the given principals,
as the hub would after a successful login, and prints the decision with the
rule, file:line and pattern that made it. Exit status: 0 allowed, 1 denied,
2 usage or policy error.

Principals: uid:N (the user's primary and supplementary groups are looked up
as the hub would), user:NAME, gid:N, group:NAME, cert:CN, login:NAME,
token:NAME, anonymous.`,
		Args: cobra.NoArgs,
		RunE: runAuthCheck,
	}
	f := cmd.Flags()
	f.String("policy", "", "policy file (required)")
	f.StringArray("who", nil, "a principal of the identity (repeatable)")
	f.String("pub", "", "literal subject to publish to")
	f.String("sub", "", "subject pattern to subscribe to (wildcards allowed)")
	f.Int64("owner-uid", -1, "uid of the hub's owner, who may do everything (default: your uid)")
	return cmd
}

func runAuthCheck(cmd *cobra.Command, _ []string) error {
	f := cmd.Flags()
	path, _ := f.GetString("policy")
	who, _ := f.GetStringArray("who")
	pub, _ := f.GetString("pub")
	sub, _ := f.GetString("sub")
	owner, _ := f.GetInt64("owner-uid")
	switch {
	case path == "":
		return usagef("auth check: --policy is required")
	case len(who) == 0:
		return usagef("auth check: give at least one --who principal")
	case (pub == "") == (sub == ""):
		return usagef("auth check: give exactly one of --pub and --sub")
	case pub != "" && !subject.ValidPublish([]byte(pub)):
		return usagef("auth check: --pub %q is not a valid literal subject", pub)
	case sub != "" && !subject.ValidSubscribe([]byte(sub)):
		return usagef("auth check: --sub %q is not a valid subject pattern", sub)
	case owner < -1 || owner > 1<<32-1:
		return usagef("auth check: --owner-uid %d is not a uid", owner)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return usagef("policy: %v", err)
	}
	pol, err := auth.Parse(path, data)
	if err != nil {
		return usageError{errors.New(strings.ReplaceAll(err.Error(), "\n", "; "))}
	}
	if owner >= 0 {
		pol = pol.WithOwner(uint32(owner))
	}
	id, err := identityFrom(who)
	if err != nil {
		return usageError{err}
	}

	g := pol.Grant(id)
	var d auth.Decision
	var filter bool
	op, what := "publish", pub
	if pub != "" {
		d = g.Publish(pub)
	} else {
		sd := g.Subscribe(sub)
		d, filter, op, what = sd.Decision, sd.Filter, "subscribe", sub
	}
	by := id.Key()
	if by == "" {
		by = "everyone"
	}
	verdict, reason := "deny", "no rule allows it"
	if d.Allowed {
		verdict = "allow"
	}
	if d.Rule != nil {
		reason = d.Rule.String() + " " + d.Rule.Key + " " + strconv.Quote(d.Pattern)
	}
	w := cmd.OutOrStdout()
	fmt.Fprintf(w, "%s: %s %q by %s — %s\n", verdict, op, what, by, reason)
	if filter {
		fmt.Fprintf(w, "filtered: some subjects %q matches are denied by deny_subscribe; messages on them are not delivered\n", what)
	}
	if g.Empty() {
		fmt.Fprintln(w, "note: no rule allows this identity anything: the hub refuses its connections")
	}
	fmt.Fprintf(w, "principals: %s\n", strings.Join(g.Principals(), " "))
	if !d.Allowed {
		return errDenied
	}
	return nil
}

// identityFrom builds the identity that has the given principals, filling
// in what the hub would know of a local user: its name, primary group and
// supplementary groups.
func identityFrom(who []string) (*auth.Identity, error) {
	id := &auth.Identity{Transport: "tcp"}
	var uid, gids []uint32
	var userName string
	var groupNames []string
	for _, w := range who {
		kind, name, _ := strings.Cut(w, ":")
		switch {
		case w == "*":
		case w == "anonymous":
			id.Anonymous = true
		case name == "":
			return nil, fmt.Errorf("--who %q: valid principals are uid:N, gid:N, user:NAME, group:NAME, cert:CN, login:NAME, token:NAME, anonymous", w)
		case kind == "uid" || kind == "gid":
			n, err := strconv.ParseUint(name, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("--who %q: %s must be a number", w, kind)
			}
			if kind == "uid" {
				uid = append(uid, uint32(n))
			} else {
				gids = append(gids, uint32(n))
			}
		case kind == "user":
			userName = name
		case kind == "group":
			groupNames = append(groupNames, name)
		case kind == "cert":
			id.CertCN = name
		case kind == "login":
			id.Login = name
		case kind == "token":
			id.Token = name
		default:
			return nil, fmt.Errorf("--who %q: unknown principal kind %q; valid: uid, gid, user, group, cert, login, token, anonymous", w, kind)
		}
	}
	if len(uid) > 1 {
		return nil, errors.New("--who: an identity has one uid")
	}
	local := len(uid) > 0 || userName != "" || len(gids) > 0 || len(groupNames) > 0
	if !local {
		if id.CertCN != "" {
			id.Transport = "tls"
		}
		return id, nil
	}
	id.Transport, id.Local = "unix", true

	// The uid, from uid:N or by looking up user:NAME.
	var u *user.User
	switch {
	case len(uid) == 1:
		id.UID = uid[0]
		u, _ = user.LookupId(strconv.FormatUint(uint64(id.UID), 10))
	case userName != "":
		var err error
		if u, err = user.Lookup(userName); err != nil {
			return nil, fmt.Errorf("--who user:%s: no such local user; give its uid:N too", userName)
		}
		n, _ := strconv.ParseUint(u.Uid, 10, 32)
		id.UID = uint32(n)
	default:
		return nil, errors.New("--who: a local identity needs its uid: give uid:N or user:NAME")
	}
	id.UserName = userName
	if u != nil && userName == "" {
		id.UserName = u.Username
	}

	// Its groups: those of the OS user, plus those given.
	var groups []uint32
	if u != nil {
		if n, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			groups = append(groups, uint32(n))
		}
		if ids, err := u.GroupIds(); err == nil {
			for _, s := range ids {
				if n, err := strconv.ParseUint(s, 10, 32); err == nil {
					groups = append(groups, uint32(n))
				}
			}
		}
	}
	groups = append(groups, gids...)
	for _, name := range groupNames {
		if g, err := user.LookupGroup(name); err == nil {
			if n, err := strconv.ParseUint(g.Gid, 10, 32); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	if len(groups) == 0 {
		return nil, fmt.Errorf("--who uid:%d is not a local user: give its gid:N too", id.UID)
	}
	id.GID = groups[0]
	for _, g := range groups[1:] {
		if g != id.GID && !slices.Contains(id.Groups, g) {
			id.Groups = append(id.Groups, g)
		}
	}
	for _, g := range append([]uint32{id.GID}, id.Groups...) {
		if grp, err := user.LookupGroupId(strconv.FormatUint(uint64(g), 10)); err == nil && !slices.Contains(groupNames, grp.Name) {
			groupNames = append(groupNames, grp.Name)
		}
	}
	id.GroupNames = groupNames
	return id, nil
}

func newAuthHash() *cobra.Command {
	return &cobra.Command{
		Use:   "hash < PASSWORD",
		Short: "Print the bcrypt hash of the password on the first line of stdin, for a [[user]]",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if interactive(cmd.InOrStdin()) {
				fmt.Fprint(cmd.ErrOrStderr(), "password (it will echo): ")
			}
			line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 4096)).ReadString('\n')
			if err != nil && err != io.EOF {
				return fmt.Errorf("read stdin: %w", err)
			}
			pw := strings.TrimRight(line, "\r\n")
			if pw == "" {
				return usagef("auth hash: no password on the first line of stdin")
			}
			h, err := auth.HashPassword(pw)
			if err != nil {
				return usageError{err}
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
}

func newAuthToken() *cobra.Command {
	return &cobra.Command{
		Use:   "token NAME",
		Short: "Print a new random token, and the [[token]] entry for the policy",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if !utf8.ValidString(name) || strings.TrimSpace(name) != name || strings.ContainsFunc(name, unicode.IsControl) {
				return usagef("auth token: %q: a name without control characters or surrounding spaces, please", name)
			}
			tok, digest, err := auth.NewToken()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "switchboard: the first line is the token: give it to the client (it is not stored anywhere); add the [[token]] entry to the policy")
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n\n[[token]]\nname = %s\nsha256 = %q\n", tok, strconv.Quote(name), digest)
			return nil
		},
	}
}

// interactive reports whether r is probably a terminal: a character
// device other than /dev/null.
func interactive(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os/user"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"switchboard/internal/subject"
)

// compiler collects the errors of one Compile.
type compiler struct {
	name   string
	src    *srcMap
	errs   []error
	logins map[string]bool // names of [[user]] entries, valid or not
	tokens map[string]bool // names of [[token]] entries, valid or not
}

func (c *compiler) errorf(line int, format string, args ...any) {
	if len(c.errs) == maxErrors {
		c.errs = append(c.errs, fmt.Errorf("%s: more errors follow", c.name))
	}
	if len(c.errs) > maxErrors {
		return
	}
	where := c.name
	if line > 0 {
		where += ":" + strconv.Itoa(line)
	}
	c.errs = append(c.errs, fmt.Errorf("%s: %s", where, fmt.Sprintf(format, args...)))
}

func compile(name string, src *srcMap, f *File) (*Policy, error) {
	if f == nil {
		f = &File{}
	}
	c := &compiler{name: name, src: src, logins: map[string]bool{}, tokens: map[string]bool{}}
	p := newPolicy(name)
	if f.AllowAnonymous != nil {
		p.anonymous = *f.AllowAnonymous
	}
	if f.AllowResponses != nil {
		p.responses = *f.AllowResponses
	}
	if f.ResponseTTL != nil {
		d, err := time.ParseDuration(*f.ResponseTTL)
		switch {
		case err != nil:
			c.errorf(src.top["response_ttl"], "response_ttl: %q is not a duration (try \"30s\" or \"1m\")", trunc(*f.ResponseTTL))
		case d <= 0:
			c.errorf(src.top["response_ttl"], "response_ttl: %q must be positive", *f.ResponseTTL)
		default:
			p.ttl = d
		}
	}
	c.addUsers(p, f.Users)
	c.addTokens(p, f.Tokens)
	for i := range f.Rules {
		if r := c.rule(p, i, len(f.Rules), &f.Rules[i]); r != nil {
			p.rules = append(p.rules, r)
		}
	}
	if len(c.errs) > 0 {
		return nil, errors.Join(c.errs...)
	}
	return p, nil
}

func (c *compiler) addUsers(p *Policy, users []UserSpec) {
	first := map[string]int{} // name → line
	decoyCost := 0
	for i, u := range users {
		line, nameLine := c.src.elem("user", i, len(users), "name")
		_, pwLine := c.src.elem("user", i, len(users), "password")
		what := fmt.Sprintf("[[user]] #%d", i+1)
		if u.Name == "" {
			c.errorf(line, "%s: name: missing", what)
			continue
		}
		c.logins[u.Name] = true
		what = fmt.Sprintf("[[user]] %q", trunc(u.Name))
		if l, dup := first[u.Name]; dup {
			c.errorf(or(nameLine, line), "%s: duplicate name%s", what, firstAt(l))
			continue
		}
		first[u.Name] = or(nameLine, line)
		cost, err := checkBcrypt(u.Password)
		if err != nil {
			c.errorf(or(pwLine, line), "%s: password: %v", what, err)
			continue
		}
		p.users[u.Name] = []byte(u.Password)
		if cost > decoyCost {
			p.decoy, decoyCost = p.users[u.Name], cost
		}
	}
}

// bcryptHash is the shape of a bcrypt hash: version, cost, 22 characters
// of salt and 31 of hash in bcrypt's base64 alphabet.
var bcryptHash = regexp.MustCompile(`^\$2[aby]?\$[0-9]{2}\$[./A-Za-z0-9]{53}$`)

// maxBcryptCost bounds the cost of the hashes a policy may hold: each
// step doubles the time of a login, and cost 16 already takes seconds.
const maxBcryptCost = 16

func checkBcrypt(h string) (int, error) {
	if h == "" {
		return 0, errors.New(`missing; run "switchboard auth hash" and paste the hash it prints`)
	}
	if !bcryptHash.MatchString(h) {
		return 0, errors.New(`not a bcrypt hash ("$2a$11$..."); passwords are never stored in the clear: run "switchboard auth hash" and paste the hash it prints`)
	}
	cost, err := bcryptCost(h)
	if err != nil {
		return 0, fmt.Errorf("not a valid bcrypt hash: %v; run \"switchboard auth hash\"", err)
	}
	if cost > maxBcryptCost {
		return 0, fmt.Errorf("bcrypt cost %d is too high (at most %d): every login would take seconds", cost, maxBcryptCost)
	}
	return cost, nil
}

func (c *compiler) addTokens(p *Policy, tokens []TokenSpec) {
	first := map[string]int{}                  // name → line
	byDigest := map[[sha256.Size]byte]string{} // digest → name
	for i, t := range tokens {
		line, nameLine := c.src.elem("token", i, len(tokens), "name")
		_, shaLine := c.src.elem("token", i, len(tokens), "sha256")
		_, tokLine := c.src.elem("token", i, len(tokens), "token")
		what := fmt.Sprintf("[[token]] #%d", i+1)
		if t.Name == "" {
			c.errorf(line, "%s: name: missing", what)
			continue
		}
		c.tokens[t.Name] = true
		what = fmt.Sprintf("[[token]] %q", trunc(t.Name))
		if l, dup := first[t.Name]; dup {
			c.errorf(or(nameLine, line), "%s: duplicate name%s", what, firstAt(l))
			continue
		}
		first[t.Name] = or(nameLine, line)
		var digest [sha256.Size]byte
		switch {
		case (t.SHA256 == "") == (t.Token == ""):
			c.errorf(line, "%s: give exactly one of sha256 (the token's SHA-256, see \"switchboard auth token\") and token", what)
			continue
		case t.Token != "":
			digest = sha256.Sum256([]byte(t.Token))
		default:
			b, err := hex.DecodeString(t.SHA256)
			if err != nil || len(b) != sha256.Size {
				c.errorf(or(shaLine, line), "%s: sha256: must be 64 hex digits, the SHA-256 of the token (\"switchboard auth token\" prints one)", what)
				continue
			}
			copy(digest[:], b)
		}
		if other, dup := byDigest[digest]; dup {
			c.errorf(or(shaLine, tokLine, line), "%s: the same token as [[token]] %q", what, trunc(other))
			continue
		}
		byDigest[digest] = t.Name
		p.tokens = append(p.tokens, tokenEntry{t.Name, digest})
	}
}

// principalKinds is the list of valid principals, for messages.
const principalKinds = "uid:N, gid:N, user:NAME, group:NAME, cert:CN, token:NAME, login:NAME, anonymous or *"

func (c *compiler) rule(p *Policy, i, n int, rs *RuleSpec) *rule {
	line, _ := c.src.elem("rule", i, n, "")
	keyLine := func(key string) int {
		_, l := c.src.elem("rule", i, n, key)
		return or(l, line)
	}
	what := fmt.Sprintf("rule #%d", i+1)
	if rs.Name != "" {
		what += fmt.Sprintf(" %q", trunc(rs.Name))
	}
	nerr := len(c.errs)
	r := &rule{}

	if len(rs.Who) == 0 {
		c.errorf(keyLine("who"), "%s: who: empty; name at least one principal, such as \"uid:1000\", \"group:staff\" or \"*\"", what)
	}
	for _, w := range rs.Who {
		canon, err := c.principal(w)
		if err != nil {
			c.errorf(keyLine("who"), "%s: who: %v", what, err)
			continue
		}
		if strings.HasPrefix(canon, "user:") || strings.HasPrefix(canon, "group:") {
			p.needsNames = true
		}
		if !slices.Contains(r.who, canon) {
			r.who = append(r.who, canon)
		}
	}

	lists := [numLists][]string{rs.AllowPublish, rs.AllowSubscribe, rs.DenyPublish, rs.DenySubscribe}
	refs := [numLists]*RuleRef{}
	empty := true
	for k, pats := range lists {
		if len(pats) == 0 {
			continue
		}
		empty = false
		_, kl := c.src.elem("rule", i, n, listKeys[k])
		refs[k] = &RuleRef{File: p.name, Line: line, Index: i + 1, Name: rs.Name, Key: listKeys[k], KeyLine: kl}
		for _, s := range pats {
			switch {
			case len(s) > subject.MaxSubjectLen:
				c.errorf(or(kl, line), "%s: %s: pattern %q... is longer than %d bytes", what, listKeys[k], trunc(s), subject.MaxSubjectLen)
			case !subject.ValidSubscribe([]byte(s)):
				c.errorf(or(kl, line), "%s: %s: %q is not a valid subject pattern (non-empty tokens separated by '.', no spaces; '*' matches one token, '>' one or more and only last)", what, listKeys[k], trunc(s))
			default:
				r.lists[k] = append(r.lists[k], entry{newPattern(s), refs[k]})
			}
		}
	}

	lim := func(key string, v int64) int {
		if v < 0 {
			c.errorf(keyLine(key), "%s: %s: %d must not be negative", what, key, v)
			return 0
		}
		if v > 0 {
			empty = false
		}
		return int(min(v, maxSize))
	}
	r.limits = Limits{
		MaxConnections:   lim("max_connections", int64(rs.MaxConnections)),
		MaxSubscriptions: lim("max_subscriptions", int64(rs.MaxSubscriptions)),
		MaxPayload:       lim("max_payload", int64(rs.MaxPayload)),
	}
	if empty {
		c.errorf(line, "%s has nothing in it: give it allow_publish, allow_subscribe, deny_publish, deny_subscribe or a limit", what)
	}
	if len(c.errs) > nerr {
		return nil
	}
	return r
}

// principal validates a who entry and returns its canonical form.
func (c *compiler) principal(w string) (string, error) {
	if w == "*" || w == "anonymous" {
		return w, nil
	}
	kind, name, ok := strings.Cut(w, ":")
	if !ok {
		return "", fmt.Errorf("%q is not a principal; valid kinds: %s", trunc(w), principalKinds)
	}
	if name == "" {
		return "", fmt.Errorf("%q has no name after %q", trunc(w), kind+":")
	}
	switch kind {
	case "uid", "gid":
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			return "", fmt.Errorf("%q: %s must be a number (use %s for a name)", trunc(w), kind, map[string]string{"uid": "user:NAME", "gid": "group:NAME"}[kind])
		}
		return kind + ":" + strconv.FormatUint(n, 10), nil
	case "user", "group", "cert", "token", "login":
	default:
		return "", fmt.Errorf("%q: unknown principal kind %q; valid kinds: %s", trunc(w), kind, principalKinds)
	}
	if strings.TrimSpace(name) != name {
		return "", fmt.Errorf("%q: the name has spaces around it", trunc(w))
	}
	switch kind {
	case "user":
		if c.logins[name] {
			if _, err := user.Lookup(name); err != nil {
				return "", fmt.Errorf("%q: there is no local user %q, but a [[user]] of that name: password users are login:%s", trunc(w), trunc(name), trunc(name))
			}
		}
	case "login":
		if !c.logins[name] {
			return "", fmt.Errorf("%q: no [[user]] is named %q", trunc(w), trunc(name))
		}
	case "token":
		if !c.tokens[name] {
			return "", fmt.Errorf("%q: no [[token]] is named %q", trunc(w), trunc(name))
		}
	}
	return w, nil
}

// tomlError turns a decoding error into "name:line: key: message".
func tomlError(name string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		if pe.LastKey != "" {
			return fmt.Errorf("%s:%d: %s: %s", name, pe.Position.Line, pe.LastKey, pe.Message)
		}
		return fmt.Errorf("%s:%d: %s", name, pe.Position.Line, pe.Message)
	}
	// Type mismatches come as "toml: line 2 (last key "rule.who"): ...".
	if m := typeError.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("%s:%s: %s: %s", name, m[1], m[2], m[3])
	}
	return fmt.Errorf("%s: %s", name, strings.TrimPrefix(err.Error(), "toml: "))
}

var typeError = regexp.MustCompile(`(?s)^toml: line ([0-9]+) \(last key "(.*?)"\): (.*)$`)

// validKeys lists the keys of each table, for messages about unknown ones.
var validKeys = map[string]string{
	"":      "allow_anonymous, allow_responses, response_ttl, [[user]], [[token]], [[rule]]",
	"user":  "name, password",
	"token": "name, sha256, token",
	"rule":  "name, who, allow_publish, allow_subscribe, deny_publish, deny_subscribe, max_connections, max_subscriptions, max_payload",
}

// unknownKeys reports the keys the decoder did not use.
func unknownKeys(name string, src *srcMap, und []toml.Key) error {
	c := &compiler{name: name, src: src}
	reported := map[string]bool{}
	for _, k := range und {
		if len(k) == 0 {
			continue
		}
		// A table of unknown keys is one mistake: report it, not its keys.
		if len(k) > 1 && reported[k[:len(k)-1].String()] {
			reported[k.String()] = true
			continue
		}
		reported[k.String()] = true
		if arr, ok := validKeys[k[0]]; ok && k[0] != "" && len(k) == 2 {
			line, what := 0, "[["+k[0]+"]]"
			for i, s := range src.arrays[k[0]] {
				if l, ok := s.keys[k[1]]; ok {
					line = l
					if k[0] == "rule" {
						what = fmt.Sprintf("rule #%d", i+1)
					} else {
						what = fmt.Sprintf("[[%s]] #%d", k[0], i+1)
					}
					break
				}
			}
			c.errorf(line, "%s: unknown key %q; valid keys: %s", what, trunc(k[1]), arr)
			continue
		}
		line := src.top[k[0]]
		if line == 0 {
			line = src.tables[k[0]]
		}
		if line == 0 && len(src.arrays[k[0]]) > 0 {
			line = src.arrays[k[0]][0].line
		}
		if len(k) == 1 {
			c.errorf(line, "unknown key %q; valid keys: %s", trunc(k[0]), validKeys[""])
		} else {
			c.errorf(line, "unknown key %q", trunc(k.String()))
		}
	}
	return errors.Join(c.errs...)
}

// checkNesting refuses documents that nest arrays or inline tables more
// than maxNesting deep: only a hostile file does, and the decoder would
// recurse that deep and allocate for every level.
func checkNesting(data []byte) error {
	const maxNesting = 64
	depth := 0
	var delim string // of the string we are in, if any
	for i := 0; i < len(data); i++ {
		c := data[i]
		if delim != "" {
			switch {
			case c == '\\' && delim[0] == '"':
				i++
			case c == '\n' && len(delim) == 1:
				delim = "" // an unterminated string: the decoder will say so
			case c == delim[0] && hasAt(data, i, delim):
				i += len(delim) - 1
				delim = ""
			}
			continue
		}
		switch c {
		case '"', '\'':
			delim = string(c)
			if hasAt(data, i, strings.Repeat(delim, 3)) {
				delim = strings.Repeat(delim, 3)
				i += 2
			}
		case '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case '[', '{':
			if depth++; depth > maxNesting {
				return fmt.Errorf("arrays or tables nested more than %d deep", maxNesting)
			}
		case ']', '}':
			depth = max(depth-1, 0)
		}
	}
	return nil
}

func hasAt(data []byte, i int, s string) bool {
	return i+len(s) <= len(data) && string(data[i:i+len(s)]) == s
}

// trunc shortens s for messages.
func trunc(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}

// or returns the first non-zero of ls.
func or(ls ...int) int {
	for _, l := range ls {
		if l != 0 {
			return l
		}
	}
	return 0
}

func firstAt(line int) string {
	if line > 0 {
		return fmt.Sprintf(" (the first is at line %d)", line)
	}
	return ""
}

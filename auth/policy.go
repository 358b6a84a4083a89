package auth

import (
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// MaxFileSize is the largest policy document Parse and Compile accept.
const MaxFileSize = 4 << 20

// maxErrors bounds how many problems one error reports.
const maxErrors = 20

// File is the TOML shape of a policy document. It is exported so that a
// configuration file may embed it (as an anonymous field) and keep the
// policy keys next to its own; see [Compile].
type File struct {
	AllowAnonymous *bool       `toml:"allow_anonymous"` // default false
	AllowResponses *bool       `toml:"allow_responses"` // default true
	ResponseTTL    *string     `toml:"response_ttl"`    // Go duration, > 0; default "1m"
	Users          []UserSpec  `toml:"user"`
	Tokens         []TokenSpec `toml:"token"`
	Rules          []RuleSpec  `toml:"rule"`
}

// UserSpec is a [[user]]: a password user, principal login:NAME.
type UserSpec struct {
	Name     string `toml:"name"`
	Password string `toml:"password"` // a bcrypt hash, as `switchboard auth hash` prints
}

// TokenSpec is a [[token]]: a bearer token, principal token:NAME. Exactly
// one of SHA256 and Token is set.
type TokenSpec struct {
	Name   string `toml:"name"`
	SHA256 string `toml:"sha256"` // hex SHA-256 of the token, as TokenDigest returns
	Token  string `toml:"token"`  // the token itself
}

// RuleSpec is a [[rule]].
type RuleSpec struct {
	Name             string   `toml:"name"` // a label for logs
	Who              []string `toml:"who"`  // principals; the rule applies to an identity having any of them
	AllowPublish     []string `toml:"allow_publish"`
	AllowSubscribe   []string `toml:"allow_subscribe"`
	DenyPublish      []string `toml:"deny_publish"`
	DenySubscribe    []string `toml:"deny_subscribe"`
	MaxConnections   int      `toml:"max_connections"`   // per principal (Identity.Key); 0: no limit
	MaxSubscriptions int      `toml:"max_subscriptions"` // per connection; 0: no limit
	MaxPayload       Size     `toml:"max_payload"`       // bytes; 0: no limit
}

// Empty reports whether no policy key is set.
func (f *File) Empty() bool {
	return f == nil || f.AllowAnonymous == nil && f.AllowResponses == nil && f.ResponseTTL == nil &&
		f.Users == nil && f.Tokens == nil && f.Rules == nil
}

// Size is a number of bytes, written in TOML as an integer or as a string
// with a unit: "512", "512B", "64KiB", "1MiB", "1GiB" (KB, MB and GB are
// read as powers of 1024 too).
type Size int64

// maxSize bounds sizes, so that arithmetic on them cannot overflow.
const maxSize = 1 << 40

// UnmarshalTOML accepts an integer or a string.
func (s *Size) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 || x > maxSize {
			return fmt.Errorf("%d is out of range (0 to 1TiB)", x)
		}
		*s = Size(x)
		return nil
	case string:
		return s.UnmarshalText([]byte(x))
	}
	return fmt.Errorf("%v is not a size (try 65536 or \"64KiB\")", v)
}

// UnmarshalText parses a size with an optional unit.
func (s *Size) UnmarshalText(b []byte) error {
	str := strings.TrimSpace(string(b))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(str, u.suffix) {
			str, mult = strings.TrimSpace(strings.TrimSuffix(str, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(str, 10, 64)
	if err != nil || n < 0 || n > maxSize/mult {
		return fmt.Errorf("%q is not a size (try 65536 or \"64KiB\")", trunc(string(b)))
	}
	*s = Size(n * mult)
	return nil
}

// Policy decides who may connect and what each identity may do. It is
// immutable and safe for concurrent use. Get one from [Parse], [Compile]
// or [DefaultPolicy].
type Policy struct {
	name       string
	owner      uint32
	anonymous  bool
	responses  bool
	ttl        time.Duration
	rules      []*rule
	users      map[string][]byte // login name → bcrypt hash
	decoy      []byte            // the costliest user hash, checked for unknown users
	tokens     []tokenEntry
	needsNames bool

	grants *grantCache // per owner: WithOwner makes a new one
	logins *loginCache // successful logins, shared with WithOwner copies
}

type tokenEntry struct {
	name   string
	digest [sha256.Size]byte
}

// rule is a compiled [[rule]].
type rule struct {
	who    []string // canonical principals
	lists  [numLists][]entry
	limits Limits
}

// The four pattern lists of a rule, in the order of listKeys.
const (
	allowPub = iota
	allowSub
	denyPub
	denySub
	numLists
)

var listKeys = [numLists]string{"allow_publish", "allow_subscribe", "deny_publish", "deny_subscribe"}

// The built-in owner rule.
var (
	ownerPubRef = &RuleRef{File: "built-in", Name: "owner", Key: "allow_publish"}
	ownerSubRef = &RuleRef{File: "built-in", Name: "owner", Key: "allow_subscribe"}
	ownerPub    = []entry{{newPattern(">"), ownerPubRef}, {newPattern("$SB.>"), ownerPubRef}}
	ownerSub    = []entry{{newPattern(">"), ownerSubRef}}
)

func newPolicy(name string) *Policy {
	return &Policy{
		name:      name,
		owner:     uint32(os.Geteuid()),
		responses: true,
		ttl:       time.Minute,
		users:     map[string][]byte{},
		grants:    newGrantCache(),
		logins:    newLoginCache(),
	}
}

// DefaultPolicy returns the policy of a hub without a policy file: no
// rules, so only the owner (the current effective uid) and root may do
// anything; allow_responses on with a TTL of one minute; anonymous network
// access off.
func DefaultPolicy() *Policy { return newPolicy("default") }

// WithOwner returns a copy of p whose owner is uid.
func (p *Policy) WithOwner(uid uint32) *Policy {
	q := *p
	q.owner = uid
	q.grants = newGrantCache()
	return &q
}

// Owner returns the uid that the built-in owner rule grants everything.
func (p *Policy) Owner() uint32 { return p.owner }

// AllowAnonymous reports whether network clients without credentials are
// admitted (as principal anonymous).
func (p *Policy) AllowAnonymous() bool { return p.anonymous }

// Responses returns the allow_responses settings: whether a client may
// publish once to the reply subject of a request it received, and for how
// long.
func (p *Policy) Responses() (enabled bool, ttl time.Duration) { return p.responses, p.ttl }

// NeedsNames reports whether some rule names a user: or group: principal,
// so that the hub must resolve the names of local peers.
func (p *Policy) NeedsNames() bool { return p.needsNames }

// Rules returns the number of rules, for logs.
func (p *Policy) Rules() int { return len(p.rules) }

// HasCredentials reports whether the policy has any [[user]] or [[token]],
// that is, whether a network client can log in at all.
func (p *Policy) HasCredentials() bool { return len(p.users) > 0 || len(p.tokens) > 0 }

// Parse reads a standalone policy file strictly: syntax errors, unknown
// keys and invalid values are errors naming the file, line and key. name
// is for messages.
func Parse(name string, data []byte) (*Policy, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes; a policy file may have at most %d", name, len(data), MaxFileSize)
	}
	if err := checkNesting(data); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var f File
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, tomlError(name, err)
	}
	src := scanLines(string(data))
	if und := md.Undecoded(); len(und) > 0 {
		return nil, unknownKeys(name, src, und)
	}
	return compile(name, src, &f)
}

// Compile validates an already decoded File, such as one embedded in a
// configuration file, and returns its policy. data is the source text the
// File was decoded from, used only to find line numbers for messages; it
// may be nil. Unknown keys are the decoder's caller's to report.
func Compile(name string, data []byte, f *File) (*Policy, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: %d bytes; a policy file may have at most %d", name, len(data), MaxFileSize)
	}
	return compile(name, scanLines(string(data)), f)
}

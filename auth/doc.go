// Package auth decides who is on the other end of a connection and what it
// may publish and subscribe to.
//
// # Identities and principals
//
// An [Identity] describes a peer: the kernel's credentials of a unix socket
// peer (Local), the common name of a verified TLS client certificate, and
// the password user or token it logged in with. It yields a set of
// principals, the strings that policy rules name:
//
//	uid:N  gid:N        the peer's uid, primary gid and supplementary gids (Local only)
//	user:NAME           the local OS user of the uid, resolved by the hub at connect time
//	group:NAME          a local OS group of the peer, resolved likewise
//	cert:CN             the common name of a verified client certificate
//	login:NAME          a [[user]] password user the peer logged in as
//	token:NAME          a [[token]] the peer presented
//	anonymous           a network peer admitted without credentials (allow_anonymous)
//	*                   everyone
//
// # Policy
//
// A [Policy] is a list of rules, password users and tokens, usually read
// from a TOML file with [Parse]:
//
//	allow_anonymous = false   # network peers without credentials are refused
//	allow_responses = true    # a peer may answer a request it received, once
//	response_ttl = "1m"       # within this time
//
//	[[user]]
//	name = "web"
//	password = "$2a$11$..."   # bcrypt; see `switchboard auth hash`
//
//	[[token]]
//	name = "backup"
//	sha256 = "..."            # of the token; or token = "plaintext"
//
//	[[rule]]
//	who = ["uid:65534", "group:staff"]
//	allow_publish = ["public.>"]
//	allow_subscribe = ["public.>"]
//	deny_subscribe = ["public.secrets.>"]
//	max_connections = 10      # per principal (see Identity.Key)
//	max_subscriptions = 1000  # per connection
//	max_payload = "64KiB"
//
// A rule applies to an identity when one of its who entries is among the
// identity's principals. The [Grant] of an identity is the union of the
// allow and deny lists of every rule that applies, plus a built-in owner
// rule: a Local peer whose uid is 0 or the policy's owner (by default the
// hub's own uid) may publish to ">" and "$SB.>" and subscribe to ">". Deny
// always wins over allow, for the owner too. An identity with no allow
// pattern at all is refused at connect. For each limit the smallest
// positive value of the applying rules wins; 0 means no limit.
//
// # Decisions
//
// Patterns are NATS subjects: '.'-separated tokens, where a "*" token
// matches exactly one token and a final ">" token one or more.
//
// Publishing to a literal subject is allowed when an allow_publish pattern
// matches it and no deny_publish pattern does. Subjects whose first token
// is "$SB" are reserved for the hub: only an allow pattern whose own first
// token is literally "$SB" grants them, so ">" does not.
//
// Subscribing to a pattern S (queue subscriptions alike) is allowed when a
// single allow_subscribe pattern covers S (matches every subject S matches)
// and no single deny_subscribe pattern covers S. When a deny_subscribe
// pattern merely overlaps S, the subscription is allowed but filtered: the
// hub asks [Grant.Deliver] about each message before delivering it.
//
// Every [Decision] names the rule, key and pattern that decided, with the
// file and line it came from, for logs and for `switchboard auth check`.
//
// # Authentication
//
// [Policy.Authenticate] checks what a peer presented in CONNECT: a password
// (against bcrypt hashes) or a token (against SHA-256 digests, in constant
// time). Local peers and peers with a verified certificate need neither; a
// network peer with nothing is refused with [ErrAuthRequired] unless the
// policy sets allow_anonymous.
//
// # Concurrency
//
// A Policy and the Grants it returns are immutable and safe for concurrent
// use. Grants are cached per distinct principal set, and each Grant caches
// its publish and delivery decisions per subject in a bounded lock-free
// cache, so the check on a hot subject costs a hash and a few atomic loads.
// An Identity is not synchronized: fill it in, then share it read-only.
package auth

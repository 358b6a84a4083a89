package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// Errors of Authenticate.
var (
	// ErrAuthRequired is returned for a network client that presented no
	// credentials (and no verified certificate) when anonymous access is
	// off.
	ErrAuthRequired = errors.New("auth: credentials required")
	// ErrBadCredentials is returned for an unknown user, a wrong password
	// or an unknown token alike: the error does not say which.
	ErrBadCredentials = errors.New("auth: bad credentials")
)

// HashCost is the bcrypt cost of HashPassword.
const HashCost = 11

// bcryptSem bounds the bcrypt comparisons running at once, process-wide:
// each takes tens of milliseconds of CPU, and a flood of logins must not
// starve the hub.
var bcryptSem = make(chan struct{}, max(1, runtime.NumCPU()/2))

// Authenticate checks the credentials a client presented and completes id:
// Login for a password user, Token for a token, Anonymous for a network
// client admitted without credentials by allow_anonymous.
//
// Local identities and network identities with a verified certificate
// (CertCN) need no credentials, but may present some, which must then be
// valid. A network identity without either is refused with
// [ErrAuthRequired] unless the policy allows anonymous access. Wrong
// credentials of any kind give [ErrBadCredentials].
//
// Password checks use bcrypt, at most half the CPUs (one at least) at
// once, so a flood of wrong passwords leaves cores to everything else; waiting
// for a turn ends with ctx. A successful (user, password) pair is
// remembered, so a client that reconnects often is checked cheaply. An
// unknown user costs as much as a wrong password. Tokens are compared in
// constant time.
func (p *Policy) Authenticate(ctx context.Context, id *Identity, c Credentials) error {
	id.Login, id.Token, id.Anonymous = "", "", false
	if c.User == "" && c.Pass == "" && c.Token == "" {
		switch {
		case id.Local || id.CertCN != "":
			return nil
		case p.anonymous:
			id.Anonymous = true
			return nil
		}
		return ErrAuthRequired
	}
	var login, token string
	if c.User != "" || c.Pass != "" {
		if err := p.checkPassword(ctx, c.User, c.Pass); err != nil {
			return err
		}
		login = c.User
	}
	if c.Token != "" {
		name, ok := p.checkToken(c.Token)
		if !ok {
			return ErrBadCredentials
		}
		token = name
	}
	id.Login, id.Token = login, token
	return nil
}

func (p *Policy) checkPassword(ctx context.Context, user, pass string) error {
	hash, known := p.users[user]
	if !known {
		if p.decoy == nil {
			return ErrBadCredentials // no users at all: nothing to hide
		}
		hash = p.decoy // spend the same time as for a wrong password
	}
	var key loginKey
	if known {
		key = p.logins.keyOf(user, pass)
		if p.logins.has(key) {
			return nil
		}
	}
	select {
	case bcryptSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("auth: waiting to check a password: %w", context.Cause(ctx))
	}
	err := bcrypt.CompareHashAndPassword(hash, []byte(pass))
	<-bcryptSem
	if err != nil || !known {
		return ErrBadCredentials
	}
	p.logins.add(key)
	return nil
}

// checkToken returns the name of the token whose digest is tok's. It
// compares against every token, in constant time each.
func (p *Policy) checkToken(tok string) (string, bool) {
	d := sha256.Sum256([]byte(tok))
	found := -1
	for i := range p.tokens {
		if subtle.ConstantTimeCompare(d[:], p.tokens[i].digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return p.tokens[found].name, true
}

// HashPassword returns the bcrypt hash (cost [HashCost]) of pw, for the
// password of a [[user]].
func HashPassword(pw string) (string, error) {
	if pw == "" {
		return "", errors.New("auth: empty password")
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), HashCost)
	if err != nil {
		return "", fmt.Errorf("auth: hash password: %w", err)
	}
	return string(h), nil
}

// NewToken returns a new random token (32 random bytes, base64url without
// padding) and its TokenDigest, for the sha256 of a [[token]].
func NewToken() (token, sha256hex string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", fmt.Errorf("auth: new token: %w", err)
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	return token, TokenDigest(token), nil
}

// TokenDigest returns the hex SHA-256 of token, as the sha256 of a
// [[token]] holds it.
func TokenDigest(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

func bcryptCost(h string) (int, error) { return bcrypt.Cost([]byte(h)) }

// loginCache remembers successful (user, password) pairs so that a client
// reconnecting with the right password does not pay for bcrypt each time.
// Passwords are kept only as HMACs under a random key of this process, and
// at most maxLogins of them; when full it starts over.
type loginCache struct {
	key [32]byte
	mu  sync.Mutex
	m   map[loginKey]struct{}
}

type loginKey struct {
	user string
	mac  [sha256.Size]byte
}

const maxLogins = 1024

func newLoginCache() *loginCache {
	c := &loginCache{m: map[loginKey]struct{}{}}
	rand.Read(c.key[:])
	return c
}

func (c *loginCache) keyOf(user, pass string) loginKey {
	h := hmac.New(sha256.New, c.key[:])
	h.Write([]byte(pass))
	k := loginKey{user: user}
	h.Sum(k.mac[:0])
	return k
}

func (c *loginCache) has(k loginKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	return ok
}

func (c *loginCache) add(k loginKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxLogins {
		clear(c.m)
	}
	c.m[k] = struct{}{}
}

package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testHash is bcrypt("hunter2") at the minimum cost, to keep tests fast.
const testHash = "$2a$04$lbEua4NtZml/7XwrSbYajO85nbFWE/f3.uSslTWJ.66biWlM/NOf2"

func authPolicy(t *testing.T, anonymous bool) *Policy {
	t.Helper()
	anon := "false"
	if anonymous {
		anon = "true"
	}
	return mustParse(t, `allow_anonymous = `+anon+`

[[user]]
name = "web"
password = "`+testHash+`"

[[token]]
name = "ci"
token = "plain-token"

[[token]]
name = "backup"
sha256 = "`+TokenDigest("hashed-token")+`"

[[rule]]
who = ["login:web", "token:ci", "token:backup", "anonymous", "cert:db"]
allow_publish = ["x"]
`)
}

func TestAuthenticatePasswords(t *testing.T) {
	p := authPolicy(t, false)
	ctx := context.Background()
	id := &Identity{Transport: "tcp"}
	if err := p.Authenticate(ctx, id, Credentials{User: "web", Pass: "hunter2"}); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if id.Login != "web" || id.Token != "" || id.Anonymous || id.Key() != "login:web" {
		t.Fatalf("identity after login: %+v", id)
	}
	if !p.Grant(id).Publish("x").Allowed {
		t.Errorf("login:web cannot publish")
	}
	// The second time comes from the cache of good logins.
	if len(p.logins.m) != 1 {
		t.Errorf("login cache has %d entries", len(p.logins.m))
	}
	if err := p.Authenticate(ctx, id, Credentials{User: "web", Pass: "hunter2"}); err != nil || id.Login != "web" {
		t.Fatalf("cached login: %v", err)
	}

	wrong := p.Authenticate(ctx, &Identity{Transport: "tcp"}, Credentials{User: "web", Pass: "hunter3"})
	unknown := p.Authenticate(ctx, &Identity{Transport: "tcp"}, Credentials{User: "nobody", Pass: "hunter2"})
	noUser := p.Authenticate(ctx, &Identity{Transport: "tcp"}, Credentials{Pass: "hunter2"})
	for _, err := range []error{wrong, unknown, noUser} {
		if !errors.Is(err, ErrBadCredentials) || err.Error() != ErrBadCredentials.Error() {
			t.Errorf("bad login: %v", err)
		}
	}
	if len(p.logins.m) != 1 {
		t.Errorf("a failed login was cached")
	}
	// A failed attempt leaves no login behind on a reused Identity.
	id2 := &Identity{Transport: "tcp", Login: "web"}
	if err := p.Authenticate(ctx, id2, Credentials{User: "web", Pass: "nope"}); err == nil || id2.Login != "" {
		t.Errorf("failed login kept Login %q (%v)", id2.Login, err)
	}
}

func TestAuthenticateTokens(t *testing.T) {
	p := authPolicy(t, false)
	ctx := context.Background()
	for tok, name := range map[string]string{"plain-token": "ci", "hashed-token": "backup"} {
		id := &Identity{Transport: "tcp"}
		if err := p.Authenticate(ctx, id, Credentials{Token: tok}); err != nil || id.Token != name || id.Key() != "token:"+name {
			t.Errorf("token %q: %v, %+v", tok, err, id)
		}
	}
	for _, tok := range []string{"plain-tokenx", "hashed", TokenDigest("hashed-token")} {
		if err := p.Authenticate(ctx, &Identity{Transport: "tcp"}, Credentials{Token: tok}); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("token %q: %v", tok, err)
		}
	}
	// Both kinds at once: both must be right.
	id := &Identity{Transport: "tcp"}
	if err := p.Authenticate(ctx, id, Credentials{User: "web", Pass: "hunter2", Token: "plain-token"}); err != nil || id.Login != "web" || id.Token != "ci" {
		t.Errorf("user and token: %v %+v", err, id)
	}
	if err := p.Authenticate(ctx, id, Credentials{User: "web", Pass: "hunter2", Token: "bad"}); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("good user, bad token: %v", err)
	}
}

func TestAuthenticateWithoutCredentials(t *testing.T) {
	ctx := context.Background()
	closed, open := authPolicy(t, false), authPolicy(t, true)

	if err := closed.Authenticate(ctx, &Identity{Transport: "tcp"}, Credentials{}); !errors.Is(err, ErrAuthRequired) {
		t.Errorf("anonymous off: %v", err)
	}
	id := &Identity{Transport: "tcp"}
	if err := open.Authenticate(ctx, id, Credentials{}); err != nil || !id.Anonymous || id.Key() != "anonymous" {
		t.Errorf("anonymous on: %v %+v", err, id)
	}
	if !open.Grant(id).Publish("x").Allowed {
		t.Errorf("anonymous cannot publish")
	}
	// With anonymous on, wrong credentials are still refused.
	if err := open.Authenticate(ctx, &Identity{Transport: "tcp"}, Credentials{Token: "wrong"}); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("wrong token with anonymous on: %v", err)
	}
	for _, p := range []*Policy{closed, open} {
		// Unix peers and verified certificates need nothing, and are not anonymous.
		for _, id := range []*Identity{local(5), {Transport: "tls", CertCN: "db"}} {
			if err := p.Authenticate(ctx, id, Credentials{}); err != nil || id.Anonymous || id.Login != "" {
				t.Errorf("%v: %v %+v", id, err, id)
			}
		}
		// But what they add must be right.
		id := local(5)
		if err := p.Authenticate(ctx, id, Credentials{Token: "plain-token"}); err != nil || id.Token != "ci" {
			t.Errorf("local with token: %v %+v", err, id)
		}
		if err := p.Authenticate(ctx, local(5), Credentials{User: "web", Pass: "x"}); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("local with a wrong password: %v", err)
		}
	}
	// No users at all: any login fails at once.
	if err := DefaultPolicy().Authenticate(ctx, &Identity{}, Credentials{User: "a", Pass: "b"}); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("login without users: %v", err)
	}
}

func TestAuthenticateHonoursContext(t *testing.T) {
	p := authPolicy(t, false)
	// Take every bcrypt slot, as a flood of logins would.
	for range cap(bcryptSem) {
		bcryptSem <- struct{}{}
	}
	defer func() {
		for range cap(bcryptSem) {
			<-bcryptSem
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := p.Authenticate(ctx, &Identity{Transport: "tcp"}, Credentials{User: "web", Pass: "hunter2"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("waited %v", d)
	}
	// Tokens need no slot.
	if err := p.Authenticate(context.Background(), &Identity{}, Credentials{Token: "plain-token"}); err != nil {
		t.Errorf("token while bcrypt is saturated: %v", err)
	}
}

func TestHashPasswordAndTokens(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if cost, err := bcrypt.Cost([]byte(h)); err != nil || cost != HashCost {
		t.Fatalf("cost %d, %v", cost, err)
	}
	if _, err := HashPassword(""); err == nil {
		t.Errorf("empty password hashed")
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Errorf("a password bcrypt would truncate was hashed")
	}
	tok, digest, err := NewToken()
	if err != nil || len(tok) != 43 || digest != TokenDigest(tok) || len(digest) != 64 {
		t.Fatalf("NewToken = %q %q %v", tok, digest, err)
	}
	if tok2, _, _ := NewToken(); tok2 == tok {
		t.Fatalf("NewToken repeated itself")
	}
	if TokenDigest("abc") != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("TokenDigest(abc) = %s", TokenDigest("abc"))
	}
	p := mustParse(t, "[[user]]\nname = \"u\"\npassword = \""+h+"\"\n[[token]]\nname = \"t\"\nsha256 = \""+digest+"\"\n")
	id := &Identity{Transport: "tcp"}
	if err := p.Authenticate(context.Background(), id, Credentials{User: "u", Pass: "correct horse", Token: tok}); err != nil || id.Login != "u" || id.Token != "t" {
		t.Fatalf("login with HashPassword and NewToken output: %v %+v", err, id)
	}
}

func TestIdentity(t *testing.T) {
	id := &Identity{
		Transport: "unix", Local: true, UID: 1000, GID: 100, Groups: []uint32{100, 27, 4},
		PID: 4242, Comm: "psql", UserName: "alice", GroupNames: []string{"users", "sudo", "adm"},
	}
	want := "* gid:100 gid:27 gid:4 group:adm group:sudo group:users uid:1000 user:alice"
	if got := strings.Join(id.Principals(), " "); got != want {
		t.Errorf("Principals = %s\nwant %s", got, want)
	}
	if id.String() != "uid:1000(alice) pid:4242(psql)" || id.Key() != "uid:1000" {
		t.Errorf("String %q Key %q", id.String(), id.Key())
	}
	net := &Identity{Transport: "tls", CertCN: "web", UID: 5, UserName: "ignored"}
	if got := strings.Join(net.Principals(), " "); got != "* cert:web" {
		t.Errorf("network Principals = %s", got)
	}
	if net.String() != "cert:web via tls" || net.Key() != "cert:web" {
		t.Errorf("String %q Key %q", net.String(), net.Key())
	}
	net.Login, net.Token = "w", "t"
	if net.Key() != "login:w" || strings.Join(net.Principals(), " ") != "* cert:web login:w token:t" {
		t.Errorf("Key %q Principals %v", net.Key(), net.Principals())
	}
	anon := &Identity{Transport: "tcp", Anonymous: true}
	if anon.String() != "anonymous via tcp" || anon.Key() != "anonymous" {
		t.Errorf("String %q Key %q", anon.String(), anon.Key())
	}
	if (&Identity{Transport: "tcp"}).Key() != "" || (&Identity{Transport: "tcp"}).String() != "unauthenticated via tcp" {
		t.Errorf("bare identity")
	}
	var nilID *Identity
	if nilID.Key() != "" || nilID.String() != "<nil>" || len(nilID.Principals()) != 1 {
		t.Errorf("nil identity")
	}
	v := id.LogValue().String()
	for _, s := range []string{"uid=1000", "pid=4242", "comm=psql", "user=alice", "transport=unix"} {
		if !strings.Contains(v, s) {
			t.Errorf("LogValue %s lacks %s", v, s)
		}
	}
	if v := net.LogValue().String(); strings.Contains(v, "uid") || !strings.Contains(v, "cert=web") {
		t.Errorf("network LogValue %s", v)
	}
}

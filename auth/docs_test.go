package auth

import (
	"os"
	"strings"
	"testing"
)

// The worked example in docs/security.md is a real policy: it parses, and
// it decides what the text says it decides.
func TestSecurityDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "`/etc/switchboard/policy.toml`:\n\n```toml\n"
	_, rest, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatal("docs/security.md: the worked example's policy block is gone")
	}
	src, _, _ := strings.Cut(rest, "```")
	p, err := Parse("policy.toml", []byte(src))
	if err != nil {
		t.Fatalf("the documented policy does not parse: %v", err)
	}
	p = p.WithOwner(999) // the hub runs as its own user
	webapp := &Identity{Local: true, UID: 1001, GID: 1001, UserName: "webapp", GroupNames: []string{"webapp", "dbclients", "switchboard"}}
	db := &Identity{Local: true, UID: 1002, GID: 1002, UserName: "db", GroupNames: []string{"db", "switchboard"}}
	backup := &Identity{Local: true, UID: 1003, GID: 1003, UserName: "backup", GroupNames: []string{"backup", "dbclients", "switchboard"}}
	stranger := &Identity{Local: true, UID: 1004, GID: 1004, UserName: "eve", GroupNames: []string{"eve", "switchboard"}}
	for _, c := range []struct {
		who   *Identity
		op    string
		subj  string
		allow bool
	}{
		{webapp, "pub", "db.query.users", true},
		{webapp, "sub", "_INBOX.webapp.x.*", true},
		{webapp, "sub", "_INBOX.>", false},
		{webapp, "sub", "db.changed.>", false},
		{webapp, "pub", "db.snapshot", false},
		{db, "sub", "db.query.>", true},
		{db, "sub", "db.snapshot", true},
		{db, "pub", "db.changed.users", true},
		{db, "pub", "db.query.users", false},
		{backup, "pub", "db.snapshot", true},
		{backup, "sub", "db.changed.>", true},
		{backup, "sub", "db.query.>", false},
		{backup, "pub", "db.query.users", false},
	} {
		var d Decision
		if c.op == "pub" {
			d = p.Grant(c.who).Publish(c.subj)
		} else {
			d = p.Grant(c.who).Subscribe(c.subj).Decision
		}
		if d.Allowed != c.allow {
			t.Errorf("%s %s %s: %v, want allowed=%v", c.who.UserName, c.op, c.subj, d, c.allow)
		}
	}
	if !p.Grant(stranger).Empty() {
		t.Error("a uid without a rule is granted something")
	}
}

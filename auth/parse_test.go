package auth

import (
	"errors"
	"os/user"
	"strings"
	"testing"
	"time"
)

func TestParseErrors(t *testing.T) {
	const ghost = "sb-test-no-such-user"
	if _, err := user.Lookup(ghost); err == nil {
		t.Fatalf("this machine has a user %q", ghost)
	}
	cases := []struct {
		name string
		src  string
		want []string // each must be in the message
	}{
		{"invalid pattern", "[[rule]]\nwho = [\"*\"]\n\nallow_publish = [\"ok\", \"a..b\"]\n",
			[]string{"policy.toml:4:", "rule #1", "allow_publish", `"a..b" is not a valid subject pattern`}},
		{"pattern with space", "[[rule]]\nwho = [\"*\"]\ndeny_subscribe = [\"a b\"]\n",
			[]string{"policy.toml:3:", "deny_subscribe", `"a b"`}},
		{"misplaced >", "[[rule]]\nwho = [\"*\"]\nallow_subscribe = [\">.a\"]\n",
			[]string{"policy.toml:3:", "allow_subscribe"}},
		{"empty pattern", "[[rule]]\nwho = [\"*\"]\nallow_subscribe = [\"\"]\n",
			[]string{"policy.toml:3:", `"" is not a valid subject pattern`}},
		{"pattern too long", "[[rule]]\nwho = [\"*\"]\nallow_publish = [\"" + strings.Repeat("a", 4097) + "\"]\n",
			[]string{"policy.toml:3:", "longer than 4096 bytes"}},
		{"unknown principal kind", "# c\n[[rule]]\nwho = [\"uid:1\", \"host:x\"]\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:3:", "rule #1", "who", `unknown principal kind "host"`, "uid:N, gid:N, user:NAME, group:NAME, cert:CN, token:NAME, login:NAME, anonymous or *"}},
		{"no kind", "[[rule]]\nwho = [\"alice\"]\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:2:", `"alice" is not a principal`, "uid:N"}},
		{"uid not a number", "[[rule]]\nname = \"web\"\nwho = [\"uid:alice\"]\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:3:", `rule #1 "web"`, `"uid:alice": uid must be a number`, "user:NAME"}},
		{"uid too large", "[[rule]]\nwho = [\"uid:4294967296\"]\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:2:", "uid must be a number"}},
		{"gid negative", "[[rule]]\nwho = [\"gid:-1\"]\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:2:", "gid must be a number"}},
		{"empty name", "[[rule]]\nwho = [\"cert:\"]\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:2:", "no name"}},
		{"empty who", "[[rule]]\nwho = []\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:2:", "who: empty"}},
		{"missing who", "\n[[rule]]\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:2:", "who: empty"}},
		{"nothing in it", "[[rule]]\nwho = [\"*\"]\n\n[[rule]]\nwho = [\"*\"]\ndeny_publish = []\n",
			[]string{"policy.toml:1:", "policy.toml:4:", "rule #2 has nothing in it"}},
		{"negative limit", "[[rule]]\nwho = [\"*\"]\nmax_connections = -1\n",
			[]string{"policy.toml:3:", "max_connections: -1 must not be negative"}},
		{"bad size", "[[rule]]\nwho = [\"*\"]\nmax_payload = \"lots\"\n",
			[]string{"policy.toml:3:", "max_payload", `"lots" is not a size`}},
		{"unknown rule key", "[[rule]]\nwho = [\"*\"]\nallow_publish = [\"a\"]\n\n[[rule]]\nwho = [\"*\"]\nalow_publish = [\"a\"]\n",
			[]string{"policy.toml:7:", "rule #2", `unknown key "alow_publish"`, "valid keys: name, who, allow_publish"}},
		{"unknown top key", "allow_anonymus = true\n",
			[]string{"policy.toml:1:", `unknown key "allow_anonymus"`, "allow_anonymous"}},
		{"unknown table", "[[rule]]\nwho = [\"*\"]\nallow_publish = [\"a\"]\n[limits]\nx = 1\n",
			[]string{"policy.toml:4:", `unknown key "limits"`}},
		{"unknown user key", "[[user]]\nname = \"a\"\npassword = \"" + testHash + "\"\npasswd = \"x\"\n",
			[]string{"policy.toml:4:", "[[user]] #1", `unknown key "passwd"`}},
		{"duplicate user", "[[user]]\nname = \"web\"\npassword = \"" + testHash + "\"\n\n[[user]]\nname = \"web\"\npassword = \"" + testHash + "\"\n",
			[]string{"policy.toml:6:", `[[user]] "web": duplicate name (the first is at line 2)`}},
		{"duplicate token", "[[token]]\nname = \"ci\"\ntoken = \"a\"\n[[token]]\nname = \"ci\"\ntoken = \"b\"\n",
			[]string{"policy.toml:5:", `[[token]] "ci": duplicate name (the first is at line 2)`}},
		{"same token twice", "[[token]]\nname = \"a\"\ntoken = \"x\"\n[[token]]\nname = \"b\"\nsha256 = \"" + TokenDigest("x") + "\"\n",
			[]string{"policy.toml:6:", `[[token]] "b": the same token as [[token]] "a"`}},
		{"user without name", "[[user]]\npassword = \"" + testHash + "\"\n",
			[]string{"policy.toml:1:", "[[user]] #1: name: missing"}},
		{"plaintext password", "[[user]]\nname = \"web\"\n\npassword = \"hunter2\"\n",
			[]string{"policy.toml:4:", `[[user]] "web": password: not a bcrypt hash`, "switchboard auth hash"}},
		{"truncated hash", "[[user]]\nname = \"web\"\npassword = \"" + testHash[:50] + "\"\n",
			[]string{"policy.toml:3:", "not a bcrypt hash"}},
		{"bad hash cost", "[[user]]\nname = \"web\"\npassword = \"$2a$99$" + testHash[7:] + "\"\n",
			[]string{"policy.toml:3:", "bcrypt"}},
		{"missing password", "[[user]]\nname = \"web\"\n",
			[]string{"policy.toml:1:", "password: missing", "switchboard auth hash"}},
		{"bad sha256", "[[token]]\nname = \"ci\"\nsha256 = \"xyz\"\n",
			[]string{"policy.toml:3:", `[[token]] "ci": sha256: must be 64 hex digits`}},
		{"short sha256", "[[token]]\nname = \"ci\"\nsha256 = \"abcd\"\n",
			[]string{"policy.toml:3:", "64 hex digits"}},
		{"sha256 and token", "[[token]]\nname = \"ci\"\nsha256 = \"" + TokenDigest("x") + "\"\ntoken = \"x\"\n",
			[]string{"policy.toml:1:", "exactly one of sha256"}},
		{"neither sha256 nor token", "[[token]]\nname = \"ci\"\n",
			[]string{"policy.toml:1:", "exactly one of sha256"}},
		{"bad duration", "allow_responses = true\nresponse_ttl = \"soon\"\n",
			[]string{"policy.toml:2:", "response_ttl", `"soon" is not a duration`}},
		{"negative duration", "response_ttl = \"-1s\"\n",
			[]string{"policy.toml:1:", "response_ttl", "must be positive"}},
		{"user: names a password user", "[[user]]\nname = \"" + ghost + "\"\npassword = \"" + testHash + "\"\n\n[[rule]]\nwho = [\"user:" + ghost + "\"]\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:6:", "no local user", "password users are login:" + ghost}},
		{"login: without user", "[[rule]]\nwho = [\"login:web\"]\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:2:", `no [[user]] is named "web"`}},
		{"token: without token", "[[rule]]\nwho = [\"token:ci\"]\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:2:", `no [[token]] is named "ci"`}},
		{"syntax", "[[rule]]\nwho = [\"*\"\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:3:"}},
		{"wrong type", "[[rule]]\nwho = \"*\"\nallow_publish = [\"a\"]\n",
			[]string{"policy.toml:2:", "rule.who", "incompatible types"}},
		{"wrong type top", "allow_anonymous = \"yes\"\n",
			[]string{"policy.toml:1:", "allow_anonymous"}},
		{"too large", strings.Repeat("#\n", MaxFileSize/2+1),
			[]string{"policy.toml", "at most 4194304"}},
		{"too deep", "x = " + strings.Repeat("[", 100) + strings.Repeat("]", 100) + "\n",
			[]string{"policy.toml", "nested more than 64 deep"}},
		{"inline tables", "rule = [{who = [\"*\"]}, {who = [\"*\"], allow_publish = [\"a..b\"]}]\n",
			[]string{"policy.toml: rule #2: allow_publish", `"a..b"`}},
	}
	for _, tc := range cases {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			p, err := Parse("policy.toml", []byte(tc.src))
			if err == nil {
				t.Fatalf("parsed: %d rules", p.Rules())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
			if strings.Contains(tc.name, "password") && strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error repeats the plaintext password: %v", err)
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	src := `# A policy with everything in it.
allow_anonymous = true
allow_responses = false
response_ttl = "30s"

[[user]]
name = "web"
password = '` + testHash + `'

[[token]]
name = "ci"
sha256 = "` + strings.ToUpper(TokenDigest("t")) + `"

[[rule]]
name = """
a [[rule]] in a
multi-line string
"""
who = ["uid:65534", "gid:0", "user:root", "group:staff", "user:` + "sb-test-no-such-user" + `", "cert:web.example", "token:ci", "login:web", "anonymous", "*"]
allow_publish = [
  "public.>",     # comments
  "a.*.b",
]
allow_subscribe = ["public.>"]
deny_publish = ["public.secret"]
deny_subscribe = ["$SB.>"]
max_connections = 10
max_subscriptions = 1000
max_payload = "64KiB"

  [[ rule ]]   # indented, spaced
who = ["*"]
max_payload = 512
`
	p, err := Parse("p.toml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !p.AllowAnonymous() || p.Rules() != 2 || !p.NeedsNames() || !p.HasCredentials() {
		t.Fatalf("AllowAnonymous %v Rules %d NeedsNames %v", p.AllowAnonymous(), p.Rules(), p.NeedsNames())
	}
	if on, ttl := p.Responses(); on || ttl != 30*time.Second {
		t.Errorf("Responses = %v %v", on, ttl)
	}
	g := p.Grant(&Identity{Transport: "tcp", Anonymous: true})
	d := g.Publish("public.x")
	if !d.Allowed || d.Rule.Line != 14 || d.Rule.KeyLine != 20 || d.Rule.Index != 1 || d.Rule.File != "p.toml" || d.Rule.Key != "allow_publish" {
		t.Errorf("Publish = %v %+v", d, d.Rule)
	}
	if d := g.Publish("public.secret"); d.Allowed || d.Rule.KeyLine != 25 {
		t.Errorf("Publish(public.secret) = %v", d)
	}
	if d := g.Subscribe("$SB.x"); d.Allowed || d.Rule.KeyLine != 26 {
		t.Errorf("Subscribe($SB.x) = %v", d)
	}
	if got := g.Limits(); got != (Limits{10, 1000, 512}) {
		t.Errorf("Limits = %+v", got)
	}
}

func TestScanLines(t *testing.T) {
	src := `top = 1
"quoted" = 2
s = '''
[[rule]]
x = 1
'''
t = """ one \""" still
[[rule]] inside
"""
[[rule]] # first
who = ["*"] # x = 1
allow_publish = [
  "x", # y = 2
  "z = 1",
]
[other]
who = 1
[[user]]
name = 'n'
[[rule]]
	deny_subscribe = ["a"]
"who" = []
[[a.rule]]
who = 1
`
	m := scanLines(src)
	if m.top["top"] != 1 || m.top["quoted"] != 2 || m.top["x"] != 0 || len(m.top) != 4 {
		t.Errorf("top = %v", m.top)
	}
	if m.tables["other"] != 16 {
		t.Errorf("tables = %v", m.tables)
	}
	rules := m.arrays["rule"]
	if len(rules) != 2 || rules[0].line != 10 || rules[1].line != 20 {
		t.Fatalf("rules = %+v", rules)
	}
	if r := rules[0].keys; r["who"] != 11 || r["allow_publish"] != 12 || len(r) != 2 {
		t.Errorf("rule 1 keys = %v", r)
	}
	if r := rules[1].keys; r["deny_subscribe"] != 21 || r["who"] != 22 {
		t.Errorf("rule 2 keys = %v", r)
	}
	if l, k := m.elem("rule", 1, 2, "who"); l != 20 || k != 22 {
		t.Errorf("elem = %d %d", l, k)
	}
	if l, k := m.elem("rule", 1, 3, "who"); l != 0 || k != 0 {
		t.Errorf("elem with a count mismatch = %d %d", l, k)
	}
	if len(m.arrays["a.rule"]) != 1 || m.arrays["user"][0].keys["name"] != 19 {
		t.Errorf("arrays = %+v", m.arrays)
	}
}

func TestCompileEmbedded(t *testing.T) {
	// A configuration file with policy keys among its own, as the hub's
	// config embeds File.
	var f File
	if !f.Empty() {
		t.Fatal("zero File not Empty")
	}
	src := "socket = \"/x\"\n\n[[rule]]\nwho = [\"uid:7\"]\nallow_publish = [\"a..\"]\n"
	f.Rules = []RuleSpec{{Who: []string{"uid:7"}, AllowPublish: []string{"a.."}}}
	if f.Empty() {
		t.Fatal("File with rules Empty")
	}
	_, err := Compile("hub.toml", []byte(src), &f)
	if err == nil || !strings.HasPrefix(err.Error(), "hub.toml:5: rule #1: allow_publish") {
		t.Fatalf("Compile: %v", err)
	}
	f.Rules[0].AllowPublish = []string{"a.>"}
	p, err := Compile("hub.toml", nil, &f)
	if err != nil || !p.Grant(local(7)).Publish("a.b").Allowed {
		t.Fatalf("Compile: %v", err)
	}
	if p, err := Compile("x", nil, nil); err != nil || p.Rules() != 0 {
		t.Fatalf("Compile(nil) = %v", err)
	}
	// A size from the program, not the file, is checked too.
	f.Rules[0].MaxPayload = -5
	if _, err := Compile("hub.toml", nil, &f); err == nil || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("negative size: %v", err)
	}
}

func TestParseReportsManyErrors(t *testing.T) {
	var b strings.Builder
	for range 50 {
		b.WriteString("[[rule]]\nwho = [\"bad\"]\nallow_publish = [\"a\"]\n")
	}
	_, err := Parse("p.toml", []byte(b.String()))
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != maxErrors+1 || !strings.Contains(err.Error(), "more errors follow") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "p.toml:5: rule #2") {
		t.Errorf("second rule's line missing: %v", err)
	}
}

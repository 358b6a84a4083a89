package auth

import (
	"context"
	"strings"
	"testing"
)

// fuzzSeeds are policy files, good and broken.
var fuzzSeeds = []string{
	issueExample,
	"",
	"allow_anonymous = true\nresponse_ttl = \"5s\"\n[[rule]]\nwho = [\"anonymous\"]\nallow_subscribe = [\"news.*\"]\n",
	"[[user]]\nname = \"web\"\npassword = \"" + testHash + "\"\n[[rule]]\nwho = [\"login:web\"]\nallow_publish = [\"web.>\", \"$SB.x\"]\ndeny_publish = [\"web.admin\"]\nmax_payload = \"1KiB\"\n",
	"[[token]]\nname = \"ci\"\ntoken = \"t\"\n[[rule]]\nwho = [\"token:ci\", \"cert:x\"]\nallow_subscribe = [\">\"]\ndeny_subscribe = [\"a.*.b\"]\n",
	"rule = [{who = [\"*\"], allow_publish = [\"a\"]}]\n",
	"[[rule]]\nname = '''\n[[rule]]\n'''\nwho = [\"group:staff\", \"user:root\"]\nmax_connections = 2\n",
	"[[rule]]\nwho = [\"uid:x\"]\nallow_publish = [\"a..b\"]\n",
	"[[rule]]\nwho = \"*\"\n",
	"[[rule]]\nwho = [\"*\"\n",
	"[[user]]\nname = \"a\"\npassword = \"plain\"\n",
	"[[token]]\nname = \"a\"\nsha256 = \"zz\"\n",
	"x = [[[[[[[[[[[[1]]]]]]]]]]]]\n",
	"response_ttl = \"-1s\"\nbogus = 1\n",
	"[[rule]]\nwho = [\"*\"]\nmax_payload = -1\n",
	"\"\"\"\n[[rule]]\n",
}

// FuzzParse feeds Parse arbitrary documents: it must never panic, and
// whatever parses must evaluate without panicking, for all kinds of
// identities and subjects.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s, "a.b")
	}
	f.Fuzz(func(t *testing.T, src, subj string) {
		p, err := Parse("fuzz.toml", []byte(src))
		if err != nil {
			if p != nil {
				t.Fatalf("Parse returned a policy and an error")
			}
			if err.Error() == "" || strings.Contains(err.Error(), "panic") {
				t.Fatalf("error %q", err)
			}
			return
		}
		ids := []*Identity{
			nil,
			local(0),
			{Transport: "unix", Local: true, UID: 65534, GID: 65534, Groups: []uint32{50}, UserName: "nobody", GroupNames: []string{"staff"}},
			{Transport: "tls", CertCN: "x"},
			{Transport: "tcp", Anonymous: true},
			{Transport: "tcp", Login: "web", Token: "ci"},
		}
		for _, id := range ids {
			g := p.Grant(id)
			g.Empty()
			g.Unrestricted()
			g.Limits()
			for _, s := range []string{subj, "a", "a.b", "$SB.x", ">", "a.*", ""} {
				d := g.Publish(s)
				_ = d.String()
				sd := g.Subscribe(s)
				_ = sd.String()
				g.Deliver(s)
			}
		}
		p.Authenticate(context.Background(), &Identity{Transport: "tcp"}, Credentials{Token: subj})
		p.Authenticate(context.Background(), &Identity{Transport: "tcp"}, Credentials{})
	})
}

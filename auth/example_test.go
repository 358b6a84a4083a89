package auth_test

import (
	"fmt"

	"switchboard/auth"
)

func ExampleParse() {
	policy := `
[[rule]]
who = ["uid:65534"]
allow_publish = ["public.>"]
allow_subscribe = ["public.>"]

[[rule]]
who = ["*"]
deny_subscribe = ["secrets.>"]
`
	p, err := auth.Parse("policy.toml", []byte(policy))
	if err != nil {
		fmt.Println(err)
		return
	}
	nobody := p.Grant(&auth.Identity{Transport: "unix", Local: true, UID: 65534, GID: 65534})
	fmt.Println(nobody.Publish("public.news"))
	fmt.Println(nobody.Subscribe("secrets.keys"))
	fmt.Println(nobody.Subscribe(">"))

	owner := p.WithOwner(1000).Grant(&auth.Identity{Transport: "unix", Local: true, UID: 1000, GID: 1000})
	d := owner.Subscribe(">")
	fmt.Println(d.Allowed, d.Filter, owner.Deliver("secrets.keys"), owner.Deliver("public.news"))
	// Output:
	// allowed by rule 1 (policy.toml:4) allow_publish "public.>"
	// denied by rule 2 (policy.toml:9) deny_subscribe "secrets.>"
	// denied: no rule allows it
	// true true false true
}

func ExampleParse_errors() {
	_, err := auth.Parse("policy.toml", []byte(`
[[rule]]
who = ["uid:alice"]
allow_publish = ["orders..new"]
`))
	fmt.Println(err)
	// Output:
	// policy.toml:3: rule #1: who: "uid:alice": uid must be a number (use user:NAME for a name)
	// policy.toml:4: rule #1: allow_publish: "orders..new" is not a valid subject pattern (non-empty tokens separated by '.', no spaces; '*' matches one token, '>' one or more and only last)
}

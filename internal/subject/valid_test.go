package subject

import (
	"strings"
	"testing"
)

func TestValidSubjects(t *testing.T) {
	long := strings.Repeat("a.", MaxSubjectLen/2-1) + "ab" // exactly MaxSubjectLen bytes
	tests := []struct {
		s         string
		pub, subs bool
	}{
		{"", false, false},
		{".", false, false},
		{"..", false, false},
		{"a.", false, false},
		{".a", false, false},
		{"a..b", false, false},
		{"a.b.", false, false},
		{"a", true, true},
		{"a.b.c", true, true},
		{"foo.bar_baz-1.2", true, true},
		{"*", false, true},
		{">", false, true},
		{"a.*", false, true},
		{"*.a", false, true},
		{"*.*.*", false, true},
		{"a.>", false, true},
		{"a.*.>", false, true},
		{"a.>.b", false, false},
		{">.a", false, false},
		{">.>", false, false},
		{"a.>.*", false, false},
		{"a b", false, false},
		{"a\tb", false, false},
		{"a\rb", false, false},
		{"a\nb", false, false},
		{"a\fb", false, false},
		{" a", false, false},
		{"a ", false, false},
		{"a.* ", false, false},
		{"a. .b", false, false},
		{"a.\t", false, false},
		// '*' and '>' inside a longer token are literal characters.
		{"a*b", true, true},
		{"a>b", true, true},
		{"**", true, true},
		{">>", true, true},
		{"a.*b.>c", true, true},
		{"a.b>", true, true},
		// Any other byte is allowed: unicode, control bytes, invalid UTF-8.
		{"héllo.wörld", true, true},
		{"日本.語", true, true},
		{"emoji.🚀", true, true},
		{"nbsp\u00a0inside", true, true}, // only ASCII whitespace is rejected
		{"a\x00b", true, true},
		{"\xff\xfe", true, true},
		{"$SB.queue.jobs", true, true},
		{"_INBOX.abc123.*", false, true},
		{long, true, true},
		{long + "c", false, false},
		{strings.Repeat("*.", MaxSubjectLen/2-1) + ">", false, true},
	}
	for _, tt := range tests {
		if got := ValidPublish([]byte(tt.s)); got != tt.pub {
			t.Errorf("ValidPublish(%q) = %v, want %v", tt.s, got, tt.pub)
		}
		if got := ValidSubscribe([]byte(tt.s)); got != tt.subs {
			t.Errorf("ValidSubscribe(%q) = %v, want %v", tt.s, got, tt.subs)
		}
		if got := refValid(tt.s, true); got != tt.subs {
			t.Errorf("refValid(%q, true) = %v, want %v (reference is wrong)", tt.s, got, tt.subs)
		}
		if got := refValid(tt.s, false); got != tt.pub {
			t.Errorf("refValid(%q, false) = %v, want %v (reference is wrong)", tt.s, got, tt.pub)
		}
	}
}

func TestValidQueue(t *testing.T) {
	tests := []struct {
		s  string
		ok bool
	}{
		{"", false},
		{"workers", true},
		{"a.b", true},
		{".", true},
		{"..", true},
		{"*", true},
		{">", true},
		{"a.>.b", true},
		{"grüppe", true},
		{"a b", false},
		{"a\tb", false},
		{"a\rb", false},
		{"a\nb", false},
		{"a\fb", false},
		{" ", false},
		{strings.Repeat("q", MaxSubjectLen), true},
		{strings.Repeat("q", MaxSubjectLen+1), false},
	}
	for _, tt := range tests {
		if got := ValidQueue([]byte(tt.s)); got != tt.ok {
			t.Errorf("ValidQueue(%q) = %v, want %v", tt.s, got, tt.ok)
		}
	}
}

func TestValidNoAlloc(t *testing.T) {
	b := []byte("orders.eu.created.*.>")
	n := testing.AllocsPerRun(100, func() {
		ValidSubscribe(b)
		ValidPublish(b)
		ValidQueue(b)
	})
	if n != 0 {
		t.Errorf("validators allocate %v times", n)
	}
}

func TestMatchTokens(t *testing.T) {
	tests := []struct {
		filter, lit string
		want        bool
	}{
		{"a", "a", true},
		{"a", "b", false},
		{"a", "a.b", false},
		{"a.b", "a", false},
		{"*", "a", true},
		{"*", "a.b", false},
		{">", "a", true},
		{">", "a.b.c", true},
		{"a.>", "a", false},
		{"a.>", "a.b", true},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
		{"a.*.>", "a.b", false},
		{"a.*.>", "a.b.c.d", true},
		{"a*b", "a*b", true},
		{"a*b", "axb", false},
	}
	for _, tt := range tests {
		if got := matchTokens(strings.Split(tt.filter, "."), tt.lit); got != tt.want {
			t.Errorf("matchTokens(%q, %q) = %v, want %v", tt.filter, tt.lit, got, tt.want)
		}
		if got := refMatch(tt.filter, tt.lit); got != tt.want {
			t.Errorf("refMatch(%q, %q) = %v, want %v (reference is wrong)", tt.filter, tt.lit, got, tt.want)
		}
	}
}

// refValid is an independent, deliberately simple validator: split on '.',
// check each token.
func refValid(s string, wildcards bool) bool {
	if s == "" || len(s) > MaxSubjectLen || strings.ContainsAny(s, " \t\r\n\f") {
		return false
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return false
		case tok == "*" && !wildcards:
			return false
		case tok == ">" && (!wildcards || i != len(toks)-1):
			return false
		}
	}
	return true
}

// refMatch is an independent, deliberately simple matcher for a valid
// filter and a valid literal subject.
func refMatch(filter, lit string) bool {
	f := strings.Split(filter, ".")
	l := strings.Split(lit, ".")
	for i, ft := range f {
		if ft == ">" {
			return len(l) > i
		}
		if i >= len(l) || (ft != "*" && ft != l[i]) {
			return false
		}
	}
	return len(f) == len(l)
}

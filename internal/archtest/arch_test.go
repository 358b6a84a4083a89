package archtest

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Name       string
	Doc        string
	Imports    []string
	Deps       []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not on PATH")
	}
	out, err := exec.Command("go", "list", "-json", "switchboard/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

func TestEveryPackageHasADocComment(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("%s has no package doc comment", p.ImportPath)
		}
	}
}

// TestLayers keeps the architecture honest: the codec and the matcher know
// bytes only, the hub never imports the client, the client never imports the
// hub, and nats-server is never linked into the shipped binary.
func TestLayers(t *testing.T) {
	forbidden := map[string][]string{
		"switchboard/internal/protocol": {"net", "switchboard"},
		"switchboard/internal/subject":  {"net", "switchboard"},
		"switchboard/hub":               {"switchboard", "switchboard/cmd/"},
		// Rings know memory, not sockets, subjects or the hub.
		"switchboard/shm": {"net", "switchboard", "switchboard/hub", "switchboard/cmd/", "switchboard/auth", "switchboard/internal/"},
		// The policy knows identities and subjects, not the wire or the hub.
		"switchboard/auth":            {"switchboard", "switchboard/hub", "switchboard/cmd/", "switchboard/internal/protocol"},
		"switchboard":                 {"switchboard/hub", "switchboard/cmd/"},
		"switchboard/cmd/switchboard": {"github.com/nats-io/nats-server/v2", "github.com/nats-io/nats.go"},
	}
	for _, p := range listPackages(t) {
		bad, ok := forbidden[p.ImportPath]
		if !ok {
			continue
		}
		for _, dep := range p.Deps {
			for _, b := range bad {
				if covers(b, dep) {
					t.Errorf("%s depends on %s, which its layer must not", p.ImportPath, dep)
				}
			}
		}
	}
}

// covers reports whether the forbidden entry b names dep: "x" names x and
// its subpackages, except the module root "switchboard", which names only
// itself; "x/" names x's subpackages.
func covers(b, dep string) bool {
	switch {
	case dep == b:
		return true
	case strings.HasSuffix(b, "/"):
		return strings.HasPrefix(dep, b)
	case b == "switchboard":
		return false
	}
	return strings.HasPrefix(dep, b+"/")
}

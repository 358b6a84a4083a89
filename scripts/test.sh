#!/usr/bin/env bash
# The whole test suite: formatting, vet, race-enabled tests and a short run
# of every fuzz target. Usage: scripts/test.sh [FUZZTIME] (default 10s).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-${FUZZTIME:-10s}}

if ! command -v go >/dev/null 2>&1; then
  echo "test.sh: Go is required (https://go.dev/dl); install Go 1.26 or newer" >&2
  exit 1
fi

echo "== gofmt"
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$bad" ]; then echo "gofmt needed on: $bad" >&2; exit 1; fi

echo "== go vet"
go vet ./...

echo "== build"
mkdir -p bin
go build -o bin/switchboard ./cmd/switchboard
go build -o bin/sb-nats-server ./cmd/sb-nats-server

echo "== go test -race"
go test -race -count=1 -timeout 20m ./...

echo "== client suite against nats-server (the same tests ran against the hub above)"
SWITCHBOARD_TEST_SERVER=nats go test -race -count=1 -timeout 10m .

echo "== policy evaluator vs its reference, 100,000 cases (the race run above does fewer)"
go test -count=1 -run '^TestEvaluatorMatchesReference$' -v ./auth | grep -E 'checked|^(ok|FAIL|---)'

echo "== fuzz ($fuzztime each)"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "-- $pkg $target"
    go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=5s "$pkg"
  done
done
echo "== all tests passed"

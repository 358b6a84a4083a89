// Package interop checks that unmodified NATS software works against a
// Switchboard hub: the official NATS JavaScript client (nodejs/interop.mjs,
// driven by TestNodeClient) and the official nats CLI, including nats bench
// (TestNatsCLI). Each test starts a real `switchboard serve` on a free
// loopback port and talks to it over TCP; a nats.go connection in the test
// is the Go peer of the other tool.
//
// Prerequisites are found or installed by the tests themselves: Node.js and
// npm (installed with apt-get when missing and running as root), the npm
// packages pinned in nodejs/package-lock.json (npm ci), and the nats CLI,
// built once from the Go module proxy into the user cache directory. When a
// prerequisite cannot be had the test is skipped with the reason, unless
// SWITCHBOARD_INTEROP_REQUIRED=1 is set, which turns those skips into
// failures. See README.md for what is verified and what is not supported.
package interop

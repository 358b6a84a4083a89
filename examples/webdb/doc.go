// Package webdb is the first scenario users bring: a web server asks a
// database process for data and waits for the answer. Two programs, db and
// web, talk through a Switchboard hub with request/reply; the test in this
// directory runs all three as real processes.
//
//	switchboard serve &
//	go run ./examples/webdb/db &
//	go run ./examples/webdb/web -addr 127.0.0.1:8080 &
//	curl 'http://127.0.0.1:8080/user?id=1'
package webdb

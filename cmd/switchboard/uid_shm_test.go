//go:build linux

package main

import (
	"strings"
	"testing"
)

// TestUIDShmRingRefused: a uid may not get a ring for a subject the policy
// does not let it publish to; for one it may, it gets one (the raw client
// reads the descriptor-less control message, so the text is all it sees).
func TestUIDShmRingRefused(t *testing.T) {
	h := startUIDHub(t, "0666")
	p := h.rawConnect(t, uidPublic)
	got := p.roundTrip("PUB $SB.SHM.HELLO 11\r\n{\"sid\":\"9\"}\r\n")
	if len(got) != 2 || got[0] != "MSG $SB.SHM.CTL 9 14" || !strings.Contains(got[1], `"op":"hello"`) {
		t.Fatalf("HELLO answered %q", got)
	}
	got = p.roundTrip(`PUB $SB.SHM.PUB 23` + "\r\n" + `{"subject":"secrets.a"}` + "\r\n")
	if len(got) != 2 || !strings.Contains(got[1], `"error":"Permissions Violation for Publish to \"secrets.a\""`) {
		t.Fatalf("ring for a denied subject answered %q", got)
	}
	// Allowed: a ring comes (with two descriptors the raw client does not
	// read: it sees the JSON).
	got = p.roundTrip(`PUB $SB.SHM.PUB 22` + "\r\n" + `{"subject":"public.a"}` + "\r\n")
	if len(got) != 2 || !strings.Contains(got[1], `"op":"ring"`) || strings.Contains(got[1], "error") || !strings.Contains(got[1], `"fds":2`) {
		t.Fatalf("ring for an allowed subject answered %q", got)
	}
	// The unlisted uid cannot even connect, so it never asks.
}

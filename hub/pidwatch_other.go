//go:build !linux

package hub

// watchPeerProcess: pidfds are Linux's; socket close detects dead peers.
func (c *client) watchPeerProcess() {}

package switchboard

// PendingPongs reports how many PINGs the Conn still waits a PONG for
// (tests only).
func PendingPongs(c *Conn) int {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return len(c.pongs)
}

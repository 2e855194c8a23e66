package api

import "time"

// SetStreamTimings shortens the change stream's heartbeat and write wait
// for a test, and returns what puts them back.
func SetStreamTimings(heartbeat, writeWait time.Duration) (restore func()) {
	h, w := streamHeartbeat, streamWriteWait
	streamHeartbeat, streamWriteWait = heartbeat, writeWait
	return func() { streamHeartbeat, streamWriteWait = h, w }
}

//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package gateway

import "syscall"

// canPeek: upConn.idleClean can look at an idle connection without
// reading from it.
const canPeek = true

// peek looks at the socket without reading or waiting: anything but "no
// data yet" (a byte, the end of the stream, an error) makes it bad.
func (c *upConn) peek(fd uintptr) bool {
	n, _, err := syscall.Recvfrom(int(fd), c.peekBuf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.peekBad = !(n <= 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK))
	return true // done: never wait for the socket to become readable
}

package testutil

import (
	"net"
	"sync"
	"testing"
)

// Silent listens on addr ("127.0.0.1:0" for any port) and accepts every
// connection without ever answering: a server that is overloaded, or behind
// a firewall dropping packets. It returns the address and closes all with t.
func Silent(t testing.TB, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// Package middlewaretest starts the Go middleware against a tokend for
// tests: the one copy of New, Run and the wait for its change stream.
package middlewaretest

import (
	"context"
	"testing"
	"time"

	"github.com/tokend/tokend/client"
	"github.com/tokend/tokend/middleware"
)

// Start returns an Authenticator of the tokend at url, with token as its
// service token, running (Run) until the test ends, once its change stream
// is up (tb fails if it is not within 10 s).
func Start(tb testing.TB, url, token string, opts middleware.Options) *middleware.Authenticator {
	tb.Helper()
	c, err := client.New(url, token)
	if err != nil {
		tb.Fatal(err)
	}
	auth, err := middleware.New(c, opts)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { auth.Run(ctx); close(done) }()
	tb.Cleanup(func() { cancel(); <-done })
	for deadline := time.Now().Add(10 * time.Second); !auth.Live(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("the middleware's change stream did not come up within 10 s")
		}
	}
	return auth
}

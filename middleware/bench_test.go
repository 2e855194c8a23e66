package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokend/tokend/internal/testutil"
	"github.com/tokend/tokend/middleware"
)

// BenchmarkRequire measures the middleware's cost per request for a token
// it has verified already: the same handler with and without it, in process.
func BenchmarkRequire(b *testing.B) {
	f := newBenchFixture(b)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	tok := f.tokend.Token(b, "user")
	for _, c := range []struct {
		name string
		h    http.Handler
	}{{"without", ok}, {"with", f.auth.Require()(ok)}} {
		b.Run(c.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Authorization", "Bearer "+tok.Value)
			w := httptest.NewRecorder()
			c.h.ServeHTTP(w, req) // verified once
			if w.Code != http.StatusOK {
				b.Fatal(w.Code)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				w := &nopWriter{h: http.Header{}}
				for pb.Next() {
					c.h.ServeHTTP(w, req)
				}
			})
		})
	}
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

type benchFixture struct {
	tokend *testutil.TokendServer
	auth   *middleware.Authenticator
}

package api

import (
	"crypto/rand"
	"encoding/base32"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/tokend/tokend"
)

// stateKey carries a request's *requestState in its context.
type stateKey struct{}

// requestState is what ServeHTTP learns about a request as it runs: its ID,
// and the token it authenticated as, for the accounting done once it is answered.
type requestState struct {
	id    string
	token *tokend.Token
	https bool // the client reached tokend over HTTPS, directly or through a trusted proxy
	// verifyPass is set by GET /api/verify when it lets a request through.
	verifyPass bool
	// header backs the X-Request-Id header value, saving an allocation per request.
	header [1]string
}

// RequestID returns the ID of the request r's context belongs to, or "".
func RequestID(r *http.Request) string {
	if st, ok := r.Context().Value(stateKey{}).(*requestState); ok {
		return st.id
	}
	return ""
}

// IsHTTPS reports whether the client reached tokend over HTTPS, directly or
// through a trusted proxy that says so.
func IsHTTPS(r *http.Request) bool {
	if st, ok := r.Context().Value(stateKey{}).(*requestState); ok {
		return st.https
	}
	return r.TLS != nil
}

// maxRequestIDLength bounds a client-sent X-Request-Id that tokend echoes.
const maxRequestIDLength = 128

// requestIDs issues request IDs: a random prefix per process and a counter,
// unique across instances and cheap enough for every request.
type requestIDs struct {
	prefix string
	n      atomic.Uint64
}

func newRequestIDs() *requestIDs {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return &requestIDs{prefix: base32.HexEncoding.EncodeToString(b[:]) + "-"}
}

// from returns the client's X-Request-Id when it is short and printable
// (visible ASCII, at most 128 bytes), so that a request can be followed
// through proxies; otherwise a new ID.
func (g *requestIDs) from(h http.Header) string {
	if v := h[headerRequestID]; len(v) == 1 && validRequestID(v[0]) {
		return v[0]
	}
	var b [32]byte
	return string(strconv.AppendUint(append(b[:0], g.prefix...), g.n.Add(1), 36))
}

func validRequestID(s string) bool {
	if s == "" || len(s) > maxRequestIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// Package httpx holds the small HTTP pieces that tokend's API and its
// gateway ("tokend proxy") share: the identity headers, the request IDs and
// a bounded method label. It imports only the standard library, so that
// the gateway does not carry the API's dependencies.
package httpx

import (
	"crypto/rand"
	"encoding/base32"
	"net/http"
	"strconv"
	"sync/atomic"
)

// Identity headers of a verified request, as a reverse proxy passes them
// upstream.
const (
	HeaderAccountID   = "X-Tokend-Account-Id"
	HeaderTokenID     = "X-Tokend-Token-Id"
	HeaderEnvironment = "X-Tokend-Environment"
)

// HeaderRequestID names a request across tokend, its gateway and the
// services behind.
const HeaderRequestID = "X-Request-Id"

// MaxRequestIDLength bounds a client-sent X-Request-Id that is taken on.
const MaxRequestIDLength = 128

// RequestIDs issues request IDs: a random prefix per process and a counter,
// unique across instances and cheap enough for every request.
type RequestIDs struct {
	prefix string
	n      atomic.Uint64
}

// NewRequestIDs returns a source of request IDs with a new random prefix.
func NewRequestIDs() *RequestIDs {
	var b [5]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return &RequestIDs{prefix: base32.HexEncoding.EncodeToString(b[:]) + "-"}
}

// From returns the client's X-Request-Id when there is exactly one and it
// is valid (see ValidRequestID), so that a request can be followed through
// proxies; otherwise a new ID.
func (g *RequestIDs) From(h http.Header) string {
	if v := h[HeaderRequestID]; len(v) == 1 && ValidRequestID(v[0]) {
		return v[0]
	}
	var b [32]byte
	return string(strconv.AppendUint(append(b[:0], g.prefix...), g.n.Add(1), 36))
}

// ValidRequestID reports whether s may be used as a request ID: 1 to 128
// bytes of visible ASCII, safe to copy into logs and headers.
func ValidRequestID(s string) bool {
	if s == "" || len(s) > MaxRequestIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// MethodLabel maps a request method to a fixed set, so that metric labels and
// log fields cannot grow with what clients send.
func MethodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return m
	}
	return "other"
}

package gateway

import (
	"encoding/base64"
	"net/http"
	"strings"
)

// scrub removes from h, the upstream request's headers as the client sent
// them, everything the upstream could take for a credential of tokend's or
// for the client's address, none of which the gateway vouches for:
//
//   - Api-Token, and Authorization: Bearer, unless ForwardCredentials;
//   - an Authorization of any other scheme that carries a token value
//     (Token tk_live_…, Basic with one as the password); other schemes
//     pass, for upstreams that use them;
//   - any other header whose value carries a token value (X-Api-Key,
//     Cookie…);
//   - every header named like one the gateway sets or reads (see
//     lookalike), since CGI-style servers read "-" and "_" alike and in
//     any case: Api_Token, X_Tokend_Token_Id, X_Forwarded_For…;
//   - every header that names a client address (see addressHeader):
//     X-Real-IP, True-Client-IP, Forwarded… The upstream learns the
//     client's address from X-Forwarded-For, which the gateway writes.
func (g *gateway) scrub(h http.Header) {
	for k, vs := range h {
		switch k {
		case "Api-Token":
			if !g.opts.ForwardCredentials {
				delete(h, k)
			}
			continue
		case "Authorization":
			var keep []string
			for _, v := range vs {
				if g.passAuthorization(v) {
					keep = append(keep, v)
				}
			}
			if keep == nil {
				delete(h, k)
			} else {
				h[k] = keep
			}
			continue
		}
		if lookalike(k) || addressHeader(k) || g.carryToken(vs) {
			delete(h, k)
		}
	}
}

// passAuthorization reports whether an Authorization value may go
// upstream: Bearer only with ForwardCredentials (it is tokend's scheme),
// another scheme unless it carries a token value.
func (g *gateway) passAuthorization(v string) bool {
	scheme, cred, _ := strings.Cut(strings.TrimSpace(v), " ")
	if strings.EqualFold(scheme, "Bearer") {
		return g.opts.ForwardCredentials
	}
	if g.carryToken([]string{v}) {
		return false
	}
	if strings.EqualFold(scheme, "Basic") {
		if dec, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred)); err == nil && g.carryToken([]string{string(dec)}) {
			return false
		}
	}
	return true
}

// carryToken reports whether one of vs holds a token value of the tokend's.
func (g *gateway) carryToken(vs []string) bool {
	for _, v := range vs {
		if strings.Contains(v, g.tokenMarks[0]) || strings.Contains(v, g.tokenMarks[1]) {
			return true
		}
	}
	return false
}

// lookalike reports whether a header name, read in any case and with "_"
// for "-", is one the gateway sets, reads or strips, without being the
// name itself as the client sent it (Go writes each in one canonical
// form): its identity headers X-Tokend-*, X-Request-Id, Api-Token,
// Authorization, Proxy-Authorization, and the headers with which a proxy
// in front tells another path (X-Original-URL, X-Rewrite-URL,
// X-Original-URI).
func lookalike(k string) bool {
	if foldedHasPrefix(k, "x-tokend-") {
		return true // even as spelled canonically: only the gateway sets them
	}
	for _, n := range [...]string{"X-Request-Id", "Api-Token", "Authorization", "Proxy-Authorization"} {
		if k != n && folded(k, n) { // the canonical ones are handled by name
			return true
		}
	}
	for _, n := range [...]string{"x-original-url", "x-rewrite-url", "x-original-uri"} {
		if folded(k, n) {
			return true
		}
	}
	return false
}

// addressWords are the words of a header name that make it name a client
// address.
var addressWords = [...]string{"forwarded", "ip", "clientip", "realip", "addr", "address"}

// addressHeader reports whether a header names a client address: one of
// its words ("-" or "_" separated, any case) is forwarded, ip, clientip,
// realip, addr or address. That is Forwarded and X-Forwarded-* (the gateway
// sets X-Forwarded-For/Host/Proto itself), X-Real-IP, True-Client-IP,
// X-Client-IP, CF-Connecting-IP, Fastly-Client-IP, X-Cluster-Client-IP,
// X-Remote-Addr, X-Original-Forwarded-For and their kind.
func addressHeader(k string) bool {
	for len(k) > 0 {
		i := strings.IndexAny(k, "-_")
		if i < 0 {
			i = len(k)
		}
		for _, w := range addressWords {
			if strings.EqualFold(k[:i], w) {
				return true
			}
		}
		k = k[min(i+1, len(k)):]
	}
	return false
}

// fold is a byte of a header name as CGI-style servers read it: lower
// case, "-" for "_".
func fold(c byte) byte {
	switch {
	case c == '_':
		return '-'
	case 'A' <= c && c <= 'Z':
		return c + 'a' - 'A'
	}
	return c
}

// folded reports whether header names k and n read alike (see fold).
func folded(k, n string) bool {
	return len(k) == len(n) && foldedHasPrefix(k, n)
}

// foldedHasPrefix reports whether header name k begins like prefix (see fold).
func foldedHasPrefix(k, prefix string) bool {
	if len(k) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if fold(k[i]) != fold(prefix[i]) {
			return false
		}
	}
	return true
}

// methodOverride names the method-override header h carries (as sent; in
// any case, "_" for "-"), or "": X-HTTP-Method-Override, X-HTTP-Method,
// X-Method-Override. Frameworks run the method it names, not the one the
// routes matched.
func methodOverride(h http.Header) string {
	for k := range h {
		for _, n := range [...]string{"x-http-method-override", "x-http-method", "x-method-override"} {
			if folded(k, n) {
				return k
			}
		}
	}
	return ""
}

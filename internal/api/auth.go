package api

import (
	"errors"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/ratelimit"
)

var (
	errNoCredentials = &tokend.Error{Code: tokend.EUNAUTHORIZED, Message: "Missing API token: send it as Api-Token or Authorization: Bearer", Reason: "missing_api_key"}
	errBadScheme     = &tokend.Error{Code: tokend.EUNAUTHORIZED, Message: "The Authorization header must use the Bearer scheme", Reason: "invalid_api_key"}
	errTwoTokens     = &tokend.Error{Code: tokend.EUNAUTHORIZED, Message: "Every Api-Token and Authorization header must carry the same token", Reason: "invalid_api_key"}
	errRateLimited   = tokend.Errorf(tokend.ERATELIMITED, "Rate limit exceeded")
	errThrottled     = &tokend.Error{Code: tokend.ERATELIMITED, Message: "Too many failed authentications from your address; retry later", Reason: "auth_throttled"}
)

// credential returns the token value a request presents in Api-Token or
// Authorization: Bearer. Every value of every such header must name the same
// token: a proxy that reads another one than tokend must not see another
// caller. An Authorization header with another scheme (Basic for a proxy, say)
// is allowed only beside Api-Token, and carries no token.
func credential(r *http.Request) (string, error) {
	var value string
	apiToken := false
	for _, v := range r.Header.Values("Api-Token") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if value != "" && v != value {
			return "", errTwoTokens
		}
		value, apiToken = v, true
	}
	for _, auth := range r.Header.Values("Authorization") {
		scheme, v, ok := strings.Cut(strings.TrimSpace(auth), " ")
		if v = strings.TrimSpace(v); !ok || !strings.EqualFold(scheme, "Bearer") || v == "" {
			if !apiToken {
				return "", errBadScheme
			}
			continue
		}
		if value != "" && v != value {
			return "", errTwoTokens
		}
		value = v
	}
	if value == "" {
		return "", errNoCredentials
	}
	return value, nil
}

// authedHandler is a handler that runs on behalf of an authenticated token.
type authedHandler func(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error

// authed authenticates the request, applies the account's rate limit, checks
// that an {account_id} in the path is the caller's own (404 otherwise, so
// other accounts stay invisible), runs h, and writes any error it returns.
func (s *Server) authed(h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		now := s.opts.Now()
		s.sweepLimiters(now)
		caller, err := s.authenticate(w, r, now)
		if err == nil {
			if st, ok := r.Context().Value(stateKey{}).(*requestState); ok {
				st.token = caller
			}
			w.Header()[headerCache] = noStore // responses may hold token values or private data
			err = s.rateLimit(w, caller, now)
		}
		if err == nil {
			if v := r.PathValue("account_id"); v != "" {
				if id, perr := strconv.ParseInt(v, 10, 64); perr != nil || id != caller.AccountID {
					err = errNotFound
				}
			}
		}
		if err == nil {
			err = h(w, r, caller)
		}
		if err != nil {
			s.writeError(w, r, err)
		}
	})
}

// authenticate returns the caller. A token this process has already verified
// passes at once: it costs nothing to check. Anything else is a possible guess
// and reserves one failure of the client address's budget before the lookup,
// so that no interleaving of parallel guesses gets more than the budget
// answered; a lookup that succeeds gives the reservation back. An address out
// of budget gets 429 with code auth_throttled; other addresses are unaffected.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, now time.Time) (*tokend.Token, error) {
	value, err := credential(r)
	if err == errNoCredentials {
		s.authMissing.Inc()
		return nil, err
	}
	if err == nil {
		if t := s.svc.AuthenticateCached(value); t != nil {
			s.authOK.Inc()
			return t, nil
		}
	}
	ip := throttleKey(tokend.ClientAddr(r.Context()))
	limit := s.opts.AuthFailureLimit
	if d := s.failures.Take(ip, limit, now); !d.Allowed {
		s.authThrottled.Inc()
		s.limitedAddress.Inc()
		w.Header().Set("Retry-After", seconds(d.RetryAfter))
		return nil, errThrottled
	}
	var caller *tokend.Token
	if err == nil {
		caller, err = s.svc.Authenticate(r.Context(), value)
	}
	if err != nil {
		var e *tokend.Error
		switch {
		case !errors.As(err, &e) || e.Code != tokend.EUNAUTHORIZED:
			s.failures.Refund(ip, limit, now) // the store failed, not the client
		case e.Reason == "expired_api_key":
			s.authExpired.Inc()
		default:
			s.authInvalid.Inc()
		}
		return nil, err
	}
	s.failures.Refund(ip, limit, now)
	s.authOK.Inc()
	return caller, nil
}

// throttleKey is what the failed-authentication throttle counts: the client's
// IPv4 address, or its IPv6 /64, since one IPv6 client usually holds a whole
// /64 and could otherwise guess from a fresh address each time.
func throttleKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil || ip.Unmap().Is4() {
		return addr
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return addr
	}
	return p.String()
}

// rateLimit spends one request of the caller's account and environment and
// sets the X-RateLimit headers; over the limit it is ERATELIMITED with Retry-After.
func (s *Server) rateLimit(w http.ResponseWriter, caller *tokend.Token, now time.Time) error {
	limit := caller.AccountLimit
	test := caller.Environment == tokend.Test
	if test {
		limit *= s.opts.TestRateMultiplier
	}
	d := s.limits.Take(limitKey{caller.AccountID, test}, limit, now)
	setRateHeaders(w.Header(), d)
	if !d.Allowed {
		s.limitedAccount.Inc()
		w.Header().Set("Retry-After", seconds(d.RetryAfter))
		return errRateLimited
	}
	return nil
}

// The rate-limit headers in canonical form, so that setting them skips
// canonicalization on every request (clients read headers case-insensitively).
const (
	headerLimit     = "X-Ratelimit-Limit"
	headerRemaining = "X-Ratelimit-Remaining"
	headerReset     = "X-Ratelimit-Reset"
)

func setRateHeaders(h http.Header, d ratelimit.Decision) {
	v := []string{strconv.Itoa(d.Limit), strconv.Itoa(d.Remaining), seconds(d.Reset)} // one allocation for three headers
	h[headerLimit], h[headerRemaining], h[headerReset] = v[0:1:1], v[1:2:2], v[2:3:3]
}

// seconds renders a duration as whole seconds, rounded up.
func seconds(d time.Duration) string {
	return strconv.Itoa(int(math.Ceil(d.Seconds())))
}

// sweepLimiters forgets rested limiter keys about once a minute, so that
// memory stays bounded by the clients of the last minute.
func (s *Server) sweepLimiters(now time.Time) {
	last := s.swept.Load()
	if now.Unix()-last < 60 || !s.swept.CompareAndSwap(last, now.Unix()) {
		return
	}
	go func() {
		s.failures.Sweep(now)
		s.limits.Sweep(now)
	}()
}

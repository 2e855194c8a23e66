package api

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend"
	"github.com/tokend/tokend/internal/ratelimit"
)

type callerKey struct{}

// callerSlot carries the authenticated token back out to ServeHTTP's accounting.
type callerSlot struct{ token *tokend.Token }

var (
	errNoCredentials = &tokend.Error{Code: tokend.EUNAUTHORIZED, Message: "Missing API token: send it as Api-Token or Authorization: Bearer", Reason: "missing_api_key"}
	errBadScheme     = &tokend.Error{Code: tokend.EUNAUTHORIZED, Message: "The Authorization header must use the Bearer scheme", Reason: "invalid_api_key"}
	errTwoTokens     = &tokend.Error{Code: tokend.EUNAUTHORIZED, Message: "The Api-Token and Authorization headers carry different tokens", Reason: "invalid_api_key"}
	errRateLimited   = tokend.Errorf(tokend.ERATELIMITED, "Rate limit exceeded")
)

// credential returns the token value a request presents in Api-Token or
// Authorization: Bearer. When both carry a token they must agree.
func credential(r *http.Request) (string, error) {
	var header, bearer string
	if vs := r.Header.Values("Api-Token"); len(vs) > 0 {
		header = strings.TrimSpace(vs[0])
		for _, v := range vs[1:] {
			if strings.TrimSpace(v) != header {
				return "", errTwoTokens
			}
		}
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, value, ok := strings.Cut(strings.TrimSpace(auth), " ")
		switch {
		case ok && strings.EqualFold(scheme, "Bearer"):
			bearer = strings.TrimSpace(value)
		case header == "":
			return "", errBadScheme
		}
		// Another scheme (Basic for a proxy, say) beside Api-Token carries no token.
	}
	switch {
	case header == "" && bearer == "":
		return "", errNoCredentials
	case header != "" && bearer != "" && header != bearer:
		return "", errTwoTokens
	case header != "":
		return header, nil
	}
	return bearer, nil
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
			if slot, ok := r.Context().Value(callerKey{}).(*callerSlot); ok {
				slot.token = caller
			}
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

// authenticate returns the caller. A client address that has failed
// authentication too often in the last minute gets 429 before its token is
// even looked at, so guessing is pointless; other addresses are unaffected.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request, now time.Time) (*tokend.Token, error) {
	value, err := credential(r)
	if err == errNoCredentials {
		s.authMissing.Inc()
		return nil, err
	}
	ip := tokend.ClientAddr(r.Context())
	if d := s.failures.Peek(ip, s.opts.AuthFailureLimit, now); !d.Allowed {
		s.authThrottled.Inc()
		s.limitedAddress.Inc()
		w.Header().Set("Retry-After", seconds(d.RetryAfter))
		return nil, errRateLimited
	}
	var caller *tokend.Token
	if err == nil {
		caller, err = s.svc.Authenticate(r.Context(), value)
	}
	if err != nil {
		var e *tokend.Error
		if tokend.ErrorCode(err) == tokend.EUNAUTHORIZED {
			s.failures.Take(ip, s.opts.AuthFailureLimit, now)
			if errors.As(err, &e) && e.Reason == "expired_api_key" {
				s.authExpired.Inc()
			} else {
				s.authInvalid.Inc()
			}
		}
		return nil, err
	}
	s.authOK.Inc()
	return caller, nil
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

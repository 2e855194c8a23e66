package api

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tokend/tokend"
)

// requestCredential is what r presents to prove who it is.
func requestCredential(r *http.Request) tokend.Credential {
	// Canonical keys, read without canonicalizing on every request.
	return tokend.Credential{APIToken: r.Header["Api-Token"], Authorization: r.Header["Authorization"]}
}

// credential returns the one token value r presents (see tokend.Credential.Value).
func credential(r *http.Request) (string, error) { return requestCredential(r).Value() }

// authedHandler is a handler that runs on behalf of an authenticated token.
type authedHandler func(w http.ResponseWriter, r *http.Request, caller *tokend.Token) error

// errorWriter writes an error in one wire format.
type errorWriter func(w http.ResponseWriter, r *http.Request, err error)

// authed runs h for a verified caller of the management API, writing errors
// in its format.
func (s *Server) authed(h authedHandler) http.Handler { return s.authedAs(s.writeError, h) }

// authedAs verifies the request, sets the rate-limit headers, checks that an
// {account_id} in the path is the caller's own (404 otherwise, so other
// accounts stay invisible), runs h, and writes any error with writeErr.
func (s *Server) authedAs(writeErr errorWriter, h authedHandler) http.Handler {
	return s.authedHow(writeErr, true, h)
}

// authedUncharged is authed for a handler that charges the plan limit itself
// (POST /api/verify charges the verified token instead of its caller).
func (s *Server) authedUncharged(h authedHandler) http.Handler {
	return s.authedHow(s.writeError, false, h)
}

func (s *Server) authedHow(writeErr errorWriter, charge bool, h authedHandler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, err := s.verify(w, r, charge)
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
			writeErr(w, r, err)
		}
	})
}

// verify asks the Verifier about r (spending a request of the caller's plan
// limit when charge is set), counts the outcome, and sets what every wire
// format shares: the rate-limit headers, Retry-After, and no-store on
// anything an authenticated caller gets back (it may hold token values or
// private data). It returns the caller, or the error to answer with.
func (s *Server) verify(w http.ResponseWriter, r *http.Request, charge bool) (*tokend.Token, error) {
	var d tokend.Decision
	if charge {
		d = s.verifier.Verify(r.Context(), requestCredential(r), tokend.ClientAddr(r.Context()))
	} else {
		d = s.verifier.Authenticate(r.Context(), requestCredential(r), tokend.ClientAddr(r.Context()))
	}
	return s.decided(w, r, d)
}

// decided applies the Verifier's decision d about r as verify describes.
func (s *Server) decided(w http.ResponseWriter, r *http.Request, d tokend.Decision) (*tokend.Token, error) {
	h := w.Header()
	if d.Token != nil {
		if st, ok := r.Context().Value(stateKey{}).(*requestState); ok {
			st.token = d.Token
		}
		h[headerCache] = noStore
	}
	if d.LimitSet {
		setRateHeaders(h, d.Limit)
	}
	if d.RetryAfter > 0 {
		h.Set("Retry-After", seconds(d.RetryAfter))
	}
	switch d.Outcome {
	case tokend.VerifiedOK:
		s.authOK.Inc()
	case tokend.VerifyMissing:
		s.authMissing.Inc()
	case tokend.VerifyInvalid:
		s.authInvalid.Inc()
	case tokend.VerifyExpired:
		s.authExpired.Inc()
	case tokend.VerifyIPRefused:
		s.authIPRefused.Inc()
	case tokend.VerifyThrottled:
		s.authThrottled.Inc()
		s.limitedAddress.Inc()
	case tokend.VerifyRateLimited:
		s.authOK.Inc()
		s.limitedAccount.Inc()
	}
	if d.Err != nil {
		return nil, d.Err
	}
	return d.Token, nil
}

// The rate-limit headers in canonical form, so that setting them skips
// canonicalization on every request (clients read headers case-insensitively).
const (
	headerLimit     = "X-Ratelimit-Limit"
	headerRemaining = "X-Ratelimit-Remaining"
	headerReset     = "X-Ratelimit-Reset"
)

func setRateHeaders(h http.Header, d tokend.LimitDecision) {
	v := []string{strconv.Itoa(d.Limit), strconv.Itoa(d.Remaining), seconds(d.Reset)} // one allocation for three headers
	h[headerLimit], h[headerRemaining], h[headerReset] = v[0:1:1], v[1:2:2], v[2:3:3]
}

// seconds renders a duration as whole seconds, rounded up.
func seconds(d time.Duration) string { return strconv.Itoa(ceilSeconds(d)) }

// ceilSeconds is d in whole seconds, rounded up.
func ceilSeconds(d time.Duration) int { return int(math.Ceil(d.Seconds())) }

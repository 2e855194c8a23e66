package tokend

import "time"

// Guards are the conditions a token sets on its own use, checked on every
// request by every verifier from what it holds in memory: tokend's own
// (Verifier, through Service.Authenticate) and the middleware's and
// gateway's in front of a remote tokend, which build them from tokend's
// answer. A new condition on a token is added here, to the facts and to
// Admit, and every way in enforces it.
type Guards struct {
	// ExpiresAt is when the token stops working; nil for never.
	ExpiresAt *time.Time
}

// Guards returns t's guards.
func (t *Token) Guards() Guards { return Guards{ExpiresAt: t.ExpiresAt} }

// ErrExpiredToken refuses a token past its expiry.
var ErrExpiredToken = errExpiredToken

// Admit returns nil when a request at now may use the token, and otherwise
// the refusal: ErrExpiredToken (EUNAUTHORIZED, reason expired_api_key) once
// it has expired.
func (g Guards) Admit(now time.Time) error {
	if g.ExpiresAt != nil && !now.Before(*g.ExpiresAt) {
		return errExpiredToken
	}
	return nil
}

package tokend

// Signing in: a password checked under limits that bound guessing without
// letting strangers lock a person out.

import (
	"context"
	"fmt"
	"time"
)

// Sign-in attempts a minute (each a sliding limit, as every limit of
// tokend). One address is bounded whatever emails it tries, and one email
// from one address is bounded at a person's typing: neither lets a stranger
// lock a person out from where that person signs in. Guessing one password
// from many addresses at once is bounded by a ceiling per email far above
// anything a person types, 30 addresses' worth; reaching it raises an alert
// (alert.signin_ceiling), because then the email's owner is refused too, for
// as long as the guessing goes on.
const (
	SignInsPerAddress      = 20  // per client address (an IPv6 /64), over every email
	SignInsPerAddressEmail = 10  // per email from one client address
	SignInsPerEmail        = 300 // per email from every address: the ceiling
)

// ActionSignInCeiling is the alert raised when an email's sign-in attempts
// reach SignInsPerEmail; at most once an hour per email and instance.
const ActionSignInCeiling = ActionAlertPrefix + "signin_ceiling"

// AnnounceAlerts makes the sign-in alerts go out as the other alerts do:
// alert returns the jobs that announce one (a webhook delivery), written in
// the transaction that records it, and alerted is told once they are
// committed. Without it, the alerts are in the audit log only.
func (u *Users) AnnounceAlerts(alert func(e *AuditEvent) ([]*Job, error), alerted func()) {
	u.alert, u.alertsOut = alert, alerted
}

// SignedIn is a new session: Value goes in the cookie, and exists nowhere else.
type SignedIn struct {
	Value string
	User  *User
}

// SignIn checks an email and password. Attempts are throttled before
// anything is checked: per client address, per email from that address, and
// per email from everywhere under a ceiling (see SignInsPerAddress), so that
// one address guesses slowly whatever it tries, strangers cannot lock a
// person out from their own address, and many addresses together stay
// bounded (with an alert when they reach the ceiling). The answer is the
// same for an unknown email and a wrong password, and takes the same work.
func (u *Users) SignIn(ctx context.Context, email, password, client string) (*SignedIn, error) {
	email = normalizeEmail(email)
	now := u.svc.now()
	u.sweep(now)
	addr := "addr " + ThrottleKey(client)
	if ok, _ := u.allow(ctx, addr, SignInsPerAddress); !ok {
		return nil, errSignInThrottle
	}
	if len(email) > maxAddressLength || len(password) > maxPassword {
		return nil, errSignIn // no such user can exist: nothing to look up or remember
	}
	if ok, _ := u.allow(ctx, addr+" email "+email, SignInsPerAddressEmail); !ok {
		return nil, errSignInThrottle
	}
	// Only attempts within the per-address limits reach the ceiling.
	if ok, checked := u.allow(ctx, "email "+email, SignInsPerEmail); !ok {
		if checked {
			u.ceilingReached(ctx, email, now)
		}
		return nil, errSignInThrottle
	}
	// Hashing costs 19 MiB and tens of milliseconds: only a few at once.
	select {
	case u.hashing <- struct{}{}:
		defer func() { <-u.hashing }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var user *User
	err := u.store.Read(ctx, func(tx Tx) error {
		var err error
		user, err = tx.UserByEmail(ctx, email)
		return err
	})
	switch {
	case ErrorCode(err) == ENOTFOUND:
		checkPassword(dummyHash, password) // the same work as a wrong password
		return nil, errSignIn
	case err != nil:
		return nil, err
	case !checkPassword(user.PasswordHash, password):
		return nil, errSignIn
	}
	value, hash := newSecret()
	s := &Session{Hash: hash, UserID: user.ID, CreatedAt: now, LastSeenAt: now, ExpiresAt: now.Add(SessionLifetime)}
	if err := u.store.Write(ctx, func(tx Tx) error { return tx.CreateSession(ctx, s) }); err != nil {
		return nil, err
	}
	return &SignedIn{Value: value, User: user}, nil
}

// allow spends one sign-in attempt of key. checked is false when the limits
// could not be asked; the attempt is then refused.
func (u *Users) allow(ctx context.Context, key string, limit int) (ok, checked bool) {
	d, err := take(ctx, u.limits, "signin:"+key, limit)
	return err == nil && d.Allowed, err == nil
}

// ceilingReached raises the alert that an email's sign-in attempts reached
// the ceiling, unless this instance raised it for the email within the
// hour: in the audit log of the email's account (with no account when no
// user has it), and through the alert jobs when they are set up. An alert
// that could not be recorded is tried again at the next attempt; the
// attempt is refused either way.
func (u *Users) ceilingReached(ctx context.Context, email string, now time.Time) {
	if !u.alerted.Take(email, 1, now).Allowed {
		return
	}
	e := &AuditEvent{At: now, Actor: "tokend", Action: ActionSignInCeiling, TargetType: "email", ClientAddr: ClientAddr(ctx),
		Details: map[string]any{"email": email, "limit": SignInsPerEmail, "window_seconds": 60,
			"message": fmt.Sprintf("Sign-in attempts for %s reached the ceiling of %d a minute from all addresses together: "+
				"someone is likely guessing its password from many addresses; further attempts, its owner's too, are refused "+
				"while this goes on", email, SignInsPerEmail)}}
	var follow []*Job
	err := u.store.Write(ctx, func(tx Tx) error {
		if user, err := tx.UserByEmail(ctx, email); err == nil {
			e.AccountID, e.TargetType, e.TargetID = user.AccountID, "user", user.ID
		} else if ErrorCode(err) != ENOTFOUND {
			return err
		}
		if u.alert != nil {
			var err error
			if follow, err = u.alert(e); err != nil {
				return err
			}
		}
		return u.svc.recordEvent(ctx, tx, e, follow...)
	})
	if err != nil {
		u.alerted.Refund(email, 1, now)
		return
	}
	if len(follow) > 0 && u.alertsOut != nil {
		u.alertsOut()
	}
}

// ShareLimits makes the sign-in throttle count in l: the application's
// limits, shared across instances when it has Redis. Whoever gives them
// sweeps them.
func (u *Users) ShareLimits(l Limits) { u.limits = l }

// sweep forgets rested sign-in limiter keys about once a minute, so that
// memory stays bounded by the attempts of the last minute.
func (u *Users) sweep(now time.Time) {
	last := u.swept.Load()
	if now.Unix()-last < 60 || !u.swept.CompareAndSwap(last, now.Unix()) {
		return
	}
	u.local.Sweep(now)
	u.alerted.Sweep(now)
}

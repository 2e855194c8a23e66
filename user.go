package tokend

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/tokend/tokend/internal/ratelimit"
)

// User is a person who signs in to the dashboard. A user belongs to one
// account with a role on it (Admin or Viewer) and acts under exactly the rules
// a token with that permission on the account does: see Principal.
type User struct {
	ID           int64
	AccountID    int64
	Email        string
	Name         string
	Role         AccessLevel
	PasswordHash string // argon2id, in the PHC string format
	CreatedAt    time.Time
}

// Principal is the caller a user acts as: a token-shaped principal with the
// user's role on its account and no token ID, so every rule written for
// tokens (visibility, no escalation, the last domain token) applies to people
// unchanged. Tokens it creates are created by the user's name.
func (u *User) Principal() *Token {
	return &Token{
		AccountID: u.AccountID, UserID: u.ID, Name: u.DisplayName(), Environment: Live,
		Permissions: []Permission{{ResourceType: ResourceAccount, ResourceID: u.AccountID, Level: u.Role}},
	}
}

// DisplayName is how the user appears as an actor: "Name (email)", or the
// email alone.
func (u *User) DisplayName() string {
	if u.Name == "" {
		return u.Email
	}
	return u.Name + " (" + u.Email + ")"
}

// Session is a signed-in browser. Its value lives in a cookie; the store
// keeps only its SHA-256.
type Session struct {
	Hash       []byte
	UserID     int64
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time // the absolute end; idle expiry is LastSeenAt + the idle limit
}

// Invite is a one-time link to set up a user of an account with a role.
type Invite struct {
	Hash      []byte
	AccountID int64
	Role      AccessLevel
	CreatedAt time.Time
	ExpiresAt time.Time
}

// UserTx is the users part of a transaction.
type UserTx interface {
	// CreateUser inserts u and sets its ID; an email already taken (by anyone,
	// in any case) is EINVALID on "email".
	CreateUser(ctx context.Context, u *User) error
	User(ctx context.Context, id int64) (*User, error)
	// UserByEmail looks a user up by email, whatever its case.
	UserByEmail(ctx context.Context, email string) (*User, error)
	// Users lists the users of an account (0: of every account), in ID order.
	Users(ctx context.Context, accountID int64) ([]User, error)
	// DeleteUser deletes a user and its sessions.
	DeleteUser(ctx context.Context, id int64) error
	// SetUserPassword replaces a user's password hash and ends its sessions.
	SetUserPassword(ctx context.Context, id int64, hash string) error

	CreateSession(ctx context.Context, s *Session) error
	Session(ctx context.Context, hash []byte) (*Session, error)
	TouchSession(ctx context.Context, hash []byte, at time.Time) error
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteSessionsBefore deletes sessions whose absolute end, or last use
	// plus idle, is before now.
	DeleteSessionsBefore(ctx context.Context, now time.Time, idle time.Duration) error

	CreateInvite(ctx context.Context, inv *Invite) error
	Invite(ctx context.Context, hash []byte) (*Invite, error)
	DeleteInvite(ctx context.Context, hash []byte) error
}

// Session bounds.
const (
	SessionIdle     = 12 * time.Hour
	SessionLifetime = 7 * 24 * time.Hour
	inviteLifetime  = 7 * 24 * time.Hour
	minPassword     = 10
	maxPassword     = 1024
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

// Users is the people capability: users, their passwords and sessions.
type Users struct {
	svc      *Service
	store    Store
	attempts *ratelimit.Limiter[string]
	alerted  *ratelimit.Limiter[string] // emails whose ceiling alert this instance raised within the hour
	shared   SharedLimits               // when set, the throttle counts across instances
	swept    atomic.Int64               // unix seconds of the last limiter sweep
	hashing  chan struct{}              // bounds the password hashes computed at once

	// alert returns the jobs that announce an alert (a webhook delivery),
	// recorded with it; alertsOut is told after they were committed. Both
	// may be nil.
	alert     func(e *AuditEvent) ([]*Job, error)
	alertsOut func()
}

// Users returns the service's users capability.
func (s *Service) Users() *Users { return s.users }

func newUsers(s *Service) *Users {
	return &Users{svc: s, store: s.store, attempts: ratelimit.New[string](time.Minute), alerted: ratelimit.New[string](time.Hour),
		hashing: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
}

// AnnounceAlerts makes the sign-in alerts go out as the other alerts do:
// alert returns the jobs that announce one (a webhook delivery), written in
// the transaction that records it, and alerted is told once they are
// committed. Without it, the alerts are in the audit log only.
func (u *Users) AnnounceAlerts(alert func(e *AuditEvent) ([]*Job, error), alerted func()) {
	u.alert, u.alertsOut = alert, alerted
}

var (
	errSignIn         = &Error{Code: EUNAUTHORIZED, Message: "Wrong email or password", Reason: "invalid_credentials"}
	errSessionEnded   = &Error{Code: EUNAUTHORIZED, Message: "Your session has ended: sign in again", Reason: "session_expired"}
	errSignInThrottle = &Error{Code: ERATELIMITED, Message: "Too many sign-in attempts: wait a minute and try again", Reason: "signin_throttled"}
	errInvite         = Errorf(ENOTFOUND, "This link is not valid any more: ask an operator for a new one")
)

// NewUser is what an operator or an invite creates a user with.
type NewUser struct {
	AccountID int64
	Email     string
	Name      string
	Role      AccessLevel
	Password  string
}

func normalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (n *NewUser) validate() error {
	var fe FieldErrors
	n.Email, n.Name = normalizeEmail(n.Email), strings.TrimSpace(n.Name)
	if n.Email == "" {
		fe.Add("email", "can't be blank")
	} else if len(n.Email) > maxAddressLength || !validAddrSpec(n.Email) {
		fe.Add("email", "is not a valid email address")
	}
	if n.Name != "" {
		validateName(&fe, "name", n.Name)
	}
	if !n.Role.Valid() {
		fe.Add("role", "must be admin or viewer")
	}
	validatePassword(&fe, n.Password)
	return fe.Err()
}

func validatePassword(fe *FieldErrors, p string) {
	switch n := utf8.RuneCountInString(p); {
	case n < minPassword:
		fe.Add("password", fmt.Sprintf("is too short (minimum is %d characters)", minPassword))
	case len(p) > maxPassword:
		fe.Add("password", fmt.Sprintf("is too long (maximum is %d bytes)", maxPassword))
	}
}

// newUser validates n and hashes its password, outside any transaction.
func (u *Users) newUser(n NewUser) (*User, error) {
	if err := n.validate(); err != nil {
		return nil, err
	}
	hash, err := hashPassword(n.Password)
	if err != nil {
		return nil, err
	}
	return &User{AccountID: n.AccountID, Email: n.Email, Name: n.Name, Role: n.Role, PasswordHash: hash, CreatedAt: u.svc.now()}, nil
}

// Create creates a user, for operators (the CLI) and invites.
func (u *Users) Create(ctx context.Context, n NewUser) (*User, error) {
	user, err := u.newUser(n)
	if err != nil {
		return nil, err
	}
	err = u.store.Write(ctx, func(tx Tx) error {
		if _, err := tx.Account(ctx, n.AccountID); err != nil {
			return err
		}
		if err := tx.CreateUser(ctx, user); err != nil {
			return err
		}
		return u.svc.audit(ctx, tx, n.AccountID, nil, "tokend", ActionUserCreated, "user", user.ID,
			map[string]any{"email": user.Email, "role": roleName(user.Role)})
	})
	if err != nil {
		return nil, err
	}
	return user, nil
}

func roleName(l AccessLevel) string {
	if l == Admin {
		return "admin"
	}
	return "viewer"
}

// ParseRole reads "admin" or "viewer".
func ParseRole(s string) (AccessLevel, bool) {
	switch s {
	case "admin":
		return Admin, true
	case "viewer":
		return Viewer, true
	}
	return NoAccess, false
}

// Delete deletes a user, ending its sessions at once; for operators.
func (u *Users) Delete(ctx context.Context, id int64) (*User, error) {
	var out *User
	err := u.store.Write(ctx, func(tx Tx) error {
		var err error
		if out, err = tx.User(ctx, id); err != nil {
			return err
		}
		if err := tx.DeleteUser(ctx, id); err != nil {
			return err
		}
		return u.svc.audit(ctx, tx, out.AccountID, nil, "tokend", ActionUserDeleted, "user", id, map[string]any{"email": out.Email})
	})
	return out, err
}

// SetPassword replaces a user's password and ends every session it has; for
// operators (a forgotten or leaked password).
func (u *Users) SetPassword(ctx context.Context, id int64, password string) (*User, error) {
	var fe FieldErrors
	validatePassword(&fe, password)
	if err := fe.Err(); err != nil {
		return nil, err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return nil, err
	}
	var out *User
	err = u.store.Write(ctx, func(tx Tx) error {
		var err error
		if out, err = tx.User(ctx, id); err != nil {
			return err
		}
		if err := tx.SetUserPassword(ctx, id, hash); err != nil {
			return err
		}
		return u.svc.audit(ctx, tx, out.AccountID, nil, "tokend", ActionUserPasswordSet, "user", id, map[string]any{"email": out.Email})
	})
	return out, err
}

// List returns every user, for operators.
func (u *Users) List(ctx context.Context) ([]User, error) {
	var out []User
	err := u.store.Read(ctx, func(tx Tx) error {
		var err error
		out, err = tx.Users(ctx, 0)
		return err
	})
	return out, err
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
	if ok, _ := u.allow(ctx, addr, SignInsPerAddress, now); !ok {
		return nil, errSignInThrottle
	}
	if len(email) > maxAddressLength || len(password) > maxPassword {
		return nil, errSignIn // no such user can exist: nothing to look up or remember
	}
	if ok, _ := u.allow(ctx, addr+" email "+email, SignInsPerAddressEmail, now); !ok {
		return nil, errSignInThrottle
	}
	// Only attempts within the per-address limits reach the ceiling.
	if ok, checked := u.allow(ctx, "email "+email, SignInsPerEmail, now); !ok {
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

// allow spends one sign-in attempt of key: across instances when limits are
// shared, in memory otherwise. checked is false when the shared limits could
// not be asked; the attempt is then refused.
func (u *Users) allow(ctx context.Context, key string, limit int, now time.Time) (ok, checked bool) {
	if u.shared != nil {
		d, err := u.shared.Take(ctx, "signin:"+key, limit)
		return err == nil && d.Allowed, err == nil
	}
	return u.attempts.Take(key, limit, now).Allowed, true
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

// ShareLimits makes the sign-in throttle count across instances.
func (u *Users) ShareLimits(l SharedLimits) { u.shared = l }

// sweep forgets rested sign-in limiter keys about once a minute, so that
// memory stays bounded by the attempts of the last minute.
func (u *Users) sweep(now time.Time) {
	last := u.swept.Load()
	if now.Unix()-last < 60 || !u.swept.CompareAndSwap(last, now.Unix()) {
		return
	}
	u.attempts.Sweep(now)
	u.alerted.Sweep(now)
}

// Authenticate returns the user a session cookie value belongs to, and the
// principal it acts as. An unknown, idle or expired session is EUNAUTHORIZED.
// Use moves the idle limit forward, at most once a minute per session.
func (u *Users) Authenticate(ctx context.Context, value string) (*User, *Token, error) {
	hash, ok := secretHash(value)
	if !ok {
		return nil, nil, errSessionEnded
	}
	now := u.svc.now()
	var user *User
	var acct *Account
	var touch bool
	err := u.store.Read(ctx, func(tx Tx) error {
		s, err := tx.Session(ctx, hash)
		if ErrorCode(err) == ENOTFOUND {
			return errSessionEnded
		} else if err != nil {
			return err
		}
		if !now.Before(s.ExpiresAt) || !now.Before(s.LastSeenAt.Add(SessionIdle)) {
			return errSessionEnded
		}
		touch = now.Sub(s.LastSeenAt) >= time.Minute
		user, err = tx.User(ctx, s.UserID)
		if ErrorCode(err) == ENOTFOUND {
			return errSessionEnded
		} else if err != nil {
			return err
		}
		acct, err = tx.Account(ctx, user.AccountID)
		if ErrorCode(err) == ENOTFOUND {
			return errSessionEnded
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if touch {
		if err := u.store.Write(ctx, func(tx Tx) error { return tx.TouchSession(ctx, hash, now) }); err != nil {
			return nil, nil, err
		}
	}
	// A person spends their account's limits, as its tokens do.
	p := user.Principal()
	p.AccountLimit, p.AccountMessageLimit = acct.RateLimit, acct.MessageLimit
	return user, p, nil
}

// SignOut ends a session.
func (u *Users) SignOut(ctx context.Context, value string) error {
	hash, ok := secretHash(value)
	if !ok {
		return nil
	}
	return u.store.Write(ctx, func(tx Tx) error {
		if err := tx.DeleteSession(ctx, hash); err != nil && ErrorCode(err) != ENOTFOUND {
			return err
		}
		return nil
	})
}

// Invite makes a one-time link secret to set up a user of accountID with role.
func (u *Users) Invite(ctx context.Context, accountID int64, role AccessLevel) (string, error) {
	value, hash := newSecret()
	now := u.svc.now()
	inv := &Invite{Hash: hash, AccountID: accountID, Role: role, CreatedAt: now, ExpiresAt: now.Add(inviteLifetime)}
	if err := u.store.Write(ctx, func(tx Tx) error { return tx.CreateInvite(ctx, inv) }); err != nil {
		return "", err
	}
	return value, nil
}

// CheckInvite reports whether an invite link secret still works.
func (u *Users) CheckInvite(ctx context.Context, value string) (*Invite, error) {
	hash, ok := secretHash(value)
	if !ok {
		return nil, errInvite
	}
	var inv *Invite
	err := u.store.Read(ctx, func(tx Tx) error {
		var err error
		inv, err = tx.Invite(ctx, hash)
		if ErrorCode(err) == ENOTFOUND || err == nil && !u.svc.now().Before(inv.ExpiresAt) {
			return errInvite
		}
		return err
	})
	return inv, err
}

// AcceptInvite creates the user an invite is for and uses the invite up.
func (u *Users) AcceptInvite(ctx context.Context, value string, n NewUser) (*User, error) {
	inv, err := u.CheckInvite(ctx, value)
	if err != nil {
		return nil, err
	}
	n.AccountID, n.Role = inv.AccountID, inv.Role
	user, err := u.newUser(n)
	if err != nil {
		return nil, err
	}
	err = u.store.Write(ctx, func(tx Tx) error {
		if err := tx.DeleteInvite(ctx, inv.Hash); ErrorCode(err) == ENOTFOUND {
			return errInvite // used meanwhile
		} else if err != nil {
			return err
		}
		if err := tx.CreateUser(ctx, user); err != nil {
			return err
		}
		return u.svc.audit(ctx, tx, user.AccountID, nil, user.DisplayName(), ActionUserCreated, "user", user.ID,
			map[string]any{"email": user.Email, "role": roleName(user.Role), "by": "invite"})
	})
	if err != nil {
		return nil, err
	}
	return user, nil
}

// PurgeSessions deletes ended sessions.
func (u *Users) PurgeSessions(ctx context.Context) error {
	return u.store.Write(ctx, func(tx Tx) error { return tx.DeleteSessionsBefore(ctx, u.svc.now(), SessionIdle) })
}

// newSecret returns a random secret for a cookie or link, and its hash.
func newSecret() (string, []byte) {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	v := base64.RawURLEncoding.EncodeToString(b)
	h := sha256.Sum256([]byte(v))
	return v, h[:]
}

func secretHash(v string) ([]byte, bool) {
	if len(v) != 43 {
		return nil, false
	}
	h := sha256.Sum256([]byte(v))
	return h[:], true
}

// argon2id parameters: OWASP's second recommendation (19 MiB, 2 passes).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

var dummyHash, _ = hashPassword("not a password anyone has")

func hashPassword(p string) (string, error) {
	salt := make([]byte, 16)
	rand.Read(salt) // never fails (crypto/rand)
	key := argon2.IDKey([]byte(p), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

func checkPassword(hash, p string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &threads); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(p), salt, t, m, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

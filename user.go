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
	// DeleteInvites deletes every invite of an account, and says how many
	// there were.
	DeleteInvites(ctx context.Context, accountID int64) (int, error)
}

// Session bounds.
const (
	SessionIdle     = 12 * time.Hour
	SessionLifetime = 7 * 24 * time.Hour
	inviteLifetime  = 7 * 24 * time.Hour
	minPassword     = 10
	maxPassword     = 1024
)

// Users is the people capability: users, their passwords and sessions.
type Users struct {
	svc     *Service
	store   Store
	limits  Limits                     // the sign-in throttle
	local   *LocalLimits               // the throttle's own limits until ShareLimits
	alerted *ratelimit.Limiter[string] // emails whose ceiling alert this instance raised within the hour
	swept   atomic.Int64               // unix seconds of the last limiter sweep
	hashing chan struct{}              // bounds the password hashes computed at once

	// alert returns the jobs that announce an alert (a webhook delivery),
	// recorded with it; alertsOut is told after they were committed. Both
	// may be nil.
	alert     func(e *AuditEvent) ([]*Job, error)
	alertsOut func()
}

// Users returns the service's users capability.
func (s *Service) Users() *Users { return s.users }

func newUsers(s *Service) *Users {
	local := NewLocalLimits(s.now)
	return &Users{svc: s, store: s.store, limits: local, local: local, alerted: ratelimit.New[string](time.Hour),
		hashing: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
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

// SetupLink is a new invite and its secret: the code of a /setup?code= link,
// shown once (only its hash is stored).
type SetupLink struct {
	Code   string
	Invite Invite
	// Replaced is how many earlier links of the account stopped working.
	Replaced int
}

// IssueSetupLink makes a new one-time link to set up a user of accountID with
// role, for operators: every earlier link of the account stops working, so
// that a link lost, leaked or already used is replaced by issuing another.
// An unknown account is ENOTFOUND; a role other than Admin or Viewer EINVALID.
func (u *Users) IssueSetupLink(ctx context.Context, accountID int64, role AccessLevel, operator string) (*SetupLink, error) {
	if !role.Valid() {
		return nil, Invalid("role", "must be admin or viewer")
	}
	value, hash := newSecret()
	now := u.svc.now()
	link := &SetupLink{Code: value, Invite: Invite{Hash: hash, AccountID: accountID, Role: role, CreatedAt: now, ExpiresAt: now.Add(inviteLifetime)}}
	err := u.store.Write(ctx, func(tx Tx) error {
		if _, err := tx.Account(ctx, accountID); err != nil {
			return err
		}
		n, err := tx.DeleteInvites(ctx, accountID)
		if err != nil {
			return err
		}
		link.Replaced = n
		if err := tx.CreateInvite(ctx, &link.Invite); err != nil {
			return err
		}
		return u.svc.audit(ctx, tx, accountID, nil, operator, ActionSetupLinkIssued, "account", accountID,
			map[string]any{"role": roleName(role), "expires_at": link.Invite.ExpiresAt, "replaced": n})
	})
	if err != nil {
		return nil, err
	}
	return link, nil
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

package tokend

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/tokend/tokend/apikey"
)

// Options configures a Service. Zero durations mean what the field says.
type Options struct {
	// ResetGrace is how long a reset token keeps working (12 h by default).
	ResetGrace time.Duration
	// PurgeAfter bounds how long an expired token stays listed before it is deleted.
	PurgeAfter time.Duration
	// DefaultTTL is the lifetime of tokens created without expires_at; 0 means they never expire.
	DefaultTTL time.Duration
	// Format generates and parses token values.
	Format apikey.Format
	// Now is the clock; time.Now if nil.
	Now func() time.Time
	// DisableAuthCache makes every authentication a store lookup, for comparison.
	DisableAuthCache bool
	// Keyring seals the DKIM keys of sending domains. Nil means a random key
	// that lives as long as the process: keys sealed with it cannot be opened
	// after a restart, so servers always set one.
	Keyring *Keyring
	// DKIMKeyBits is the size of the RSA keys made for sending domains
	// (default 2048; tests may take 1024 to save time).
	DKIMKeyBits int
	// SPF is the SPF mechanism shown in sending domains' DNS records, such as
	// "include:_spf.relay.example"; empty means the domain's "a mx".
	SPF string
}

// Service applies tokend's rules on top of a Store. Every method that takes a
// caller acts on its behalf and reveals nothing outside what the caller can see.
type Service struct {
	store  Store
	opts   Options
	now    func() time.Time
	usage  usageRecorder
	cache  *authCache // nil when disabled
	outbox *Outbox
	users  *Users
	// feed is where this process stands in the auth change log.
	feed changeFeed
	// stream tells subscribers (GET /api/auth_changes) what evict drops.
	stream authStream
}

// NewService returns a Service over store.
func NewService(store Store, opts Options) *Service {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.Keyring == nil {
		key := make([]byte, SecretsKeySize)
		rand.Read(key) // never fails (crypto/rand)
		opts.Keyring, _ = NewKeyring(key)
	}
	s := &Service{store: store, opts: opts, now: func() time.Time { return now().UTC().Truncate(time.Microsecond) }, outbox: newOutbox(store)}
	s.users = newUsers(s)
	if !opts.DisableAuthCache {
		s.cache = newAuthCache()
	}
	return s
}

var (
	errNotFound     = Errorf(ENOTFOUND, "Not Found")
	errBadToken     = &Error{Code: EUNAUTHORIZED, Message: "Incorrect API token", Reason: "invalid_api_key"}
	errExpiredToken = &Error{Code: EUNAUTHORIZED, Message: "API token has expired", Reason: "expired_api_key"}
)

// ResetGrace is how long a reset token keeps working.
func (s *Service) ResetGrace() time.Duration { return s.opts.ResetGrace }

// DefaultTTL is the lifetime of a token created without an expiry; 0: such
// tokens never expire.
func (s *Service) DefaultTTL() time.Duration { return s.opts.DefaultTTL }

// PurgeInterval is how often PurgeExpired should run so that expired tokens are
// gone no later than PurgeAfter after their expiry.
func (s *Service) PurgeInterval() time.Duration {
	return min(max(s.opts.PurgeAfter/4, time.Second), 5*time.Minute)
}

// writeAs runs fn in a write transaction on behalf of caller as it is inside
// that transaction, not as it was when it authenticated: a caller deleted or
// expired since then is EUNAUTHORIZED, and permissions edited since then apply.
func (s *Service) writeAs(ctx context.Context, caller *Token, fn func(tx Tx, caller *Token) error) error {
	return s.store.Write(ctx, func(tx Tx) error {
		// Writes on one account run one after another, so the rules checked
		// in fn (a domain's last token, a reset) see every write before them.
		if err := tx.LockAccount(ctx, caller.AccountID); err != nil {
			return err
		}
		if caller.Operator != "" { // the command line: the account must exist
			if _, err := tx.Account(ctx, caller.AccountID); err != nil {
				return err
			}
			return fn(tx, caller)
		}
		if caller.UserID != 0 { // a person: as the user is now, with its current role
			u, err := tx.User(ctx, caller.UserID)
			if ErrorCode(err) == ENOTFOUND {
				return errSessionEnded
			} else if err != nil {
				return err
			}
			return fn(tx, u.Principal())
		}
		current, err := tx.Token(ctx, caller.ID)
		if ErrorCode(err) == ENOTFOUND {
			return errBadToken
		} else if err != nil {
			return err
		}
		if current.ExpiredAt(s.now()) {
			return errExpiredToken
		}
		return fn(tx, current)
	})
}

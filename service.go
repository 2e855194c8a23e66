package tokend

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

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

// IssuedToken is a token together with its value, which exists only in the
// response that created it.
type IssuedToken struct {
	Token
	Value string
}

// Expiry is an optional expires_at input: when Set is false the server default
// applies; when At is nil the token never expires.
type Expiry struct {
	Set bool
	At  *time.Time
}

// TokenInput is what a caller asks for when creating a token.
type TokenInput struct {
	Name        string
	Permissions []Permission
	Environment Environment // "" means live
	Expiry      Expiry
}

// TokenPatch changes a token's name, its permissions, or both.
type TokenPatch struct {
	Name        *string
	Permissions *[]Permission
}

const (
	maxNameLength    = 255
	maxLifetimeYears = 5
)

var (
	errNotFound     = Errorf(ENOTFOUND, "Not Found")
	errBadToken     = &Error{Code: EUNAUTHORIZED, Message: "Incorrect API token", Reason: "invalid_api_key"}
	errExpiredToken = &Error{Code: EUNAUTHORIZED, Message: "API token has expired", Reason: "expired_api_key"}
)

// Authenticate returns the token whose value is raw. A value that fails the
// format's checksum is rejected before any lookup. Unknown, deleted and expired
// tokens give an EUNAUTHORIZED error. It never writes to the store, and with
// the cache it reads the store only the first time it sees a hash. The token
// returned is shared: callers must not modify it.
func (s *Service) Authenticate(ctx context.Context, raw string) (*Token, error) {
	t, err := s.find(ctx, raw)
	if err != nil {
		return nil, err
	}
	return t, nil
}

// find is Authenticate, except that an expired token is returned together
// with its EUNAUTHORIZED error, for callers that report whose it was.
func (s *Service) find(ctx context.Context, raw string) (*Token, error) {
	env, err := s.opts.Format.Parse(raw)
	if err != nil {
		return nil, errBadToken
	}
	h := apikey.Hash(raw)
	t, cached, err := s.lookup(ctx, &h)
	if err != nil {
		return nil, err
	}
	if string(t.Environment) != env {
		return nil, errBadToken
	}
	if t.ExpiredAt(s.now()) {
		if cached {
			// It will not work again: let it leave memory. Only a cached token is
			// evicted, so replaying an expired token cannot keep bumping the
			// generation and spoil other tokens' refills.
			s.cache.evictToken(t.ID)
		}
		return t, errExpiredToken
	}
	return t, nil
}

// AuthenticateCached returns the token whose value is raw when this process
// has already verified it and it has not expired; otherwise nil, and the caller
// goes through Authenticate. It never reads the store, so it is safe to answer
// before any throttle that protects the store from guessing.
func (s *Service) AuthenticateCached(raw string) *Token {
	if s.cache == nil {
		return nil
	}
	env, err := s.opts.Format.Parse(raw)
	if err != nil {
		return nil
	}
	h := apikey.Hash(raw)
	t, _ := s.cache.get(&h)
	if t == nil || string(t.Environment) != env || t.ExpiredAt(s.now()) {
		return nil
	}
	return t
}

// lookup finds the token with hash h, in the cache when it can, and reports
// whether it came from the cache.
func (s *Service) lookup(ctx context.Context, h *[32]byte) (t *Token, cached bool, err error) {
	if s.cache == nil {
		t, err = s.tokenByHash(ctx, *h)
		return t, false, err
	}
	if t, unknown := s.cache.get(h); t != nil {
		return t, true, nil
	} else if unknown {
		return nil, false, errBadToken
	}
	gen := s.cache.gen.Load()
	t, err = s.tokenByHash(ctx, *h)
	switch {
	case err == errBadToken:
		s.cache.putUnknown(h, gen)
		return nil, false, err
	case err != nil:
		return nil, false, err
	case t.ExpiredAt(s.now()):
		return t, false, nil // not worth caching
	}
	p := principal(t)
	s.cache.put(h, p, gen)
	return p, false, nil
}

// tokenByHash takes the hash by value: passing a pointer on to the store
// would move the caller's hash to the heap on the hot path too.
func (s *Service) tokenByHash(ctx context.Context, h [32]byte) (*Token, error) {
	t, err := s.store.TokenByHash(ctx, h[:])
	if ErrorCode(err) == ENOTFOUND {
		return nil, errBadToken
	} else if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	return t, nil
}

// changed records, inside tx, that the tokens c names must be looked up
// afresh by every process, and sets c.ID. Call evict with c once tx commits.
func (s *Service) changed(ctx context.Context, tx Tx, c *AuthChange) error {
	id, err := tx.AddAuthChange(ctx, *c, s.now())
	c.ID = id
	return err
}

// evict applies changes this process has just committed: it drops what
// they name from this process's cache and tells the change stream's
// subscribers. It runs after the commit, so that a concurrent refill cannot
// read the state before it. A change the feed has applied already is
// skipped, so subscribers hear of each change once.
func (s *Service) evict(changes ...AuthChange) {
	for _, c := range changes {
		if s.feed.claim(c.ID) {
			s.apply(c)
		}
	}
}

// apply drops what c names from the cache and tells the subscribers.
func (s *Service) apply(c AuthChange) {
	if s.cache != nil {
		if c.TokenID != 0 {
			s.cache.evictToken(c.TokenID)
		} else if c.AccountID != 0 {
			s.cache.evictAccount(c.AccountID)
		}
	}
	s.stream.publish(AuthEvent{TokenID: c.TokenID, AccountID: c.AccountID})
}

// issued tells the cache that a new token's hash now exists.
func (s *Service) issued(t *IssuedToken) {
	if s.cache != nil && t != nil {
		var h [32]byte
		copy(h[:], t.Hash)
		s.cache.forgetUnknown(&h)
	}
}

// SyncAuthCache applies the authentication changes other processes (the CLI,
// other instances) recorded since the last sync. Run it every fraction of a
// second; changes made through this Service apply at once without it.
//
// Change IDs need not become visible in order: on PostgreSQL a transaction
// holding ID 10 may commit after one holding 11. So the feed reads from its
// floor, the highest ID below which it has applied everything, applies each
// change it has not applied yet, and moves the floor over an ID still unseen
// only after changeGapWait (a rolled-back transaction's ID never appears).
func (s *Service) SyncAuthCache(ctx context.Context) error {
	if s.cache == nil && !s.stream.active() {
		return nil
	}
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	if err := s.startFeedLocked(ctx); err != nil {
		return err
	}
	for range 100 { // bounded: 100 pages of 10,000 changes
		changes, err := s.store.AuthChangesSince(ctx, s.feed.floor)
		if err != nil {
			return err
		}
		for _, c := range s.feed.take(changes, s.now()) {
			s.apply(c) // the feed's lock is held: not evict, which takes it
		}
		if len(changes) < 10_000 {
			return nil
		}
	}
	return nil
}

// startFeed puts the change feed at the log's end unless it has started.
func (s *Service) startFeed(ctx context.Context) error {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	return s.startFeedLocked(ctx)
}

func (s *Service) startFeedLocked(ctx context.Context) error {
	if s.feed.started {
		return nil
	}
	last, err := s.store.LastAuthChange(ctx)
	if err != nil {
		return fmt.Errorf("start the change feed: %w", err)
	}
	s.feed.floor, s.feed.started = last, true
	return nil
}

// FlushAuthCache forgets every verified token and unknown hash, so that the
// next request of each is looked up afresh: for when this process may have
// missed changes (its change feed has been failing). Subscribers of the
// change stream are told to forget everything too.
func (s *Service) FlushAuthCache() {
	if s.cache != nil {
		s.cache.flush()
	}
	s.stream.publish(AuthEvent{})
}

// changeFeed tracks which auth changes a process has applied.
type changeFeed struct {
	mu      sync.Mutex
	started bool                // floor has been set from the log
	floor   int64               // every ID at or below it is applied or given up on
	applied map[int64]bool      // applied IDs above floor
	missing map[int64]time.Time // IDs above floor not seen yet, since when
}

// claim marks change id, just committed by this process, as applied, so
// that the feed does not apply it a second time; it reports false when the
// feed has applied it already. ID 0 (not recorded in the log) is always
// claimed, and so is everything before the feed starts at the log's end.
func (f *changeFeed) claim(id int64) bool {
	if id == 0 {
		return true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.started {
		return true
	}
	if id <= f.floor || f.applied[id] {
		return false
	}
	if f.applied == nil {
		f.applied, f.missing = map[int64]bool{}, map[int64]time.Time{}
	}
	f.applied[id] = true
	delete(f.missing, id)
	return true
}

// changeGapWait is how long an ID missing below applied ones may still turn
// up: longer than any write transaction runs.
const changeGapWait = time.Minute

// take returns the changes not applied yet and moves the floor up.
func (f *changeFeed) take(changes []AuthChange, now time.Time) []AuthChange {
	if f.applied == nil {
		f.applied, f.missing = map[int64]bool{}, map[int64]time.Time{}
	}
	var fresh []AuthChange
	top := f.floor
	for _, c := range changes {
		if !f.applied[c.ID] && c.ID > f.floor {
			f.applied[c.ID] = true
			delete(f.missing, c.ID)
			fresh = append(fresh, c)
		}
		top = max(top, c.ID)
	}
	for id := f.floor + 1; id < top; id++ {
		if !f.applied[id] {
			if _, ok := f.missing[id]; !ok {
				f.missing[id] = now
			}
		}
	}
	for f.floor < top {
		next := f.floor + 1
		if f.applied[next] {
			delete(f.applied, next)
		} else if since, ok := f.missing[next]; !ok || now.Sub(since) < changeGapWait {
			break
		} else {
			delete(f.missing, next)
		}
		f.floor = next
	}
	return fresh
}

// WarmAuthCache loads every unexpired token into the cache and returns how
// many it loaded. Changes recorded while it runs are applied by the next SyncAuthCache.
func (s *Service) WarmAuthCache(ctx context.Context) (int, error) {
	if s.cache == nil {
		return 0, nil
	}
	last, err := s.store.LastAuthChange(ctx)
	if err != nil {
		return 0, err
	}
	s.feed.mu.Lock()
	s.feed.floor, s.feed.started = last, true
	s.feed.mu.Unlock()
	n := 0
	err = s.store.ForEachToken(ctx, s.now(), func(t *Token) error {
		var h [32]byte
		copy(h[:], t.Hash)
		s.cache.put(&h, principal(t), s.cache.gen.Load())
		n++
		return nil
	})
	return n, err
}

// CachedTokens is how many tokens the authentication cache holds.
func (s *Service) CachedTokens() int {
	if s.cache == nil {
		return 0
	}
	return s.cache.len()
}

// ListTokens returns the tokens the caller can see, in ID order.
func (s *Service) ListTokens(ctx context.Context, caller *Token) ([]Token, error) {
	var out []Token
	err := s.store.Read(ctx, func(tx Tx) error {
		c, err := loadCatalog(ctx, tx, caller.AccountID)
		if err != nil {
			return err
		}
		tokens, err := tx.Tokens(ctx, caller.AccountID)
		if err != nil {
			return err
		}
		out = make([]Token, 0, len(tokens))
		for i := range tokens {
			if c.canSee(caller, &tokens[i]) {
				s.withLastUsed(&tokens[i])
				out = append(out, tokens[i])
			}
		}
		return nil
	})
	return out, err
}

// GetToken returns one token the caller can see, or ENOTFOUND.
func (s *Service) GetToken(ctx context.Context, caller *Token, id int64) (*Token, error) {
	var out *Token
	err := s.store.Read(ctx, func(tx Tx) error {
		var err error
		out, _, err = visibleToken(ctx, tx, caller, id)
		if err == nil {
			s.withLastUsed(out)
		}
		return err
	})
	return out, err
}

// CreateToken creates a token in the caller's account. The caller must be admin
// on every resource granted (account admin for a token with none): EFORBIDDEN
// otherwise. Resources that do not exist in the caller's account are EINVALID.
func (s *Service) CreateToken(ctx context.Context, caller *Token, in TokenInput) (*IssuedToken, error) {
	now := s.now()
	var fe FieldErrors
	name := validateName(&fe, "name", in.Name)
	env := in.Environment
	if env == "" {
		env = Live
		if caller.Environment == Test {
			env = Test // a test key's tokens are test keys unless it says otherwise (and it may not)
		}
	} else if env != Live && env != Test {
		fe.Add("environment", "must be live or test")
	}
	validatePermissions(&fe, in.Permissions)
	expiresAt := s.expiry(&fe, in.Expiry, now)
	if err := fe.Err(); err != nil {
		return nil, err
	}
	var out *IssuedToken
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		if err := caller.mayMint(env); err != nil {
			return err
		}
		c, err := loadCatalog(ctx, tx, caller.AccountID)
		if err != nil {
			return err
		}
		if err := c.checkGrant(caller, in.Permissions, nil); err != nil {
			return err
		}
		out, err = s.issue(ctx, tx, &Token{
			AccountID:   caller.AccountID,
			Name:        name,
			Environment: env,
			CreatedBy:   caller.Name,
			ExpiresAt:   expiresAt,
			Permissions: in.Permissions,
		}, now, "")
		if err != nil {
			return err
		}
		return s.audit(ctx, tx, caller.AccountID, caller, "", ActionTokenCreated, "api_token", out.ID, tokenDetails(&out.Token))
	})
	if err != nil {
		return nil, err
	}
	s.issued(out)
	return out, nil
}

// UpdateToken renames a token or replaces its permissions. The caller must see
// the token (ENOTFOUND otherwise) and grant nothing it is not admin on. Taking
// admin on a domain away from its last active token is EFORBIDDEN.
func (s *Service) UpdateToken(ctx context.Context, caller *Token, id int64, p TokenPatch) (*Token, error) {
	now := s.now()
	var fe FieldErrors
	var name string
	if p.Name != nil {
		name = validateName(&fe, "name", *p.Name)
	}
	if p.Permissions != nil {
		validatePermissions(&fe, *p.Permissions)
	}
	var out *Token
	var change AuthChange // recorded in the transaction, evicted once it commits
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		t, c, err := visibleToken(ctx, tx, caller, id)
		if err != nil {
			return err
		}
		if err := fe.Err(); err != nil {
			return err
		}
		details := map[string]any{}
		if p.Name != nil {
			details["name"] = map[string]any{"from": t.Name, "to": name}
			t.Name = name
		}
		if p.Permissions != nil {
			details["resources"] = map[string]any{"from": permissionDetails(t.Permissions), "to": permissionDetails(*p.Permissions)}
			if err := c.checkGrant(caller, *p.Permissions, t.Permissions); err != nil {
				return err
			}
			if err := s.guardDomains(ctx, tx, c, t, *p.Permissions, now, "remove admin access to"); err != nil {
				return err
			}
			t.Permissions = *p.Permissions
		}
		if err := tx.UpdateToken(ctx, t); err != nil {
			return err
		}
		s.withLastUsed(t)
		out = t
		change = AuthChange{TokenID: t.ID, AccountID: t.AccountID}
		if err := s.changed(ctx, tx, &change); err != nil {
			return err
		}
		return s.audit(ctx, tx, caller.AccountID, caller, "", ActionTokenUpdated, "api_token", t.ID, details)
	})
	if err != nil {
		return nil, err
	}
	s.evict(change)
	return out, nil
}

// DeleteToken deletes a token the caller can see (ENOTFOUND otherwise). The last
// active token with admin on a domain cannot be deleted: EFORBIDDEN.
func (s *Service) DeleteToken(ctx context.Context, caller *Token, id int64) error {
	now := s.now()
	var change AuthChange // recorded in the transaction, evicted once it commits
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		t, c, err := visibleToken(ctx, tx, caller, id)
		if err != nil {
			return err
		}
		if err := s.guardDomains(ctx, tx, c, t, nil, now, "delete"); err != nil {
			return err
		}
		if err := tx.DeleteToken(ctx, id); err != nil {
			return err
		}
		change = AuthChange{TokenID: id, AccountID: caller.AccountID}
		if err := s.changed(ctx, tx, &change); err != nil {
			return err
		}
		return s.audit(ctx, tx, caller.AccountID, caller, "", ActionTokenDeleted, "api_token", id, tokenDetails(t))
	})
	if err != nil {
		return err
	}
	s.evict(change)
	return nil
}

// ResetToken replaces a token the caller can see with a new one holding the
// same permissions and environment, in one transaction. The old token keeps
// working for the reset grace period (or until its own earlier expiry). A token
// already reset or expired is EINVALID.
func (s *Service) ResetToken(ctx context.Context, caller *Token, id int64, expiry Expiry) (*IssuedToken, error) {
	now := s.now()
	var fe FieldErrors
	expiresAt := s.expiry(&fe, expiry, now)
	var out *IssuedToken
	var change AuthChange // recorded in the transaction, evicted once it commits
	err := s.writeAs(ctx, caller, func(tx Tx, caller *Token) error {
		old, _, err := visibleToken(ctx, tx, caller, id)
		if err != nil {
			return err
		}
		switch {
		case old.ResetAt != nil:
			fe.Add("base", "API token has already been reset")
		case old.ExpiredAt(now):
			fe.Add("base", "API token has expired")
		}
		if err := fe.Err(); err != nil {
			return err
		}
		if err := caller.mayMint(old.Environment); err != nil {
			return err
		}
		out, err = s.issue(ctx, tx, &Token{
			AccountID:   old.AccountID,
			Environment: old.Environment,
			CreatedBy:   caller.Name,
			ExpiresAt:   expiresAt,
			Permissions: old.Permissions,
		}, now, baseName(old.Name))
		if err != nil {
			return err
		}
		graceEnd := now.Add(s.opts.ResetGrace)
		if old.ExpiresAt == nil || old.ExpiresAt.After(graceEnd) {
			old.ExpiresAt = &graceEnd
		}
		old.ResetAt = &now
		if err := tx.UpdateToken(ctx, old); err != nil {
			return err
		}
		change = AuthChange{TokenID: old.ID, AccountID: old.AccountID}
		if err := s.changed(ctx, tx, &change); err != nil {
			return err
		}
		details := tokenDetails(&out.Token)
		details["new_token_id"], details["old_token_expires_at"] = out.ID, old.ExpiresAt
		return s.audit(ctx, tx, caller.AccountID, caller, "", ActionTokenReset, "api_token", old.ID, details)
	})
	if err != nil {
		return nil, err
	}
	s.evict(change)
	s.issued(out)
	return out, nil
}

// mayMint says whether t may create (or reset) a token of environment env: a
// test key makes test keys only, so that code holding a test key can never
// come by a key that delivers real mail. Live keys, and people and operators
// acting through the dashboard and CLI, make both.
func (t *Token) mayMint(env Environment) error {
	if t.Environment == Test && env != Test {
		return &Error{Code: EFORBIDDEN, Reason: "environment_not_allowed",
			Message: "A test key can create and reset test keys only: use a live key, the dashboard or the CLI to make a live key"}
	}
	return nil
}

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

// PurgeExpired deletes the tokens that have been expired for long enough that
// waiting for the next run would keep them past PurgeAfter.
func (s *Service) PurgeExpired(ctx context.Context) (int64, error) {
	now := s.now()
	cutoff := now.Add(-max(s.opts.PurgeAfter-s.PurgeInterval(), 0))
	var n int64
	err := s.store.Write(ctx, func(tx Tx) error {
		var err error
		n, err = tx.DeleteTokensExpiredBefore(ctx, cutoff)
		if err != nil {
			return err
		}
		if _, err := tx.DeleteJobsFinishedBefore(ctx, now.Add(-jobRetention)); err != nil {
			return err
		}
		if _, err := tx.DeleteEmailsBefore(ctx, now.Add(-emailRetention)); err != nil {
			return err
		}
		if err := tx.DeleteSessionsBefore(ctx, now, SessionIdle); err != nil {
			return err
		}
		// Every process polls the change log every second or so; an hour is ample.
		return tx.DeleteAuthChangesBefore(ctx, now.Add(-time.Hour))
	})
	return n, err
}

// tokenDetails describes a token for the audit log: never its value or hash.
func tokenDetails(t *Token) map[string]any {
	return map[string]any{"name": t.Name, "environment": t.Environment, "resources": permissionDetails(t.Permissions)}
}

func permissionDetails(perms []Permission) []map[string]any {
	out := make([]map[string]any, len(perms))
	for i, p := range perms {
		out[i] = map[string]any{"resource_type": p.ResourceType, "resource_id": p.ResourceID, "access_level": p.Level}
	}
	return out
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

// issue stores t with a fresh value. With a non-empty base, the token is named
// "<base> token <id>" once its ID is known.
func (s *Service) issue(ctx context.Context, tx Tx, t *Token, now time.Time, base string) (*IssuedToken, error) {
	value, err := s.opts.Format.Generate(string(t.Environment))
	if err != nil {
		return nil, err
	}
	h := apikey.Hash(value)
	t.Hash = h[:]
	t.Last4 = apikey.Last4(value)
	t.CreatedAt = now
	if base != "" {
		t.Name = base
	}
	if err := tx.CreateToken(ctx, t); err != nil {
		return nil, err
	}
	if base != "" {
		t.Name = base + " token " + strconv.FormatInt(t.ID, 10)
		if err := tx.UpdateToken(ctx, t); err != nil {
			return nil, err
		}
	}
	return &IssuedToken{Token: *t, Value: value}, nil
}

// guardDomains refuses a change that leaves a domain without an active admin
// token: target's permissions become after, and every domain target
// administered but no longer would must still have another active admin.
func (s *Service) guardDomains(ctx context.Context, tx Tx, c *catalog, target *Token, after []Permission, now time.Time, verb string) error {
	if !target.activeAt(now) {
		return nil
	}
	var lost []Resource
	for _, d := range c.domainsAdministered(target.Permissions) {
		if LevelOn(after, d) != Admin {
			lost = append(lost, d)
		}
	}
	if len(lost) == 0 {
		return nil
	}
	tokens, err := tx.Tokens(ctx, target.AccountID)
	if err != nil {
		return err
	}
	for _, d := range lost {
		covered := false
		for i := range tokens {
			t := &tokens[i]
			if t.ID != target.ID && t.activeAt(now) && LevelOn(t.Permissions, d) == Admin {
				covered = true
				break
			}
		}
		if !covered {
			return Errorf(EFORBIDDEN, "Cannot %s the last active API token with admin access to domain %s; give another token admin access to the domain first", verb, d.Name)
		}
	}
	return nil
}

// checkGrant decides whether caller may give perms to a token that now holds
// had. Every resource must exist in the caller's account and be readable by
// the caller (EINVALID, with the same message for both, so that nothing tells
// a resource the caller cannot see from one that does not exist); the caller
// must be admin on each resource it grants beyond what the token already had,
// and account admin to leave a token with no permissions (EFORBIDDEN).
func (c *catalog) checkGrant(caller *Token, perms, had []Permission) error {
	var fe FieldErrors
	for _, p := range perms {
		r, ok := c.resolve(p.ResourceType, p.ResourceID)
		readable := r.Type == ResourceAccount || caller.LevelOn(r) >= Viewer || alreadyHeld(had, p) // every token knows its account
		if !ok || !readable {
			fe.Add("resources", fmt.Sprintf("%s %d does not exist", p.ResourceType, p.ResourceID))
		}
	}
	if err := fe.Err(); err != nil {
		return err
	}
	if len(perms) == 0 && !caller.IsAccountAdmin() {
		return Errorf(EFORBIDDEN, "Only an account admin can manage a token without resources")
	}
	for _, p := range perms {
		if alreadyHeld(had, p) {
			continue
		}
		r, _ := c.resolve(p.ResourceType, p.ResourceID)
		if caller.LevelOn(r) != Admin {
			return Errorf(EFORBIDDEN, "You need admin access to %s %d to grant permissions on it", p.ResourceType, p.ResourceID)
		}
	}
	return nil
}

func alreadyHeld(had []Permission, p Permission) bool {
	for _, h := range had {
		if h.ResourceType == p.ResourceType && h.ResourceID == p.ResourceID && h.Level >= p.Level {
			return true
		}
	}
	return false
}

// expiry resolves an expires_at input: the server default when unset, nil for
// never, otherwise a time in the future at most five years away.
func (s *Service) expiry(fe *FieldErrors, e Expiry, now time.Time) *time.Time {
	if !e.Set {
		if s.opts.DefaultTTL > 0 {
			t := now.Add(s.opts.DefaultTTL)
			return &t
		}
		return nil
	}
	if e.At == nil {
		return nil
	}
	t := e.At.UTC().Truncate(time.Microsecond)
	switch {
	case !t.After(now):
		fe.Add("expires_at", "must be in the future")
	case t.After(now.AddDate(maxLifetimeYears, 0, 0)):
		fe.Add("expires_at", fmt.Sprintf("must be at most %d years from now", maxLifetimeYears))
	}
	return &t
}

func validateName(fe *FieldErrors, field, name string) string {
	name = strings.TrimSpace(name)
	switch {
	case name == "":
		fe.Add(field, "can't be blank")
	case utf8.RuneCountInString(name) > maxNameLength:
		fe.Add(field, fmt.Sprintf("is too long (maximum is %d characters)", maxNameLength))
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		fe.Add(field, "must not contain control characters")
	}
	return name
}

func validatePermissions(fe *FieldErrors, perms []Permission) {
	seen := make(map[resourceKey]bool, len(perms))
	for _, p := range perms {
		if !p.Level.Valid() {
			fe.Add("resources", "access_level must be 10 (viewer) or 100 (admin)")
		}
		if p.ResourceID <= 0 {
			fe.Add("resources", "resource_id must be a positive integer")
		}
		k := resourceKey{p.ResourceType, p.ResourceID}
		if seen[k] {
			fe.Add("resources", fmt.Sprintf("%s %d is listed more than once", p.ResourceType, p.ResourceID))
		}
		seen[k] = true
	}
}

var tokenSuffix = regexp.MustCompile(` token \d+$`)

// baseName strips one trailing " token <id>" so that names do not stack on reset.
func baseName(name string) string {
	return tokenSuffix.ReplaceAllString(name, "")
}

func loadCatalog(ctx context.Context, tx Tx, accountID int64) (*catalog, error) {
	rs, err := tx.Resources(ctx, accountID)
	if err != nil {
		return nil, err
	}
	return newCatalog(accountID, rs), nil
}

// visibleToken loads token id if the caller can see it; ENOTFOUND otherwise, so
// that nothing reveals the existence of tokens the caller cannot see.
func visibleToken(ctx context.Context, tx Tx, caller *Token, id int64) (*Token, *catalog, error) {
	t, err := tx.Token(ctx, id)
	if ErrorCode(err) == ENOTFOUND || err == nil && t.AccountID != caller.AccountID {
		return nil, nil, errNotFound
	} else if err != nil {
		return nil, nil, err
	}
	c, err := loadCatalog(ctx, tx, caller.AccountID)
	if err != nil {
		return nil, nil, err
	}
	if !c.canSee(caller, t) {
		return nil, nil, errNotFound
	}
	return t, c, nil
}

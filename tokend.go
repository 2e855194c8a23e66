// Package tokend holds the domain of the API token service: accounts, the
// resources that permissions name, API tokens, the rules that decide who may see
// and change what, and the Store interface that persistence implementations satisfy.
//
// It knows nothing of HTTP or SQL; internal/api and internal/sqlite adapt it.
package tokend

import (
	"context"
	"net/netip"
	"time"
)

// AccessLevel is the level a permission grants: viewers read, admins change.
type AccessLevel int

// The two access levels of the API contract.
const (
	NoAccess AccessLevel = 0
	Viewer   AccessLevel = 10
	Admin    AccessLevel = 100
)

// Valid reports whether l is one of the levels a permission may grant.
func (l AccessLevel) Valid() bool { return l == Viewer || l == Admin }

// ResourceType names a kind of resource a permission can refer to.
type ResourceType string

// Resource types. An account contains projects and domains; a project contains sandboxes.
const (
	ResourceAccount ResourceType = "account"
	ResourceProject ResourceType = "project"
	ResourceSandbox ResourceType = "sandbox"
	ResourceDomain  ResourceType = "domain"
)

// ParseResourceType accepts the contract's names and the aliases Mailtrap's
// resource APIs use ("inbox" for sandbox, "sending_domain" for domain).
func ParseResourceType(s string) (ResourceType, bool) {
	switch s {
	case "account":
		return ResourceAccount, true
	case "project":
		return ResourceProject, true
	case "sandbox", "inbox":
		return ResourceSandbox, true
	case "domain", "sending_domain":
		return ResourceDomain, true
	}
	return "", false
}

// Environment tells live keys from test keys. Test keys never deliver real email.
type Environment string

// Token environments.
const (
	Live Environment = "live"
	Test Environment = "test"
)

// Plan is an account's billing plan; it decides the rate limit and the
// message allowance.
type Plan string

// Plans.
const (
	PlanFree       Plan = "free"
	PlanPro        Plan = "pro"
	PlanEnterprise Plan = "enterprise"
)

// ParsePlan returns the plan named s.
func ParsePlan(s string) (Plan, bool) {
	switch Plan(s) {
	case PlanFree, PlanPro, PlanEnterprise:
		return Plan(s), true
	}
	return "", false
}

// DefaultRateLimit is the requests-per-minute limit of a plan; enterprise limits are set per account.
func (p Plan) DefaultRateLimit() int {
	switch p {
	case PlanPro:
		return 1000
	case PlanEnterprise:
		return 10000
	}
	return 100
}

// DefaultMessageLimit is the message allowance of a plan: how many messages
// its account may send per minute, each recipient of an email (to, cc and
// bcc, live or captured) being one message. Requests are counted by the rate
// limit beside it, so that recipients cannot multiply it. Enterprise
// allowances may be set per account.
func (p Plan) DefaultMessageLimit() int {
	switch p {
	case PlanPro:
		return 10_000
	case PlanEnterprise:
		return 100_000
	}
	return 1_000
}

// Account owns resources and tokens. Nothing crosses an account boundary.
type Account struct {
	ID           int64
	Name         string
	Plan         Plan
	RateLimit    int // requests per minute
	MessageLimit int // messages (recipients) sent per minute
	CreatedAt    time.Time
	// The account's token settings (see TokenSettings): the days before a
	// token's expiry when tokend warns (nil: DefaultExpiryWarningDays), and
	// what a reported leak does.
	ExpiryWarningDays []int
	LeakPolicy        LeakPolicy
}

// Resource is a project, sandbox or domain inside an account. Name is the
// domain name for domains.
type Resource struct {
	Type      ResourceType
	ID        int64
	AccountID int64
	ProjectID int64 // the containing project of a sandbox; 0 otherwise
	Name      string
	CreatedAt time.Time
}

// Permission grants Level on one resource and, through containment, on what it holds.
type Permission struct {
	ResourceType ResourceType
	ResourceID   int64
	Level        AccessLevel
}

// Token is a stored API token. The value itself is never stored: Hash is its
// SHA-256 digest and Last4 its last four characters.
type Token struct {
	ID          int64
	AccountID   int64
	Name        string
	Hash        []byte
	Last4       string
	Environment Environment
	CreatedBy   string
	CreatedAt   time.Time
	ExpiresAt   *time.Time // nil: never expires
	ResetAt     *time.Time // set once the token has been reset; it then lives out its grace period
	LastUsedAt  *time.Time // as last flushed from memory; see Service.LastUsed for the live value
	Permissions []Permission

	// The token's own guards (see Guards): the networks it may be used
	// from (empty: any), its rate limit below the plan's and its quota
	// (nil: none).
	AllowedIPs []netip.Prefix
	RateLimit  *Rate
	Quota      *Quota
	// QuotaUsed is what the token spent of its quota, as loaded by the
	// store's token listings (Tx.Token, Tx.Tokens); nil if nothing yet.
	QuotaUsed *QuotaUsage

	// AccountLimit is the requests-per-minute limit of the token's account at
	// the time the token was looked up, and AccountMessageLimit its message
	// allowance (messages per minute). Filled by Store.TokenByHash and
	// Store.ForEachToken only.
	AccountLimit        int
	AccountMessageLimit int

	// UserID is set, and ID is 0, when this is the principal of a person
	// signed in to the dashboard (see User.Principal) rather than a stored token.
	UserID int64
	// Operator names the operator, and ID and UserID are 0, when this is the
	// principal of the command line acting on one account (see
	// OperatorPrincipal).
	Operator string

	// plan and own are the keys of the token's plan limit and of its own
	// rate limit, made once for a token kept in the authentication cache
	// (see principal).
	plan, own string
}

// planKey is the key of t's plan limit in Limits.
func (t *Token) planKey() string {
	if t.plan != "" {
		return t.plan
	}
	return planKey(t.AccountID, t.Environment == Test)
}

// ExpiredAt reports whether t no longer authenticates at now.
func (t *Token) ExpiredAt(now time.Time) bool {
	return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
}

// activeAt reports whether t still counts as a working credential at now: not
// expired and not on its way out after a reset.
func (t *Token) activeAt(now time.Time) bool {
	return !t.ExpiredAt(now) && t.ResetAt == nil
}

// Store persists accounts, resources and tokens. Implementations must pass
// internal/storetest.
type Store interface {
	// Read runs fn in a transaction that sees one consistent snapshot.
	Read(ctx context.Context, fn func(Tx) error) error
	// Write runs fn in a read-write transaction and commits if fn returns nil.
	// Write transactions are serializable: a check made inside fn still holds
	// when it commits. fn may run more than once (PostgreSQL runs it again
	// after a serialization failure), so it must keep no state across runs
	// but what it assigns afresh each time.
	Write(ctx context.Context, fn func(Tx) error) error
	// TokenByHash returns the token with that hash and its permissions, or an
	// ENOTFOUND error. It is the authentication lookup: it never writes.
	TokenByHash(ctx context.Context, hash []byte) (*Token, error)
	// ForEachToken calls fn with every token that has not expired at now, with
	// its permissions and account limits, in ID order. fn must not keep t.Hash.
	ForEachToken(ctx context.Context, now time.Time, fn func(t *Token) error) error
	// AuthChangesSince returns the authentication changes with IDs above
	// afterID, oldest first; LastAuthChange is the highest ID so far (0: none).
	AuthChangesSince(ctx context.Context, afterID int64) ([]AuthChange, error)
	LastAuthChange(ctx context.Context) (int64, error)
	// SpendQuota spends n units of a token's quota of limit in the period
	// that started at start, all or none, atomically across every process
	// sharing the store: it returns what the period has used after the
	// spend and true, or what it has used and false when n more would go
	// over limit. A period other than the one recorded starts from zero.
	SpendQuota(ctx context.Context, tokenID int64, start time.Time, limit, n int64) (used int64, ok bool, err error)
	// RefundQuota gives back n units SpendQuota spent in the period that
	// started at start; nothing once another period has begun.
	RefundQuota(ctx context.Context, tokenID int64, start time.Time, n int64) error
	Close() error
}

// AuthChange records that a token or every token of an account must be
// looked up afresh: the token was deleted, edited or reset, or its account's
// resources or plan changed. With TokenID set it names that one token, and
// AccountID is the token's account (0 in changes written before tokend
// recorded it); with TokenID 0 it names every token of AccountID.
type AuthChange struct {
	ID        int64
	TokenID   int64
	AccountID int64
}

// Tx is the set of queries available inside a transaction. Methods that look
// up one record return an ENOTFOUND *Error when it does not exist.
type Tx interface {
	OutboxTx
	EmailTx
	SuppressionTx
	IdempotencyTx
	WebhookTx
	UserTx
	DomainTx

	// LockAccount holds the account's row until the transaction ends, so
	// that writes on one account's tokens and resources run one after
	// another (SELECT ... FOR UPDATE on PostgreSQL; a no-op under SQLite's
	// single writer).
	LockAccount(ctx context.Context, id int64) error

	CreateAccount(ctx context.Context, a *Account) error
	Account(ctx context.Context, id int64) (*Account, error)
	Accounts(ctx context.Context) ([]Account, error)

	// CreateResource inserts r and sets its ID. A second domain with the same
	// name in one account is an EINVALID error on "domain_name".
	CreateResource(ctx context.Context, r *Resource) error
	Resource(ctx context.Context, typ ResourceType, id int64) (*Resource, error)
	// Resources lists every project, sandbox and domain of an account, oldest first.
	Resources(ctx context.Context, accountID int64) ([]Resource, error)
	RenameResource(ctx context.Context, typ ResourceType, id int64, name string) error
	// DeleteResource deletes the resource, the sandboxes of a project, and every
	// permission that names any of them.
	DeleteResource(ctx context.Context, typ ResourceType, id int64) error

	// CreateToken inserts t with its permissions and guards and sets its ID.
	CreateToken(ctx context.Context, t *Token) error
	Token(ctx context.Context, id int64) (*Token, error)
	// Tokens lists an account's tokens with their permissions, in ID order.
	Tokens(ctx context.Context, accountID int64) ([]Token, error)
	// UpdateToken stores t's name, expiry, reset time, permissions and
	// guards (allowed IPs, rate limit, quota).
	UpdateToken(ctx context.Context, t *Token) error
	DeleteToken(ctx context.Context, id int64) error
	// CopyQuotaUsage gives token to what token from has spent of its quota
	// in its current period.
	CopyQuotaUsage(ctx context.Context, from, to int64) error
	// TokensExpiringBetween lists the tokens, not reset, whose expires_at is
	// after after and at or before until, with their permissions.
	TokensExpiringBetween(ctx context.Context, after, until time.Time) ([]Token, error)
	// RecordExpiryWarning records that the warning of days before a token's
	// expiry at expiresAt was raised, and reports whether it was not yet.
	RecordExpiryWarning(ctx context.Context, tokenID int64, days int, expiresAt, at time.Time) (bool, error)
	// RecordLeak records that the token with hash was reported published at
	// url, and reports whether it was not yet.
	RecordLeak(ctx context.Context, hash []byte, url string, accountID, tokenID int64, at time.Time) (bool, error)
	// LeakRecorded reports whether the token with hash was ever reported.
	LeakRecorded(ctx context.Context, hash []byte) (bool, error)
	// DeleteTokensExpiredBefore deletes tokens whose expires_at is at or before
	// cutoff and returns how many it deleted.
	DeleteTokensExpiredBefore(ctx context.Context, cutoff time.Time) (int64, error)

	// SetTokenSettings stores an account's expiry warning days (nil for
	// the default) and leak policy.
	SetTokenSettings(ctx context.Context, accountID int64, expiryWarningDays []int, policy LeakPolicy) error

	// SetPlan changes an account's plan, rate limit and message allowance.
	SetPlan(ctx context.Context, accountID int64, plan Plan, rateLimit, messageLimit int) error

	// AddUsage adds counts to a token's per-day usage and moves its
	// last_used_at forward to lastUsed if that is later. Counts for a token
	// that no longer exists are dropped without error.
	AddUsage(ctx context.Context, tokenID int64, lastUsed time.Time, counts []UsageCount) error
	// Usage returns a token's per-day counts, oldest day first.
	Usage(ctx context.Context, tokenID int64) ([]UsageCount, error)

	// AddAuditEvent appends e and sets its ID.
	AddAuditEvent(ctx context.Context, e *AuditEvent) error
	// AuditEvents returns up to limit events of an account with IDs below
	// beforeID (0: from the newest), newest first.
	AuditEvents(ctx context.Context, accountID, beforeID int64, limit int) ([]AuditEvent, error)

	// AddAuthChange appends an authentication change (see AuthChange) and
	// returns its ID.
	AddAuthChange(ctx context.Context, c AuthChange, at time.Time) (int64, error)
	// DeleteAuthChangesBefore deletes changes recorded before cutoff.
	DeleteAuthChangesBefore(ctx context.Context, cutoff time.Time) error

	// AddTokenNetwork records that a token was used from network. It reports
	// whether the network is new for the token and how many networks the token
	// had been seen from before. A token that no longer exists is not new.
	AddTokenNetwork(ctx context.Context, tokenID int64, network string, at time.Time) (isNew bool, before int, err error)
}

// Package sqlstore holds the queries the SQLite and PostgreSQL stores share:
// one tokend.Tx written once, with a Dialect for the few places they differ.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend"
)

// querier is what the query helpers need: a *sql.Tx or a *sql.DB, so that the
// same helper serves inside and outside a transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Tx is tokend.Tx on a SQL database: the SQLite and the PostgreSQL stores
// share its queries, written with ? placeholders, and differ only where their
// Dialect says.
type Tx struct {
	q querier
	d *Dialect
}

// NewTx returns a Tx running its queries on q.
func NewTx(q Querier, d *Dialect) *Tx { return &Tx{q: q, d: d} }

// Querier is what the queries run on: a transaction, or a pool for the
// reads done outside one.
type Querier = querier

// Dialect is what differs between the databases.
type Dialect struct {
	// Greatest is the function of the larger of two values: max or GREATEST.
	Greatest string
	// ClaimLock follows the claim's inner select: "" under a single
	// writer, " FOR UPDATE SKIP LOCKED" where claims run at once.
	ClaimLock string
	// RowLock follows a select whose rows must stay as read until the
	// transaction ends: "" under a single writer, " FOR UPDATE" elsewhere.
	RowLock string
	// LockAccount is the query that holds an account's row; "" for none.
	LockAccount string
	// PermissionOrder breaks ties between permissions of equal position.
	PermissionOrder string
	// IsUniqueViolation recognises a unique constraint's error.
	IsUniqueViolation func(error) bool
}

var _ tokend.Tx = (*Tx)(nil)

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

func timePtr(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicros(n.Int64)
	return &t
}

func notFound(what string) error { return tokend.Errorf(tokend.ENOTFOUND, "%s not found", what) }

// LockAccount holds the account's row until the transaction ends, where the
// dialect has a way to.
func (x *Tx) LockAccount(ctx context.Context, id int64) error {
	if x.d.LockAccount == "" {
		return nil
	}
	if _, err := x.q.ExecContext(ctx, x.d.LockAccount, id); err != nil {
		return fmt.Errorf("lock account: %w", err)
	}
	return nil
}

// CreateAccount inserts a and sets its ID.
func (x *Tx) CreateAccount(ctx context.Context, a *tokend.Account) error {
	err := x.q.QueryRowContext(ctx,
		`INSERT INTO accounts (name, plan, rate_limit, message_limit, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		a.Name, string(a.Plan), a.RateLimit, a.MessageLimit, micros(a.CreatedAt)).Scan(&a.ID)
	if err != nil {
		return fmt.Errorf("insert account: %w", err)
	}
	return nil
}

const accountColumns = `id, name, plan, rate_limit, message_limit, created_at, expiry_warning_days, leak_policy`

func scanAccount(row interface{ Scan(...any) error }) (tokend.Account, error) {
	var a tokend.Account
	var plan, policy string
	var created int64
	var warnings sql.NullString
	err := row.Scan(&a.ID, &a.Name, &plan, &a.RateLimit, &a.MessageLimit, &created, &warnings, &policy)
	a.Plan, a.CreatedAt, a.LeakPolicy = tokend.Plan(plan), fromMicros(created), tokend.LeakPolicy(policy)
	if err == nil && warnings.Valid {
		a.ExpiryWarningDays, err = parseDays(warnings.String)
	}
	return a, err
}

// SetTokenSettings stores an account's token settings.
func (x *Tx) SetTokenSettings(ctx context.Context, accountID int64, days []int, policy tokend.LeakPolicy) error {
	var warnings sql.NullString
	if days != nil {
		warnings = sql.NullString{String: formatDays(days), Valid: true}
	}
	res, err := x.q.ExecContext(ctx, `UPDATE accounts SET expiry_warning_days = ?, leak_policy = ? WHERE id = ?`, warnings, string(policy), accountID)
	return expectOne(res, err, "account")
}

func parseDays(s string) ([]int, error) {
	days := []int{}
	for _, f := range strings.Split(s, ",") {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("expiry warning days %q: %w", s, err)
		}
		days = append(days, n)
	}
	return days, nil
}

func formatDays(days []int) string {
	s := make([]string, len(days))
	for i, d := range days {
		s[i] = strconv.Itoa(d)
	}
	return strings.Join(s, ",")
}

// Account returns one account.
func (x *Tx) Account(ctx context.Context, id int64) (*tokend.Account, error) {
	a, err := scanAccount(x.q.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM accounts WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("account")
	} else if err != nil {
		return nil, fmt.Errorf("account: %w", err)
	}
	return &a, nil
}

// Accounts returns every account in ID order.
func (x *Tx) Accounts(ctx context.Context) ([]tokend.Account, error) {
	out, err := queryAll(ctx, x, "accounts", `SELECT `+accountColumns+` FROM accounts ORDER BY id`, nil, scanAccount)
	return out, err
}

// CreateResource inserts r and sets its ID.
func (x *Tx) CreateResource(ctx context.Context, r *tokend.Resource) error {
	var project sql.NullInt64
	if r.Type == tokend.ResourceSandbox {
		project = sql.NullInt64{Int64: r.ProjectID, Valid: true}
	}
	err := x.q.QueryRowContext(ctx,
		`INSERT INTO resources (account_id, type, project_id, name, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		r.AccountID, string(r.Type), project, r.Name, micros(r.CreatedAt)).Scan(&r.ID)
	if x.d.IsUniqueViolation(err) && r.Type == tokend.ResourceDomain {
		return tokend.Invalid("domain_name", "has already been taken")
	} else if err != nil {
		return fmt.Errorf("insert %s: %w", r.Type, err)
	}
	return nil
}

const resourceColumns = `id, account_id, type, project_id, name, created_at`

func scanResource(row interface{ Scan(...any) error }) (tokend.Resource, error) {
	var r tokend.Resource
	var typ string
	var project sql.NullInt64
	var created int64
	err := row.Scan(&r.ID, &r.AccountID, &typ, &project, &r.Name, &created)
	r.Type, r.ProjectID, r.CreatedAt = tokend.ResourceType(typ), project.Int64, fromMicros(created)
	return r, err
}

// Resource returns one resource of the given type.
func (x *Tx) Resource(ctx context.Context, typ tokend.ResourceType, id int64) (*tokend.Resource, error) {
	r, err := scanResource(x.q.QueryRowContext(ctx,
		`SELECT `+resourceColumns+` FROM resources WHERE id = ? AND type = ?`, id, string(typ)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(string(typ))
	} else if err != nil {
		return nil, fmt.Errorf("%s: %w", typ, err)
	}
	return &r, nil
}

// Resources lists an account's resources in ID order.
func (x *Tx) Resources(ctx context.Context, accountID int64) ([]tokend.Resource, error) {
	out, err := queryAll(ctx, x, "resources", `SELECT `+resourceColumns+` FROM resources WHERE account_id = ? ORDER BY id`, []any{accountID}, scanResource)
	return out, err
}

// RenameResource sets a resource's name.
func (x *Tx) RenameResource(ctx context.Context, typ tokend.ResourceType, id int64, name string) error {
	res, err := x.q.ExecContext(ctx, `UPDATE resources SET name = ? WHERE id = ? AND type = ?`, name, id, string(typ))
	return expectOne(res, err, string(typ))
}

// DeleteResource deletes a resource, a project's sandboxes, and every
// permission naming any of them.
func (x *Tx) DeleteResource(ctx context.Context, typ tokend.ResourceType, id int64) error {
	if typ == tokend.ResourceProject {
		if _, err := x.q.ExecContext(ctx,
			`DELETE FROM token_permissions WHERE resource_type = 'sandbox'
			   AND resource_id IN (SELECT id FROM resources WHERE project_id = ?)`, id); err != nil {
			return fmt.Errorf("delete sandbox permissions: %w", err)
		}
	}
	if _, err := x.q.ExecContext(ctx,
		`DELETE FROM token_permissions WHERE resource_type = ? AND resource_id = ?`, string(typ), id); err != nil {
		return fmt.Errorf("delete %s permissions: %w", typ, err)
	}
	res, err := x.q.ExecContext(ctx, `DELETE FROM resources WHERE id = ? AND type = ?`, id, string(typ))
	return expectOne(res, err, string(typ))
}

// CreateToken inserts t and its permissions and sets its ID.
func (x *Tx) CreateToken(ctx context.Context, t *tokend.Token) error {
	guards, err := encodeGuards(t)
	if err != nil {
		return err
	}
	err = x.q.QueryRowContext(ctx,
		`INSERT INTO api_tokens (account_id, name, token_hash, last4, environment, created_by, created_at, expires_at, reset_at, guards)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		t.AccountID, t.Name, t.Hash, t.Last4, string(t.Environment), t.CreatedBy,
		micros(t.CreatedAt), nullMicros(t.ExpiresAt), nullMicros(t.ResetAt), guards).Scan(&t.ID)
	if err != nil {
		return fmt.Errorf("insert token: %w", err)
	}
	return x.insertPermissions(ctx, t.ID, t.Permissions)
}

func (x *Tx) insertPermissions(ctx context.Context, tokenID int64, perms []tokend.Permission) error {
	for i, p := range perms {
		if _, err := x.q.ExecContext(ctx,
			`INSERT INTO token_permissions (token_id, resource_type, resource_id, access_level, position) VALUES (?, ?, ?, ?, ?)`,
			tokenID, string(p.ResourceType), p.ResourceID, int(p.Level), i); err != nil {
			return fmt.Errorf("insert permission: %w", err)
		}
	}
	return nil
}

// UpdateToken stores t's mutable fields and replaces its permissions.
func (x *Tx) UpdateToken(ctx context.Context, t *tokend.Token) error {
	guards, err := encodeGuards(t)
	if err != nil {
		return err
	}
	res, err := x.q.ExecContext(ctx,
		`UPDATE api_tokens SET name = ?, expires_at = ?, reset_at = ?, guards = ? WHERE id = ?`,
		t.Name, nullMicros(t.ExpiresAt), nullMicros(t.ResetAt), guards, t.ID)
	if err := expectOne(res, err, "token"); err != nil {
		return err
	}
	if _, err := x.q.ExecContext(ctx, `DELETE FROM token_permissions WHERE token_id = ?`, t.ID); err != nil {
		return fmt.Errorf("replace permissions: %w", err)
	}
	return x.insertPermissions(ctx, t.ID, t.Permissions)
}

// DeleteToken deletes a token; its permissions go with it.
func (x *Tx) DeleteToken(ctx context.Context, id int64) error {
	res, err := x.q.ExecContext(ctx, `DELETE FROM api_tokens WHERE id = ?`, id)
	return expectOne(res, err, "token")
}

// DeleteTokensExpiredBefore deletes tokens expired at or before cutoff.
func (x *Tx) DeleteTokensExpiredBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := x.q.ExecContext(ctx, `DELETE FROM api_tokens WHERE expires_at <= ?`, micros(cutoff))
	if err != nil {
		return 0, fmt.Errorf("purge tokens: %w", err)
	}
	return res.RowsAffected()
}

// Token returns one token with its permissions.
func (x *Tx) Token(ctx context.Context, id int64) (*tokend.Token, error) {
	return x.tokenWhere(ctx, "t.id = ?", id)
}

// Tokens lists an account's tokens with their permissions in ID order.
func (x *Tx) Tokens(ctx context.Context, accountID int64) ([]tokend.Token, error) {
	return x.tokensWhere(ctx, "t.account_id = ?", accountID)
}

func (x *Tx) tokenWhere(ctx context.Context, where string, arg any) (*tokend.Token, error) {
	ts, err := x.tokensWhere(ctx, where, arg)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, notFound("token")
	}
	return &ts[0], nil
}

// tokensWhere loads tokens and their permissions in one query.
func (x *Tx) tokensWhere(ctx context.Context, where string, args ...any) ([]tokend.Token, error) {
	var out []tokend.Token
	err := x.eachToken(ctx, where, args, func(t *tokend.Token) error {
		out = append(out, *t)
		return nil
	})
	return out, err
}

// eachToken streams the tokens matching where, each with its permissions and
// its account's rate limit and message allowance, in ID order.
func (x *Tx) eachToken(ctx context.Context, where string, args []any, fn func(*tokend.Token) error) error {
	rows, err := x.q.QueryContext(ctx,
		`SELECT t.id, t.account_id, t.name, t.token_hash, t.last4, t.environment, t.created_by,
		        t.created_at, t.expires_at, t.reset_at, t.last_used_at, a.rate_limit, a.message_limit,
		        t.guards, q.period_start, q.used,
		        p.resource_type, p.resource_id, p.access_level
		   FROM api_tokens t JOIN accounts a ON a.id = t.account_id
		   LEFT JOIN token_quota_usage q ON q.token_id = t.id
		   LEFT JOIN token_permissions p ON p.token_id = t.id
		  WHERE `+where+` ORDER BY t.id, p.position, `+x.d.PermissionOrder, args...)
	if err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	defer rows.Close()
	var cur *tokend.Token
	for rows.Next() {
		var t tokend.Token
		var env string
		var created int64
		var expires, reset, lastUsed, quotaStart, quotaUsed sql.NullInt64
		var ptype, guards sql.NullString
		var pid, plevel sql.NullInt64
		if err := rows.Scan(&t.ID, &t.AccountID, &t.Name, &t.Hash, &t.Last4, &env, &t.CreatedBy,
			&created, &expires, &reset, &lastUsed, &t.AccountLimit, &t.AccountMessageLimit,
			&guards, &quotaStart, &quotaUsed, &ptype, &pid, &plevel); err != nil {
			return fmt.Errorf("tokens: %w", err)
		}
		if cur == nil || cur.ID != t.ID {
			if cur != nil {
				if err := fn(cur); err != nil {
					return err
				}
			}
			t.Environment, t.CreatedAt = environment(env), fromMicros(created)
			t.ExpiresAt, t.ResetAt, t.LastUsedAt = timePtr(expires), timePtr(reset), timePtr(lastUsed)
			t.Permissions = []tokend.Permission{}
			if err := decodeGuards(guards, &t); err != nil {
				return err
			}
			if quotaStart.Valid {
				t.QuotaUsed = &tokend.QuotaUsage{Start: fromMicros(quotaStart.Int64), Used: quotaUsed.Int64}
			}
			cur = &t
		}
		if ptype.Valid {
			rt, _ := tokend.ParseResourceType(ptype.String) // the constant, not a fresh string per row
			cur.Permissions = append(cur.Permissions, tokend.Permission{
				ResourceType: rt, ResourceID: pid.Int64, Level: tokend.AccessLevel(plevel.Int64),
			})
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	if cur != nil {
		return fn(cur)
	}
	return nil
}

// environment returns the constant for a stored environment, so that cached
// tokens share it instead of holding a copy each.
func environment(s string) tokend.Environment {
	if s == string(tokend.Test) {
		return tokend.Test
	}
	return tokend.Live
}

// SetPlan changes an account's plan, rate limit and message allowance.
func (x *Tx) SetPlan(ctx context.Context, accountID int64, plan tokend.Plan, rateLimit, messageLimit int) error {
	res, err := x.q.ExecContext(ctx, `UPDATE accounts SET plan = ?, rate_limit = ?, message_limit = ? WHERE id = ?`,
		string(plan), rateLimit, messageLimit, accountID)
	return expectOne(res, err, "account")
}

// AddUsage adds counts to a token's usage and moves last_used_at forward.
func (x *Tx) AddUsage(ctx context.Context, tokenID int64, lastUsed time.Time, counts []tokend.UsageCount) error {
	if _, err := x.q.ExecContext(ctx,
		`UPDATE api_tokens SET last_used_at = `+x.d.Greatest+`(coalesce(last_used_at, 0), ?) WHERE id = ?`, micros(lastUsed), tokenID); err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	for _, c := range counts {
		if _, err := x.q.ExecContext(ctx,
			`INSERT INTO token_usage (token_id, day, outcome, count)
			 SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM api_tokens WHERE id = ?)
			 ON CONFLICT (token_id, day, outcome) DO UPDATE SET count = token_usage.count + excluded.count`,
			tokenID, c.Day, string(c.Outcome), c.Count, tokenID); err != nil {
			return fmt.Errorf("add usage: %w", err)
		}
	}
	return nil
}

// Usage returns a token's counts by day and outcome.
func (x *Tx) Usage(ctx context.Context, tokenID int64) ([]tokend.UsageCount, error) {
	out, err := queryAll(ctx, x, "usage", `SELECT day, outcome, count FROM token_usage WHERE token_id = ? ORDER BY day, outcome`, []any{tokenID}, func(rs row) (tokend.UsageCount, error) {
		var c tokend.UsageCount
		var outcome string
		if err := rs.Scan(&c.Day, &outcome, &c.Count); err != nil {
			return c, err
		}
		c.Outcome = tokend.Outcome(outcome)
		return c, nil
	})
	return out, err
}

// AddAuditEvent appends e and sets its ID.
func (x *Tx) AddAuditEvent(ctx context.Context, e *tokend.AuditEvent) error {
	details := e.Details
	if details == nil {
		details = map[string]any{}
	}
	b, err := json.Marshal(details)
	if err != nil {
		return fmt.Errorf("audit details: %w", err)
	}
	err = x.q.QueryRowContext(ctx,
		`INSERT INTO audit_events (account_id, at, actor, actor_token_id, action, target_type, target_id, client_addr, details)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		nullID(e.AccountID), micros(e.At), e.Actor, nullID(e.ActorTokenID), e.Action, e.TargetType, nullID(e.TargetID),
		e.ClientAddr, string(b)).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("insert audit event: %w", err)
	}
	return nil
}

// AuditEvents returns an account's events below beforeID, newest first.
func (x *Tx) AuditEvents(ctx context.Context, accountID, beforeID int64, limit int) ([]tokend.AuditEvent, error) {
	if beforeID <= 0 {
		beforeID = math.MaxInt64
	}
	out, err := queryAll(ctx, x, "audit events", `SELECT id, account_id, at, actor, actor_token_id, action, target_type, target_id, client_addr, details
		   FROM audit_events WHERE account_id = ? AND id < ? ORDER BY id DESC LIMIT ?`, []any{accountID, beforeID, limit}, func(rs row) (tokend.AuditEvent, error) {
		var e tokend.AuditEvent
		var account, actorToken, target sql.NullInt64
		var at int64
		var details string
		if err := rs.Scan(&e.ID, &account, &at, &e.Actor, &actorToken, &e.Action, &e.TargetType, &target, &e.ClientAddr, &details); err != nil {
			return e, err
		}
		e.AccountID, e.ActorTokenID, e.TargetID, e.At = account.Int64, actorToken.Int64, target.Int64, fromMicros(at)
		if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
			return e, fmt.Errorf("audit event %d details: %w", e.ID, err)
		}
		return e, nil
	})
	return out, err
}

// AddTokenNetwork records a network a token was used from.
func (x *Tx) AddTokenNetwork(ctx context.Context, tokenID int64, network string, at time.Time) (bool, int, error) {
	var before int
	if err := x.q.QueryRowContext(ctx, `SELECT count(*) FROM token_networks WHERE token_id = ?`, tokenID).Scan(&before); err != nil {
		return false, 0, fmt.Errorf("token networks: %w", err)
	}
	res, err := x.q.ExecContext(ctx,
		`INSERT INTO token_networks (token_id, network, first_seen)
		 SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM api_tokens WHERE id = ?)
		 ON CONFLICT (token_id, network) DO NOTHING`, tokenID, network, micros(at), tokenID)
	if err != nil {
		return false, 0, fmt.Errorf("add token network: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, 0, fmt.Errorf("add token network: %w", err)
	}
	return n == 1, before, nil
}

// AddAuthChange appends an authentication change and returns its ID.
func (x *Tx) AddAuthChange(ctx context.Context, c tokend.AuthChange, at time.Time) (int64, error) {
	var id int64
	if err := x.q.QueryRowContext(ctx, `INSERT INTO auth_changes (token_id, account_id, at) VALUES (?, ?, ?) RETURNING id`,
		nullID(c.TokenID), nullID(c.AccountID), micros(at)).Scan(&id); err != nil {
		return 0, fmt.Errorf("add auth change: %w", err)
	}
	return id, nil
}

// DeleteAuthChangesBefore prunes the change log.
func (x *Tx) DeleteAuthChangesBefore(ctx context.Context, cutoff time.Time) error {
	if _, err := x.q.ExecContext(ctx, `DELETE FROM auth_changes WHERE at < ?`, micros(cutoff)); err != nil {
		return fmt.Errorf("prune auth changes: %w", err)
	}
	return nil
}

func nullID(id int64) sql.NullInt64 { return sql.NullInt64{Int64: id, Valid: id != 0} }

func expectOne(res sql.Result, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return notFound(what)
	}
	return nil
}

// TokenByHash is the authentication lookup, for stores to run outside a
// transaction.
func (x *Tx) TokenByHash(ctx context.Context, hash []byte) (*tokend.Token, error) {
	return x.tokenWhere(ctx, "t.token_hash = ?", hash)
}

// ForEachToken streams every token unexpired at now, for warming a cache.
func (x *Tx) ForEachToken(ctx context.Context, now time.Time, fn func(*tokend.Token) error) error {
	return x.eachToken(ctx, "t.expires_at IS NULL OR t.expires_at > ?", []any{micros(now)}, fn)
}

// AuthChangesSince returns up to 10,000 authentication changes after afterID,
// oldest first.
func (x *Tx) AuthChangesSince(ctx context.Context, afterID int64) ([]tokend.AuthChange, error) {
	out, err := queryAll(ctx, x, "auth changes", `SELECT id, token_id, account_id FROM auth_changes WHERE id > ? ORDER BY id LIMIT 10000`, []any{afterID}, func(rs row) (tokend.AuthChange, error) {
		var c tokend.AuthChange
		var token, account sql.NullInt64
		if err := rs.Scan(&c.ID, &token, &account); err != nil {
			return c, err
		}
		c.TokenID, c.AccountID = token.Int64, account.Int64
		return c, nil
	})
	return out, err
}

// LastAuthChange is the highest change ID so far (0: none).
func (x *Tx) LastAuthChange(ctx context.Context) (int64, error) {
	var id sql.NullInt64
	if err := x.q.QueryRowContext(ctx, `SELECT max(id) FROM auth_changes`).Scan(&id); err != nil {
		return 0, fmt.Errorf("last auth change: %w", err)
	}
	return id.Int64, nil
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tokend/tokend"
)

// storedGuards is the JSON of api_tokens.guards.
type storedGuards struct {
	AllowedIPs []string     `json:"allowed_ips,omitempty"`
	RateLimit  *storedRate  `json:"rate_limit,omitempty"`
	Quota      *storedQuota `json:"quota,omitempty"`
}

type storedRate struct {
	Limit         int   `json:"limit"`
	PeriodSeconds int64 `json:"period_seconds"`
}

type storedQuota struct {
	Limit  int64  `json:"limit"`
	Period string `json:"period"`
	Unit   string `json:"unit"`
}

// encodeGuards is t's guards as stored: NULL when it has none.
func encodeGuards(t *tokend.Token) (sql.NullString, error) {
	if len(t.AllowedIPs) == 0 && t.RateLimit == nil && t.Quota == nil {
		return sql.NullString{}, nil
	}
	var g storedGuards
	for _, p := range t.AllowedIPs {
		g.AllowedIPs = append(g.AllowedIPs, p.String())
	}
	if r := t.RateLimit; r != nil {
		g.RateLimit = &storedRate{Limit: r.Limit, PeriodSeconds: int64(r.Per / time.Second)}
	}
	if q := t.Quota; q != nil {
		g.Quota = &storedQuota{Limit: q.Limit, Period: string(q.Period), Unit: string(q.Unit)}
	}
	b, err := json.Marshal(g)
	if err != nil {
		return sql.NullString{}, fmt.Errorf("encode guards: %w", err)
	}
	return sql.NullString{String: string(b), Valid: true}, nil
}

// decodeGuards sets t's guards from their stored form.
func decodeGuards(s sql.NullString, t *tokend.Token) error {
	if !s.Valid {
		return nil
	}
	var g storedGuards
	if err := json.Unmarshal([]byte(s.String), &g); err != nil {
		return fmt.Errorf("guards of token %d: %w", t.ID, err)
	}
	for _, ip := range g.AllowedIPs {
		p, err := netip.ParsePrefix(ip)
		if err != nil {
			return fmt.Errorf("guards of token %d: %w", t.ID, err)
		}
		t.AllowedIPs = append(t.AllowedIPs, p)
	}
	if r := g.RateLimit; r != nil {
		t.RateLimit = &tokend.Rate{Limit: r.Limit, Per: time.Duration(r.PeriodSeconds) * time.Second}
	}
	if q := g.Quota; q != nil {
		t.Quota = &tokend.Quota{Limit: q.Limit, Period: tokend.QuotaPeriod(q.Period), Unit: tokend.QuotaUnit(q.Unit)}
	}
	return nil
}

// spendQuota adds n to the period's count if it stays within limit, in one
// statement: the row's lock (PostgreSQL) or the single writer (SQLite)
// orders concurrent spends, and each sees the count the one before left. A
// newer period than the one stored starts from zero; an older one (a clock
// behind another instance's) is refused.
const spendQuota = `INSERT INTO token_quota_usage (token_id, period_start, used) VALUES (?, ?, ?)
ON CONFLICT (token_id) DO UPDATE SET
    used = CASE WHEN token_quota_usage.period_start = excluded.period_start
                THEN token_quota_usage.used + excluded.used ELSE excluded.used END,
    period_start = excluded.period_start
WHERE token_quota_usage.period_start < excluded.period_start
   OR (token_quota_usage.period_start = excluded.period_start AND token_quota_usage.used + excluded.used <= ?)
RETURNING used`

// SpendQuota spends n units of a token's quota of limit in the period that
// started at start, all or none.
func (x *Tx) SpendQuota(ctx context.Context, tokenID int64, start time.Time, limit, n int64) (int64, bool, error) {
	if n > limit {
		used, err := x.quotaUsed(ctx, tokenID, start)
		return used, false, err
	}
	var used int64
	err := x.q.QueryRowContext(ctx, spendQuota, tokenID, micros(start), n, limit).Scan(&used)
	if errors.Is(err, sql.ErrNoRows) {
		used, err := x.quotaUsed(ctx, tokenID, start)
		return used, false, err
	}
	if err != nil {
		return 0, false, fmt.Errorf("spend quota: %w", err)
	}
	return used, true, nil
}

// quotaUsed is what the token has spent in the period that started at start.
func (x *Tx) quotaUsed(ctx context.Context, tokenID int64, start time.Time) (int64, error) {
	var used int64
	err := x.q.QueryRowContext(ctx, `SELECT used FROM token_quota_usage WHERE token_id = ? AND period_start = ?`, tokenID, micros(start)).Scan(&used)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("quota used: %w", err)
	}
	return used, nil
}

// RefundQuota gives back n units spent in the period that started at start.
func (x *Tx) RefundQuota(ctx context.Context, tokenID int64, start time.Time, n int64) error {
	_, err := x.q.ExecContext(ctx, `UPDATE token_quota_usage SET used = `+x.d.Greatest+`(used - ?, 0) WHERE token_id = ? AND period_start = ?`,
		n, tokenID, micros(start))
	if err != nil {
		return fmt.Errorf("refund quota: %w", err)
	}
	return nil
}

// CopyQuotaUsage gives token to what token from has spent of its quota.
func (x *Tx) CopyQuotaUsage(ctx context.Context, from, to int64) error {
	_, err := x.q.ExecContext(ctx, `INSERT INTO token_quota_usage (token_id, period_start, used)
		SELECT ?, period_start, used FROM token_quota_usage WHERE token_id = ?`, to, from)
	if err != nil {
		return fmt.Errorf("copy quota usage: %w", err)
	}
	return nil
}

// TokensExpiringBetween lists the tokens, not reset, expiring in (after, until].
func (x *Tx) TokensExpiringBetween(ctx context.Context, after, until time.Time) ([]tokend.Token, error) {
	return x.tokensWhere(ctx, "t.expires_at > ? AND t.expires_at <= ? AND t.reset_at IS NULL", micros(after), micros(until))
}

// RecordExpiryWarning records an expiry warning once.
func (x *Tx) RecordExpiryWarning(ctx context.Context, tokenID int64, days int, expiresAt, at time.Time) (bool, error) {
	res, err := x.q.ExecContext(ctx, `INSERT INTO token_expiry_warnings (token_id, days, expires_at, raised_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (token_id, days, expires_at) DO NOTHING`, tokenID, days, micros(expiresAt), micros(at))
	if err != nil {
		return false, fmt.Errorf("record expiry warning: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// RecordLeak records that the token with hash was reported published at
// url, once.
func (x *Tx) RecordLeak(ctx context.Context, hash []byte, url string, accountID, tokenID int64, at time.Time) (bool, error) {
	res, err := x.q.ExecContext(ctx, `INSERT INTO token_leaks (token_hash, url, account_id, token_id, reported_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (token_hash, url) DO NOTHING`, hash, url, accountID, tokenID, micros(at))
	if err != nil {
		return false, fmt.Errorf("record leak: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// LeakRecorded reports whether the token with hash was ever reported.
func (x *Tx) LeakRecorded(ctx context.Context, hash []byte) (bool, error) {
	var n int
	if err := x.q.QueryRowContext(ctx, `SELECT count(*) FROM token_leaks WHERE token_hash = ?`, hash).Scan(&n); err != nil {
		return false, fmt.Errorf("leak recorded: %w", err)
	}
	return n > 0, nil
}

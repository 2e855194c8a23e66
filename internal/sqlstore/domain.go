package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tokend/tokend"
)

const domainDNSColumns = `domain_id, account_id, name, verify_value, verified_at, trusted_at, trusted_by,
	checked_at, check_error, records, failures, checks, next_check_at`

func scanDomainDNS(row interface{ Scan(...any) error }) (tokend.DomainDNS, error) {
	var d tokend.DomainDNS
	var verified, trusted, checked sql.NullInt64
	var records string
	var next int64
	err := row.Scan(&d.DomainID, &d.AccountID, &d.Name, &d.VerifyValue, &verified, &trusted, &d.TrustedBy,
		&checked, &d.CheckError, &records, &d.Failures, &d.Checks, &next)
	if err != nil {
		return d, err
	}
	d.VerifiedAt, d.TrustedAt, d.CheckedAt, d.NextCheckAt = timePtr(verified), timePtr(trusted), timePtr(checked), fromMicros(next)
	if err := json.Unmarshal([]byte(records), &d.Records); err != nil {
		return d, fmt.Errorf("records of domain %d: %w", d.DomainID, err)
	}
	return d, nil
}

func claimed(d *tokend.DomainDNS) int {
	if d.Sendable() {
		return 1
	}
	return 0
}

// CreateDomainDNS inserts a domain's DNS state.
func (x *Tx) CreateDomainDNS(ctx context.Context, d *tokend.DomainDNS) error {
	records, err := json.Marshal(d.Records)
	if err != nil {
		return fmt.Errorf("encode dns records: %w", err)
	}
	_, err = x.q.ExecContext(ctx, `INSERT INTO domain_dns (domain_id, account_id, name, verify_value, verified_at,
		trusted_at, trusted_by, claimed, checked_at, check_error, records, failures, checks, next_check_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		d.DomainID, d.AccountID, d.Name, d.VerifyValue, nullMicros(d.VerifiedAt), nullMicros(d.TrustedAt), d.TrustedBy,
		claimed(d), nullMicros(d.CheckedAt), d.CheckError, string(records), d.Failures, d.Checks, micros(d.NextCheckAt))
	if x.d.IsUniqueViolation(err) {
		return tokend.DomainClaimedError(d.Name)
	} else if err != nil {
		return fmt.Errorf("insert domain dns: %w", err)
	}
	return nil
}

// DomainDNS returns a domain's DNS state.
func (x *Tx) DomainDNS(ctx context.Context, domainID int64) (*tokend.DomainDNS, error) {
	d, err := scanDomainDNS(x.q.QueryRowContext(ctx, `SELECT `+domainDNSColumns+` FROM domain_dns WHERE domain_id = ?`, domainID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("domain dns")
	} else if err != nil {
		return nil, fmt.Errorf("domain dns: %w", err)
	}
	return &d, nil
}

func (x *Tx) queryDomainDNS(ctx context.Context, query string, args ...any) ([]tokend.DomainDNS, error) {
	out, err := queryAll(ctx, x, "domain dns", query, args, scanDomainDNS)
	return out, err
}

// AccountDomainDNS returns the DNS state of an account's domains.
func (x *Tx) AccountDomainDNS(ctx context.Context, accountID int64) ([]tokend.DomainDNS, error) {
	return x.queryDomainDNS(ctx, `SELECT `+domainDNSColumns+` FROM domain_dns WHERE account_id = ? ORDER BY domain_id`, accountID)
}

// DueDomainDNS returns domains whose next check is due.
func (x *Tx) DueDomainDNS(ctx context.Context, now time.Time, limit int) ([]tokend.DomainDNS, error) {
	return x.queryDomainDNS(ctx, `SELECT `+domainDNSColumns+` FROM domain_dns WHERE next_check_at <= ?
		ORDER BY next_check_at, domain_id LIMIT ?`, micros(now), limit)
}

// UpdateDomainDNS stores a domain's DNS state.
func (x *Tx) UpdateDomainDNS(ctx context.Context, d *tokend.DomainDNS) error {
	records, err := json.Marshal(d.Records)
	if err != nil {
		return fmt.Errorf("encode dns records: %w", err)
	}
	res, err := x.q.ExecContext(ctx, `UPDATE domain_dns SET verified_at = ?, trusted_at = ?, trusted_by = ?, claimed = ?,
		checked_at = ?, check_error = ?, records = ?, failures = ?, checks = ?, next_check_at = ? WHERE domain_id = ?`,
		nullMicros(d.VerifiedAt), nullMicros(d.TrustedAt), d.TrustedBy, claimed(d), nullMicros(d.CheckedAt), d.CheckError,
		string(records), d.Failures, d.Checks, micros(d.NextCheckAt), d.DomainID)
	if x.d.IsUniqueViolation(err) {
		return tokend.DomainClaimedError(d.Name)
	} else if err != nil {
		return fmt.Errorf("update domain dns: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("update domain dns: %w", err)
	} else if n == 0 {
		return notFound("domain dns")
	}
	return nil
}

// DomainNameClaimed reports whether another account verified or trusts name.
func (x *Tx) DomainNameClaimed(ctx context.Context, name string, accountID int64) (bool, error) {
	var n int
	err := x.q.QueryRowContext(ctx, `SELECT count(*) FROM domain_dns WHERE name = ? AND claimed = 1 AND account_id <> ?`,
		name, accountID).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("domain name claimed: %w", err)
	}
	return n > 0, nil
}

// DomainsWithoutDNS returns the sending domains that have no DNS state.
func (x *Tx) DomainsWithoutDNS(ctx context.Context) ([]tokend.Resource, error) {
	return x.domainsNotIn(ctx, "domain_dns")
}

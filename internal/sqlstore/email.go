package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/tokend/tokend"
)

// CreateDomainKey stores a domain's DKIM key.
func (x *Tx) CreateDomainKey(ctx context.Context, k *tokend.DomainKey) error {
	_, err := x.q.ExecContext(ctx,
		`INSERT INTO domain_keys (domain_id, account_id, domain, selector, public_key, private_key, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?)`,
		k.DomainID, k.AccountID, k.Domain, k.Selector, k.PublicKey, k.SealedPrivateKey, micros(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert domain key: %w", err)
	}
	return nil
}

const domainKeyColumns = `domain_id, account_id, domain, selector, public_key, private_key, created_at`

func scanDomainKey(row interface{ Scan(...any) error }) (tokend.DomainKey, error) {
	var k tokend.DomainKey
	var created int64
	err := row.Scan(&k.DomainID, &k.AccountID, &k.Domain, &k.Selector, &k.PublicKey, &k.SealedPrivateKey, &created)
	k.CreatedAt = fromMicros(created)
	return k, err
}

// DomainKey returns a domain's DKIM key.
func (x *Tx) DomainKey(ctx context.Context, domainID int64) (*tokend.DomainKey, error) {
	k, err := scanDomainKey(x.q.QueryRowContext(ctx, `SELECT `+domainKeyColumns+` FROM domain_keys WHERE domain_id = ?`, domainID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("domain key")
	} else if err != nil {
		return nil, fmt.Errorf("domain key: %w", err)
	}
	return &k, nil
}

// DomainKeys returns the DKIM keys of an account's existing domains.
func (x *Tx) DomainKeys(ctx context.Context, accountID int64) ([]tokend.DomainKey, error) {
	out, err := queryAll(ctx, x, "domain keys", `SELECT `+domainKeyColumns+` FROM domain_keys
		WHERE account_id = ? AND domain_id IN (SELECT id FROM resources WHERE account_id = ? AND type = 'domain')
		ORDER BY domain_id`, []any{accountID, accountID}, scanDomainKey)
	return out, err
}

// DomainsWithoutKey returns the sending domains that have no DKIM key.
func (x *Tx) DomainsWithoutKey(ctx context.Context) ([]tokend.Resource, error) {
	return x.domainsNotIn(ctx, "domain_keys")
}

// domainsNotIn returns the sending domains without a row in table (keyed by
// domain_id), in ID order.
func (x *Tx) domainsNotIn(ctx context.Context, table string) ([]tokend.Resource, error) {
	out, err := queryAll(ctx, x, fmt.Sprintf("domains without %s", table), `SELECT id, account_id, name, created_at FROM resources
		WHERE type = 'domain' AND id NOT IN (SELECT domain_id FROM `+table+`) ORDER BY id`, nil, func(rs row) (tokend.Resource, error) {
		r := tokend.Resource{Type: tokend.ResourceDomain}
		var created int64
		if err := rs.Scan(&r.ID, &r.AccountID, &r.Name, &created); err != nil {
			return r, fmt.Errorf("domains without %s: %w", table, err)
		}
		r.CreatedAt = fromMicros(created)
		return r, nil
	})
	return out, err
}

// CreateEmail inserts an email and its messages.
func (x *Tx) CreateEmail(ctx context.Context, e *tokend.StoredEmail, msgs []tokend.Message) error {
	vars, err := json.Marshal(e.CustomVariables)
	if err != nil {
		return fmt.Errorf("encode custom variables: %w", err)
	}
	if e.CustomVariables == nil {
		vars = []byte("{}")
	}
	err = x.q.QueryRowContext(ctx,
		`INSERT INTO emails (account_id, token_id, domain_id, sandbox_id, mail_from, from_email, from_name, to_email, to_name,
		                     subject, category, custom_variables, message_id_header, raw, size, text_size, html_size, created_at, updated_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		e.AccountID, e.TokenID, nullID(e.DomainID), nullID(e.SandboxID), e.MailFrom, e.From.Email, e.From.Name, e.To.Email, e.To.Name,
		e.Subject, e.Category, string(vars), e.MessageIDHeader, e.Raw, e.Size, e.TextSize, e.HTMLSize, micros(e.CreatedAt), micros(e.UpdatedAt)).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("insert email: %w", err)
	}
	for i := range msgs {
		m := &msgs[i]
		m.EmailID = e.ID
		if _, err := x.q.ExecContext(ctx,
			`INSERT INTO messages (id, email_id, account_id, domain_id, token_id, recipient, state, attempts, last_error, created_at, updated_at)
			 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ID, m.EmailID, m.AccountID, nullID(m.DomainID), nullID(e.TokenID), m.Recipient, string(m.State), m.Attempts, m.LastError, micros(m.CreatedAt), micros(m.UpdatedAt)); err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
	}
	return nil
}

const emailColumns = `id, account_id, token_id, domain_id, sandbox_id, mail_from, from_email, from_name, to_email, to_name,
	subject, category, custom_variables, message_id_header, size, text_size, html_size, is_read, created_at, updated_at`

func scanEmail(row interface{ Scan(...any) error }, raw *[]byte) (tokend.StoredEmail, error) {
	var e tokend.StoredEmail
	var domain, sandbox sql.NullInt64
	var vars string
	var created, updated int64
	dest := []any{&e.ID, &e.AccountID, &e.TokenID, &domain, &sandbox, &e.MailFrom, &e.From.Email, &e.From.Name, &e.To.Email, &e.To.Name,
		&e.Subject, &e.Category, &vars, &e.MessageIDHeader, &e.Size, &e.TextSize, &e.HTMLSize, &e.IsRead, &created, &updated}
	if raw != nil {
		dest = append(dest, raw)
	}
	if err := row.Scan(dest...); err != nil {
		return e, err
	}
	e.DomainID, e.SandboxID = domain.Int64, sandbox.Int64
	e.CreatedAt, e.UpdatedAt = fromMicros(created), fromMicros(updated)
	if vars != "{}" {
		if err := json.Unmarshal([]byte(vars), &e.CustomVariables); err != nil {
			return e, fmt.Errorf("custom variables of email %d: %w", e.ID, err)
		}
	}
	return e, nil
}

// Email returns one email with its raw content.
func (x *Tx) Email(ctx context.Context, id int64) (*tokend.StoredEmail, error) {
	var raw []byte
	e, err := scanEmail(x.q.QueryRowContext(ctx, `SELECT `+emailColumns+`, raw FROM emails WHERE id = ?`, id), &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("email")
	} else if err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	e.Raw = raw
	return &e, nil
}

// EmailInfo returns one email without its raw content.
func (x *Tx) EmailInfo(ctx context.Context, id int64) (*tokend.StoredEmail, error) {
	e, err := scanEmail(x.q.QueryRowContext(ctx, `SELECT `+emailColumns+` FROM emails WHERE id = ?`, id), nil)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("email")
	} else if err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	return &e, nil
}

// SandboxEmails lists a sandbox's captured emails, newest first.
func (x *Tx) SandboxEmails(ctx context.Context, sandboxID int64, q tokend.SandboxQuery) ([]tokend.StoredEmail, error) {
	where, args := []string{"sandbox_id = ?"}, []any{sandboxID}
	if q.BeforeID > 0 {
		where, args = append(where, "id < ?"), append(args, q.BeforeID)
	}
	if q.Search != "" {
		like := "%" + escapeLike(strings.ToLower(q.Search)) + "%"
		where = append(where, `(lower(subject) LIKE ? ESCAPE '\' OR lower(to_email) LIKE ? ESCAPE '\' OR lower(to_name) LIKE ? ESCAPE '\')`)
		args = append(args, like, like, like)
	}
	limit := int64(q.Limit)
	if limit <= 0 {
		limit = math.MaxInt64 // no limit, in words both databases read
	}
	args = append(args, limit, q.Offset)
	out, err := queryAll(ctx, x, "sandbox emails", `SELECT `+emailColumns+` FROM emails WHERE `+strings.Join(where, " AND ")+
		` ORDER BY id DESC LIMIT ? OFFSET ?`, args, func(rs row) (tokend.StoredEmail, error) {
		e, err := scanEmail(rs, nil)
		if err != nil {
			return e, err
		}
		return e, nil
	})
	if out == nil {
		out = []tokend.StoredEmail{}
	}
	return out, err
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// MarkEmailRead sets a captured email's read flag.
func (x *Tx) MarkEmailRead(ctx context.Context, id int64, read bool, at time.Time) error {
	res, err := x.q.ExecContext(ctx, `UPDATE emails SET is_read = ?, updated_at = ? WHERE id = ?`, read, micros(at), id)
	return expectOne(res, err, "email")
}

// DeleteEmail deletes an email and, by cascade, its messages.
func (x *Tx) DeleteEmail(ctx context.Context, id int64) error {
	res, err := x.q.ExecContext(ctx, `DELETE FROM emails WHERE id = ?`, id)
	return expectOne(res, err, "email")
}

const messageColumns = `id, email_id, account_id, domain_id, recipient, state, attempts, last_error, created_at, updated_at`

func scanMessage(rs row) (tokend.Message, error) {
	var m tokend.Message
	var state string
	var domain sql.NullInt64
	var created, updated int64
	err := rs.Scan(&m.ID, &m.EmailID, &m.AccountID, &domain, &m.Recipient, &state, &m.Attempts, &m.LastError, &created, &updated)
	m.DomainID, m.State, m.CreatedAt, m.UpdatedAt = domain.Int64, tokend.MessageState(state), fromMicros(created), fromMicros(updated)
	return m, err
}

// Message returns one message.
func (x *Tx) Message(ctx context.Context, id string) (*tokend.Message, error) {
	m, err := scanMessage(x.q.QueryRowContext(ctx, `SELECT `+messageColumns+` FROM messages WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("message")
	} else if err != nil {
		return nil, fmt.Errorf("message: %w", err)
	}
	return &m, nil
}

// UpdateMessage records a delivery outcome, and drops the raw content of a
// live email whose every message is final.
func (x *Tx) UpdateMessage(ctx context.Context, id string, state tokend.MessageState, attempts int, lastError string, at time.Time) (*tokend.Message, error) {
	m, err := scanMessage(x.q.QueryRowContext(ctx,
		`UPDATE messages SET state = ?, attempts = ?, last_error = ?, updated_at = ? WHERE id = ? RETURNING `+messageColumns,
		string(state), attempts, lastError, micros(at), id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("message")
	} else if err != nil {
		return nil, fmt.Errorf("update message: %w", err)
	}
	if state != tokend.MessageDelivered && state != tokend.MessageFailed {
		return &m, nil
	}
	if _, err := x.q.ExecContext(ctx,
		`UPDATE emails SET raw = ?, updated_at = ? WHERE id = ? AND sandbox_id IS NULL
		   AND NOT EXISTS (SELECT 1 FROM messages WHERE email_id = ? AND state IN ('queued', 'deferred'))`,
		[]byte{}, micros(at), m.EmailID, m.EmailID); err != nil {
		return nil, fmt.Errorf("release delivered email: %w", err)
	}
	return &m, nil
}

// DeleteEmailsBefore deletes up to limit old live emails no message waits
// on, oldest first (through the index on their creation time), and the DKIM
// keys of deleted domains that no waiting mail needs.
func (x *Tx) DeleteEmailsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	res, err := x.q.ExecContext(ctx,
		`DELETE FROM emails WHERE id IN (SELECT id FROM emails WHERE sandbox_id IS NULL AND created_at < ?
		   AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.email_id = emails.id AND m.state IN ('queued', 'deferred'))
		 ORDER BY created_at LIMIT ?)`, micros(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("delete old emails: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete old emails: %w", err)
	}
	if _, err := x.q.ExecContext(ctx,
		`DELETE FROM domain_keys WHERE domain_id NOT IN (SELECT id FROM resources WHERE type = 'domain')
		   AND NOT EXISTS (SELECT 1 FROM emails e JOIN messages m ON m.email_id = e.id
		                    WHERE e.domain_id = domain_keys.domain_id AND m.state IN ('queued', 'deferred'))`); err != nil {
		return 0, fmt.Errorf("delete unused domain keys: %w", err)
	}
	return n, nil
}

// SandboxUsage returns what a sandbox holds of captured mail, from the row
// the emails table's triggers keep (see migration capture_quota).
func (x *Tx) SandboxUsage(ctx context.Context, sandboxID int64) (tokend.SandboxUsage, error) {
	var u tokend.SandboxUsage
	err := x.q.QueryRowContext(ctx, `SELECT emails, bytes FROM sandbox_usage WHERE sandbox_id = ?`, sandboxID).Scan(&u.Emails, &u.Bytes)
	if errors.Is(err, sql.ErrNoRows) {
		return tokend.SandboxUsage{}, nil
	} else if err != nil {
		return u, fmt.Errorf("sandbox usage: %w", err)
	}
	return u, nil
}

// EvictSandboxEmails deletes a sandbox's oldest captured emails until at
// least emails of them and bytes bytes are gone: it walks the sandbox's
// index from the oldest and stops as soon as that is enough, so its work is
// in proportion to what it deletes.
func (x *Tx) EvictSandboxEmails(ctx context.Context, sandboxID int64, emails int, bytes int64) (tokend.SandboxUsage, error) {
	var freed tokend.SandboxUsage
	if emails <= 0 && bytes <= 0 {
		return freed, nil
	}
	rows, err := x.q.QueryContext(ctx, `SELECT id, size FROM emails WHERE sandbox_id = ? ORDER BY id`, sandboxID)
	if err != nil {
		return freed, fmt.Errorf("oldest sandbox emails: %w", err)
	}
	var last int64
	for (freed.Emails < emails || freed.Bytes < bytes) && rows.Next() {
		var size int64
		if err := rows.Scan(&last, &size); err != nil {
			rows.Close()
			return tokend.SandboxUsage{}, fmt.Errorf("oldest sandbox emails: %w", err)
		}
		freed.Emails, freed.Bytes = freed.Emails+1, freed.Bytes+size
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return tokend.SandboxUsage{}, fmt.Errorf("oldest sandbox emails: %w", err)
	}
	if freed.Emails == 0 {
		return freed, nil
	}
	res, err := x.q.ExecContext(ctx, `DELETE FROM emails WHERE sandbox_id = ? AND id <= ?`, sandboxID, last)
	if err != nil {
		return tokend.SandboxUsage{}, fmt.Errorf("evict sandbox emails: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != int64(freed.Emails) {
		return tokend.SandboxUsage{}, fmt.Errorf("evict sandbox emails: deleted %d of %d (%v)", n, freed.Emails, err)
	}
	return freed, nil
}

// DeleteCapturedEmailsBefore deletes up to limit captured emails created
// before cutoff, oldest first, through the index on their creation time.
func (x *Tx) DeleteCapturedEmailsBefore(ctx context.Context, cutoff time.Time, limit int) (int64, error) {
	res, err := x.q.ExecContext(ctx,
		`DELETE FROM emails WHERE id IN (SELECT id FROM emails WHERE sandbox_id IS NOT NULL AND created_at < ?
		   ORDER BY created_at LIMIT ?)`, micros(cutoff), limit)
	if err != nil {
		return 0, fmt.Errorf("delete old captured emails: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete old captured emails: %w", err)
	}
	return n, nil
}

// CaptureSandbox returns the sandbox of an account's test-key sends (0: none).
func (x *Tx) CaptureSandbox(ctx context.Context, accountID int64) (int64, error) {
	var id sql.NullInt64
	err := x.q.QueryRowContext(ctx, `SELECT capture_sandbox_id FROM accounts WHERE id = ?`, accountID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, notFound("account")
	} else if err != nil {
		return 0, fmt.Errorf("capture sandbox: %w", err)
	}
	return id.Int64, nil
}

// SetCaptureSandbox sets the sandbox of an account's test-key sends.
func (x *Tx) SetCaptureSandbox(ctx context.Context, accountID, sandboxID int64) error {
	res, err := x.q.ExecContext(ctx, `UPDATE accounts SET capture_sandbox_id = ? WHERE id = ?`, nullID(sandboxID), accountID)
	return expectOne(res, err, "account")
}

// Setting returns a server-wide value.
func (x *Tx) Setting(ctx context.Context, name string) ([]byte, error) {
	var v []byte
	err := x.q.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("setting " + name)
	} else if err != nil {
		return nil, fmt.Errorf("setting %s: %w", name, err)
	}
	return v, nil
}

// PutSetting sets a server-wide value.
func (x *Tx) PutSetting(ctx context.Context, name string, value []byte) error {
	if _, err := x.q.ExecContext(ctx,
		`INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value); err != nil {
		return fmt.Errorf("put setting %s: %w", name, err)
	}
	return nil
}

package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokend/tokend"
)

// AddEmailEvent appends an event of a message.
func (x *Tx) AddEmailEvent(ctx context.Context, e *tokend.EmailEvent) error {
	details, err := json.Marshal(e.Details)
	if err != nil {
		return fmt.Errorf("encode email event details: %w", err)
	}
	err = x.q.QueryRowContext(ctx,
		`INSERT INTO email_events (message_id, account_id, type, details, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id`,
		e.MessageID, e.AccountID, string(e.Type), string(details), micros(e.At)).Scan(&e.ID)
	if err != nil {
		return fmt.Errorf("insert email event: %w", err)
	}
	if bit := eventBits[e.Type]; bit != 0 {
		if _, err := x.q.ExecContext(ctx, `UPDATE messages SET events = events | ? WHERE id = ? AND events & ? = 0`, bit, e.MessageID, bit); err != nil {
			return fmt.Errorf("mark message event: %w", err)
		}
	}
	return nil
}

// EmailEvents returns the events of the given messages, oldest first.
func (x *Tx) EmailEvents(ctx context.Context, messageIDs []string) (map[string][]tokend.EmailEvent, error) {
	out := map[string][]tokend.EmailEvent{}
	if len(messageIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(messageIDs))
	for i, id := range messageIDs {
		args[i] = id
	}
	list, err := queryAll(ctx, x, "email events", `SELECT id, message_id, account_id, type, details, created_at FROM email_events
		WHERE message_id IN (`+placeholders(len(args))+`) ORDER BY id`, args, func(rs row) (tokend.EmailEvent, error) {
		var e tokend.EmailEvent
		var typ, details string
		var at int64
		if err := rs.Scan(&e.ID, &e.MessageID, &e.AccountID, &typ, &details, &at); err != nil {
			return e, err
		}
		e.Type, e.At = tokend.EmailEventType(typ), fromMicros(at)
		if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
			return e, fmt.Errorf("details of email event %d: %w", e.ID, err)
		}
		return e, nil
	})
	for _, e := range list {
		out[e.MessageID] = append(out[e.MessageID], e)
	}
	return out, err
}

// eventBits are the bits of messages.events, one for each event type a
// message records; Mailtrap's other types have none (no message has them).
var eventBits = map[tokend.EmailEventType]int64{tokend.EmailDelivery: 1, tokend.EmailSoftBounce: 2, tokend.EmailBounce: 4, tokend.EmailReject: 8}

func eventMask(types []string) int64 {
	var mask int64
	for _, t := range types {
		mask |= eventBits[tokend.EmailEventType(t)]
	}
	return mask
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// logWhere is the WHERE clause of the email logs q selects, over messages m
// (and emails e when join says so: a filter on the email's sender, subject
// or category).
func logWhere(accountID int64, q tokend.LogQuery) (where string, args []any, join bool, err error) {
	conds := []string{"m.account_id = ?", "m.domain_id IS NOT NULL"}
	args = []any{accountID}
	if !q.All {
		// What the caller's domains sent, and what it sent itself.
		vis := "m.token_id = ?"
		if len(q.DomainIDs) > 0 {
			vis = "(m.domain_id IN (" + placeholders(len(q.DomainIDs)) + ") OR " + vis + ")"
			for _, id := range q.DomainIDs {
				args = append(args, id)
			}
		}
		conds, args = append(conds, vis), append(args, q.TokenID)
	}
	if !q.SentAfter.IsZero() {
		conds, args = append(conds, "m.created_at >= ?"), append(args, micros(q.SentAfter))
	}
	if !q.SentBefore.IsZero() {
		conds, args = append(conds, "m.created_at <= ?"), append(args, micros(q.SentBefore))
	}
	if q.After != nil {
		at := micros(q.After.CreatedAt)
		// The first term bounds the index's range; the second is the order's.
		conds = append(conds, "m.created_at <= ? AND (m.created_at < ? OR m.email_id < ? OR m.email_id = ? AND m.id < ?)")
		args = append(args, at, at, q.After.EmailID, q.After.EmailID, q.After.MessageID)
	}
	for _, f := range q.Filters {
		cond, fargs, err := logCondition(f)
		if err != nil {
			return "", nil, false, err
		}
		if f.Negate {
			cond = "NOT " + cond
		}
		conds, args = append(conds, cond), append(args, fargs...)
		join = join || strings.Contains(cond, "e.")
	}
	return strings.Join(conds, " AND "), args, join, nil
}

// logColumns are the columns a filter may compare, as SQL over messages m
// joined with emails e.
var logColumns = map[tokend.LogField]string{
	tokend.LogTo: "lower(m.recipient)", tokend.LogFrom: "lower(e.from_email)", tokend.LogSubject: "lower(e.subject)",
	tokend.LogResponse: "lower(m.last_error)", tokend.LogCategory: "e.category", tokend.LogState: "m.state",
	tokend.LogDomain: "m.domain_id",
}

func logCondition(f tokend.LogFilter) (string, []any, error) {
	args := make([]any, len(f.Values))
	for i, v := range f.Values {
		args[i] = v
		if f.Field == tokend.LogDomain {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return "", nil, fmt.Errorf("email log filter on domain ids: %w", err)
			}
			args[i] = n
		}
	}
	switch {
	case f.Field == tokend.LogConstant:
		return "(1 = 1)", nil, nil
	case f.Field == tokend.LogEvent:
		// The message's events bits (see eventBits): one of the types seen.
		return "(m.events & ? <> 0)", []any{eventMask(f.Values)}, nil
	case f.Op == tokend.LogEmpty && f.Field == tokend.LogSubject:
		return "(e.subject = '')", nil, nil
	}
	col, ok := logColumns[f.Field]
	if !ok || len(args) == 0 {
		return "", nil, fmt.Errorf("email log filter %q %q: not one this store knows", f.Field, f.Op)
	}
	switch f.Op {
	case tokend.LogEqual:
		return "(" + col + " IN (" + placeholders(len(args)) + "))", args, nil
	case tokend.LogContain:
		conds := make([]string, len(args))
		for i, v := range f.Values {
			conds[i] = col + ` LIKE ? ESCAPE '\'`
			args[i] = "%" + escapeLike(v) + "%"
		}
		return "(" + strings.Join(conds, " OR ") + ")", args, nil
	}
	return "", nil, fmt.Errorf("email log filter %q %q: not one this store knows", f.Field, f.Op)
}

// EmailLogs returns a page of an account's email logs, newest first.
func (x *Tx) EmailLogs(ctx context.Context, accountID int64, q tokend.LogQuery) ([]tokend.MessageLog, error) {
	where, args, _, err := logWhere(accountID, q)
	if err != nil {
		return nil, err
	}
	args = append(args, q.Limit)
	// A recipient's messages are few: found through the recipient index,
	// then sorted, rather than by walking the whole account's newest first
	// (the unary + keeps SQLite's planner off the order's index).
	order := "m.created_at DESC, m.email_id DESC, m.id DESC"
	if slices.ContainsFunc(q.Filters, func(f tokend.LogFilter) bool { return f.Field == tokend.LogTo && f.Op == tokend.LogEqual && !f.Negate }) {
		order = "+m.created_at DESC, m.email_id DESC, m.id DESC"
	}
	cols := "m.id, m.email_id, m.account_id, m.domain_id, m.recipient, m.state, m.attempts, m.last_error, m.created_at, m.updated_at, " +
		"e." + strings.ReplaceAll(emailColumns, ", ", ", e.")
	out, err := queryAll(ctx, x, "email logs", `SELECT `+cols+` FROM messages m JOIN emails e ON e.id = m.email_id
		WHERE `+where+` ORDER BY `+order+` LIMIT ?`, args, func(rs row) (tokend.MessageLog, error) {
		var l tokend.MessageLog
		var state string
		var domain sql.NullInt64
		var created, updated int64
		var e tokend.StoredEmail
		split := &splitScanner{n: 10, first: []any{&l.ID, &l.EmailID, &l.AccountID, &domain, &l.Recipient, &state, &l.Attempts, &l.LastError, &created, &updated}}
		e, err := scanEmail(split.with(rs), nil)
		if err != nil {
			return l, err
		}
		l.DomainID, l.State, l.CreatedAt, l.UpdatedAt = domain.Int64, tokend.MessageState(state), fromMicros(created), fromMicros(updated)
		l.Email = e
		return l, nil
	})
	if out == nil {
		out = []tokend.MessageLog{}
	}
	return out, err
}

// splitScanner scans the first n columns of a row into first, and hands the
// rest to another scan function.
type splitScanner struct {
	n     int
	first []any
	rs    row
}

func (s *splitScanner) with(rs row) row { s.rs = rs; return s }

func (s *splitScanner) Scan(dest ...any) error {
	return s.rs.Scan(append(append([]any{}, s.first...), dest...)...)
}

// CountEmailLogs counts the messages q selects, up to max.
func (x *Tx) CountEmailLogs(ctx context.Context, accountID int64, q tokend.LogQuery, max int) (int, error) {
	where, args, join, err := logWhere(accountID, q)
	if err != nil {
		return 0, err
	}
	from := "messages m"
	if join {
		from += " JOIN emails e ON e.id = m.email_id"
	}
	var n int
	err = x.q.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM `+from+` WHERE `+where+` LIMIT ?) AS matching`,
		append(args, max)...).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count email logs: %w", err)
	}
	return n, nil
}

const suppressionColumns = `id, account_id, email, domain_id, domain_name, type, sending_stream, source, created_at`

func scanSuppression(rs row) (tokend.Suppression, error) {
	var s tokend.Suppression
	var domain sql.NullInt64
	var typ string
	var source sql.NullString
	var created int64
	if err := rs.Scan(&s.ID, &s.AccountID, &s.Email, &domain, &s.DomainName, &typ, &s.SendingStream, &source, &created); err != nil {
		return s, err
	}
	s.DomainID, s.Type, s.CreatedAt = domain.Int64, tokend.SuppressionType(typ), fromMicros(created)
	if source.Valid {
		s.Source = new(tokend.SuppressionSource)
		if err := json.Unmarshal([]byte(source.String), s.Source); err != nil {
			return s, fmt.Errorf("source of suppression %s: %w", s.ID, err)
		}
	}
	return s, nil
}

// AddSuppression stores s unless the account suppresses the address there already.
func (x *Tx) AddSuppression(ctx context.Context, s *tokend.Suppression) (*tokend.Suppression, bool, error) {
	var source sql.NullString
	if s.Source != nil {
		b, err := json.Marshal(s.Source)
		if err != nil {
			return nil, false, fmt.Errorf("encode suppression source: %w", err)
		}
		source = sql.NullString{String: string(b), Valid: true}
	}
	res, err := x.q.ExecContext(ctx, `INSERT INTO suppressions (`+suppressionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, s.ID, s.AccountID, s.Email, nullID(s.DomainID), s.DomainName, string(s.Type), s.SendingStream, source, micros(s.CreatedAt))
	if err != nil {
		return nil, false, fmt.Errorf("insert suppression: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, false, fmt.Errorf("insert suppression: %w", err)
	} else if n == 1 {
		return s, true, nil
	}
	held, err := scanSuppression(x.q.QueryRowContext(ctx, `SELECT `+suppressionColumns+` FROM suppressions
		WHERE account_id = ? AND email = ? AND coalesce(domain_id, 0) = ?`, s.AccountID, s.Email, s.DomainID))
	if err != nil {
		return nil, false, fmt.Errorf("suppression held: %w", err)
	}
	return &held, false, nil
}

// Suppressions lists an account's suppressions, newest first.
func (x *Tx) Suppressions(ctx context.Context, accountID int64, email string, limit int) ([]tokend.Suppression, error) {
	where, args := "account_id = ?", []any{accountID}
	if email != "" {
		where, args = where+" AND email = ?", append(args, email)
	}
	return queryAll(ctx, x, "suppressions", `SELECT `+suppressionColumns+` FROM suppressions WHERE `+where+
		` ORDER BY created_at DESC, id DESC LIMIT ?`, append(args, limit), scanSuppression)
}

// Suppression returns one suppression.
func (x *Tx) Suppression(ctx context.Context, id string) (*tokend.Suppression, error) {
	s, err := scanSuppression(x.q.QueryRowContext(ctx, `SELECT `+suppressionColumns+` FROM suppressions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("suppression")
	} else if err != nil {
		return nil, fmt.Errorf("suppression: %w", err)
	}
	return &s, nil
}

// DeleteSuppression deletes one suppression.
func (x *Tx) DeleteSuppression(ctx context.Context, id string) error {
	res, err := x.q.ExecContext(ctx, `DELETE FROM suppressions WHERE id = ?`, id)
	return expectOne(res, err, "suppression")
}

// SuppressedAmong returns the suppressions that hold for mail from domainID
// to any of emails.
func (x *Tx) SuppressedAmong(ctx context.Context, accountID, domainID int64, emails []string) ([]tokend.Suppression, error) {
	if len(emails) == 0 {
		return nil, nil
	}
	args := []any{accountID, domainID}
	for _, e := range emails {
		args = append(args, e)
	}
	return queryAll(ctx, x, "suppressed recipients", `SELECT `+suppressionColumns+` FROM suppressions
		WHERE account_id = ? AND (domain_id IS NULL OR domain_id = ?) AND email IN (`+placeholders(len(emails))+`)`, args, scanSuppression)
}

// IdempotentSend returns the send an account made under key since notBefore.
func (x *Tx) IdempotentSend(ctx context.Context, accountID int64, key string, notBefore time.Time) (*tokend.IdempotentSend, error) {
	s := tokend.IdempotentSend{AccountID: accountID, Key: key}
	var created int64
	err := x.q.QueryRowContext(ctx, `SELECT fingerprint, results, created_at FROM idempotent_sends
		WHERE account_id = ? AND key = ? AND created_at >= ?`, accountID, key, micros(notBefore)).Scan(&s.Fingerprint, &s.Results, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("idempotent send")
	} else if err != nil {
		return nil, fmt.Errorf("idempotent send: %w", err)
	}
	s.CreatedAt = fromMicros(created)
	return &s, nil
}

// SaveIdempotentSend records a send, replacing one of the same key made
// before notBefore.
func (x *Tx) SaveIdempotentSend(ctx context.Context, s *tokend.IdempotentSend, notBefore time.Time) error {
	res, err := x.q.ExecContext(ctx, `INSERT INTO idempotent_sends (account_id, key, fingerprint, results, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (account_id, key) DO UPDATE SET fingerprint = excluded.fingerprint, results = excluded.results, created_at = excluded.created_at
		WHERE idempotent_sends.created_at < ?`, s.AccountID, s.Key, s.Fingerprint, string(s.Results), micros(s.CreatedAt), micros(notBefore))
	if err != nil {
		return fmt.Errorf("save idempotent send: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("save idempotent send: %w", err)
	} else if n != 1 {
		return fmt.Errorf("save idempotent send: the key %q holds a send of the last day", s.Key)
	}
	return nil
}

// DeleteIdempotentSendsBefore deletes what was recorded before cutoff.
func (x *Tx) DeleteIdempotentSendsBefore(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := x.q.ExecContext(ctx, `DELETE FROM idempotent_sends WHERE created_at < ?`, micros(cutoff))
	if err != nil {
		return 0, fmt.Errorf("delete idempotent sends: %w", err)
	}
	return res.RowsAffected()
}

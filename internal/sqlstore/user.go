package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tokend/tokend"
)

const userColumns = `id, account_id, email, name, role, password_hash, created_at`

func scanUser(row interface{ Scan(...any) error }) (tokend.User, error) {
	var u tokend.User
	var created int64
	err := row.Scan(&u.ID, &u.AccountID, &u.Email, &u.Name, &u.Role, &u.PasswordHash, &created)
	u.CreatedAt = fromMicros(created)
	return u, err
}

// CreateUser inserts u and sets its ID.
func (x *Tx) CreateUser(ctx context.Context, u *tokend.User) error {
	err := x.q.QueryRowContext(ctx,
		`INSERT INTO users (account_id, email, name, role, password_hash, created_at) VALUES (?, lower(?), ?, ?, ?, ?) RETURNING id`,
		u.AccountID, u.Email, u.Name, int(u.Role), u.PasswordHash, micros(u.CreatedAt)).Scan(&u.ID)
	if x.d.IsUniqueViolation(err) {
		return tokend.Invalid("email", "has already been taken")
	} else if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

func (x *Tx) userWhere(ctx context.Context, where string, arg any) (*tokend.User, error) {
	u, err := scanUser(x.q.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users WHERE `+where, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("user")
	} else if err != nil {
		return nil, fmt.Errorf("user: %w", err)
	}
	return &u, nil
}

// User returns one user.
func (x *Tx) User(ctx context.Context, id int64) (*tokend.User, error) {
	return x.userWhere(ctx, "id = ?", id)
}

// UserByEmail returns the user with that email, in any case.
func (x *Tx) UserByEmail(ctx context.Context, email string) (*tokend.User, error) {
	return x.userWhere(ctx, "email = lower(?)", email)
}

// Users lists the users of an account, or of every account for 0.
func (x *Tx) Users(ctx context.Context, accountID int64) ([]tokend.User, error) {
	out, err := queryAll(ctx, x, "users", `SELECT `+userColumns+` FROM users WHERE ? = 0 OR account_id = ? ORDER BY id`, []any{accountID, accountID}, scanUser)
	if out == nil {
		out = []tokend.User{}
	}
	return out, err
}

// DeleteUser deletes a user; its sessions go by cascade.
func (x *Tx) DeleteUser(ctx context.Context, id int64) error {
	res, err := x.q.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id)
	return expectOne(res, err, "user")
}

// SetUserPassword replaces a password hash and ends the user's sessions.
func (x *Tx) SetUserPassword(ctx context.Context, id int64, hash string) error {
	res, err := x.q.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, hash, id)
	if err := expectOne(res, err, "user"); err != nil {
		return err
	}
	if _, err := x.q.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, id); err != nil {
		return fmt.Errorf("end sessions: %w", err)
	}
	return nil
}

// CreateSession stores a session.
func (x *Tx) CreateSession(ctx context.Context, s *tokend.Session) error {
	if _, err := x.q.ExecContext(ctx,
		`INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		s.Hash, s.UserID, micros(s.CreatedAt), micros(s.LastSeenAt), micros(s.ExpiresAt)); err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	return nil
}

// Session returns the session with that hash.
func (x *Tx) Session(ctx context.Context, hash []byte) (*tokend.Session, error) {
	s := tokend.Session{Hash: hash}
	var created, seen, expires int64
	err := x.q.QueryRowContext(ctx, `SELECT user_id, created_at, last_seen_at, expires_at FROM sessions WHERE id_hash = ?`, hash).
		Scan(&s.UserID, &created, &seen, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("session")
	} else if err != nil {
		return nil, fmt.Errorf("session: %w", err)
	}
	s.CreatedAt, s.LastSeenAt, s.ExpiresAt = fromMicros(created), fromMicros(seen), fromMicros(expires)
	return &s, nil
}

// TouchSession records a session's use.
func (x *Tx) TouchSession(ctx context.Context, hash []byte, at time.Time) error {
	res, err := x.q.ExecContext(ctx, `UPDATE sessions SET last_seen_at = `+x.d.Greatest+`(last_seen_at, ?) WHERE id_hash = ?`, micros(at), hash)
	return expectOne(res, err, "session")
}

// DeleteSession ends a session.
func (x *Tx) DeleteSession(ctx context.Context, hash []byte) error {
	res, err := x.q.ExecContext(ctx, `DELETE FROM sessions WHERE id_hash = ?`, hash)
	return expectOne(res, err, "session")
}

// DeleteSessionsBefore deletes ended sessions.
func (x *Tx) DeleteSessionsBefore(ctx context.Context, now time.Time, idle time.Duration) error {
	if _, err := x.q.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ? OR last_seen_at <= ?`,
		micros(now), micros(now.Add(-idle))); err != nil {
		return fmt.Errorf("delete ended sessions: %w", err)
	}
	if _, err := x.q.ExecContext(ctx, `DELETE FROM invites WHERE expires_at <= ?`, micros(now)); err != nil {
		return fmt.Errorf("delete expired invites: %w", err)
	}
	return nil
}

// CreateInvite stores an invite.
func (x *Tx) CreateInvite(ctx context.Context, inv *tokend.Invite) error {
	if _, err := x.q.ExecContext(ctx, `INSERT INTO invites (id_hash, account_id, role, created_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		inv.Hash, inv.AccountID, int(inv.Role), micros(inv.CreatedAt), micros(inv.ExpiresAt)); err != nil {
		return fmt.Errorf("insert invite: %w", err)
	}
	return nil
}

// Invite returns the invite with that hash.
func (x *Tx) Invite(ctx context.Context, hash []byte) (*tokend.Invite, error) {
	inv := tokend.Invite{Hash: hash}
	var created, expires int64
	err := x.q.QueryRowContext(ctx, `SELECT account_id, role, created_at, expires_at FROM invites WHERE id_hash = ?`, hash).
		Scan(&inv.AccountID, &inv.Role, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound("invite")
	} else if err != nil {
		return nil, fmt.Errorf("invite: %w", err)
	}
	inv.CreatedAt, inv.ExpiresAt = fromMicros(created), fromMicros(expires)
	return &inv, nil
}

// DeleteInvite uses an invite up.
func (x *Tx) DeleteInvite(ctx context.Context, hash []byte) error {
	res, err := x.q.ExecContext(ctx, `DELETE FROM invites WHERE id_hash = ?`, hash)
	return expectOne(res, err, "invite")
}

// DeleteInvites deletes every invite of an account.
func (x *Tx) DeleteInvites(ctx context.Context, accountID int64) (int, error) {
	res, err := x.q.ExecContext(ctx, `DELETE FROM invites WHERE account_id = ?`, accountID)
	if err != nil {
		return 0, fmt.Errorf("delete invites: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete invites: %w", err)
	}
	return int(n), nil
}
